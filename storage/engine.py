"""Database engines, built once per process and injected where needed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, create_engine

import storage.tables  # noqa: F401  (registers the tables on SQLModel.metadata)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers (the CLI, the API) run beside the worker's writes; busy_timeout waits out a lock
    # instead of failing a send.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url`` (``sqlite:///data/journeys.db``, ``postgresql+psycopg://...``), tables created."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if create:
        create_tables(engine)
    return engine


SCHEMA_LOCK = 7_464_221_401
"""A PostgreSQL advisory-lock key taken while the tables are created (any constant unique to this app)."""


def create_tables(engine: Engine) -> None:
    """Create the missing tables, safely when several processes start at once on an empty database.

    ``create_all`` checks which tables exist and then creates the rest, so two workers started together both
    try to create the same table and one of them dies at start-up. On PostgreSQL the creation runs in one
    transaction under an advisory lock, so the second process waits and then finds the tables. SQLite has no
    such lock and commits each statement: a process that lost the race checks again and creates what is still
    missing.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            SQLModel.metadata.create_all(connection)
        return
    for attempt in range(10):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except OperationalError as error:
            if "already exists" not in str(error.orig) or attempt == 9:
                raise
            time.sleep(0.05)
