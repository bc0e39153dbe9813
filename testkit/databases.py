"""Throwaway PostgreSQL databases on a server the tests or benchmarks were given (``scripts/postgres``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine


@contextmanager
def fresh_database(admin: Engine, prefix: str) -> Iterator[str]:
    """The URL of a new database on ``admin``'s server (an AUTOCOMMIT engine), dropped afterwards.

    A fresh database, not truncated tables, so runs at once on one server never see each other's rows.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            # FORCE: a process killed mid-run (a worker a test killed) may still hold a connection.
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
