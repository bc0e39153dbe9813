"""Database engines, built once per process and injected where needed."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from storage.schema import upgrade


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers (the CLI, the API) run beside the worker's writes; busy_timeout waits out a lock
    # instead of failing a send, and comes first so that switching to WAL waits out a schema upgrade too.
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        cursor.execute("SELECT power(2, 0.5)")
    except sqlite3.OperationalError:
        # A SQLite built without its math functions (before 3.35, or without SQLITE_ENABLE_MATH_FUNCTIONS): lead
        # scores decay with power(0.5, age / half-life) (audiences.scoring), so bring the one function they need.
        connection.create_function("power", 2, _power, deterministic=True)
    cursor.close()


def _power(base: float | None, exponent: float | None) -> float | None:
    return None if base is None or exponent is None else math.pow(base, exponent)


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url`` (``sqlite:///data/journeys.db``, ``postgresql+psycopg://...``).

    ``create`` upgrades the database to this version's schema first (:func:`storage.schema.upgrade`: an empty one
    is created); without it, the caller checks (``journeys worker`` and ``api``) or does not care.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if create:
        upgrade(engine)
    return engine
