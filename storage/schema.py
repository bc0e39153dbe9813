"""The database schema's revision, managed by Alembic: ``journeys setup`` upgrades it, worker and API check it.

Every change to :mod:`storage.tables` comes with a revision in ``storage/migrations/versions/`` (written by
``python -m storage.migrations "what changed"``), so a database deployed with an older version is brought
forward, rows kept, instead of breaking at the first query that names a new column.

Errors::

    SchemaError                  the database cannot be brought to, or used at, this version's schema
    └── SchemaBehind             a long-running process found the database at an older revision
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event, func, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from contracts.errors import SchemaError

log = logging.getLogger("journeys.schema")
# Alembic logs every connection's dialect at INFO ("Context impl PostgresqlImpl."), so at every worker start;
# :func:`upgrade` logs what it did in one line instead.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic's script directory, shipped inside the package so an installed ``journeys`` can upgrade."""

BASELINE = "0001"
"""The revision that creates the schema as ``create_all`` made it before migrations existed."""

BASELINE_TABLES = frozenset(
    {"customer", "delivery", "consent", "customeridentity", "processedmessage", "event", "journeyrun"}
)
"""The tables ``create_all`` made at :data:`BASELINE`: a database holding them and no revision was made then."""

SCHEMA_LOCK = 7_464_221_401
"""A PostgreSQL advisory-lock key taken while the schema is upgraded (any constant unique to this app)."""


class SchemaBehind(SchemaError):
    """The database is at an older revision than this version needs: ``journeys setup`` upgrades it."""

    def __init__(self, current: str | None, needed: str) -> None:
        at = f"revision {current}" if current else "no revision"
        super().__init__(
            f"the database schema is at {at}, this version of journeys needs revision {needed}: "
            "run `journeys setup` to upgrade it"
        )
        self.current = current
        self.needed = needed


@dataclass(frozen=True)
class SchemaChange:
    """What :func:`upgrade` did, for ``journeys setup`` to print."""

    before: str | None
    after: str
    adopted: bool = False
    """The database had the tables but no revision (made by ``create_all``): it was stamped at the baseline."""

    def __str__(self) -> str:
        if self.adopted:
            stamped = f"database: tables made before migrations, stamped at {BASELINE}"
            return stamped + (f", upgraded to {self.after}" if self.after != BASELINE else " (head)")
        if self.before == self.after:
            return f"database: at head ({self.after})"
        return f"database: upgraded from {self.before or 'an empty database'} to {self.after}"


def head() -> str:
    """The revision this version of journeys needs."""
    revision = _script().get_current_head()
    assert revision is not None, "storage/migrations/versions holds no revision"
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None when it has none (empty, or made by ``create_all`` before migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> SchemaChange:
    """Bring the database to :func:`head`: create an empty one, adopt one made before migrations, upgrade the rest.

    Safe when several processes start at once on one database: the whole upgrade is one transaction under a
    lock (see :func:`_locked`), so the second process waits and then finds the database at head.
    """
    target = head()
    with _locked(engine) as connection:
        before = current(connection)
        adopted = before is None and _made_before_migrations(connection)
        config = _config(connection)
        try:
            if adopted:
                command.stamp(config, BASELINE)
            if current(connection) != target:
                command.upgrade(config, "head")
        except CommandError as exc:  # the database names a revision this version does not know
            raise SchemaError(f"cannot upgrade the database schema from revision {before}: {exc}") from exc
        after = current(connection)
    assert after == target, (after, target)
    change = SchemaChange(before, target, adopted)
    log.info("%s", change)
    return change


def check(engine: Engine) -> None:
    """Raise :class:`SchemaBehind` unless the database is at :func:`head` (or at a revision newer than it).

    A revision this version does not know was written by a newer one (a rollback, or old workers still
    running beside a new ``journeys setup``): migrations add, so the older code is let through, with a warning.
    """
    needed = head()
    with engine.connect() as connection:
        found = current(connection)
    if found == needed:
        return
    if found is not None and not _known(found):
        log.warning("the database schema is at revision %s, newer than this version's %s", found, needed)
        return
    raise SchemaBehind(found, needed)


def new_revision(message: str, folder: Path) -> Path | None:
    """Write a revision holding the differences between :mod:`storage.tables` and the schema at head.

    Alembic's autogenerate compares the tables with a scratch SQLite database upgraded to head in ``folder``;
    read the file it writes before committing it (a rename comes out as a drop and an add). None when the
    tables match head: there is nothing to write.
    """
    engine = create_engine(f"sqlite:///{folder / 'head.db'}", poolclass=NullPool)
    try:
        upgrade(engine)
        numbers = [int(script.revision) for script in _script().walk_revisions() if script.revision.isdigit()]
        with engine.begin() as connection:
            config = _config(connection)
            if importlib.util.find_spec("ruff") is not None:  # a dev dependency: format what autogenerate wrote
                config.set_section_option("post_write_hooks", "hooks", "fix, format")
                for hook, options in (("fix", "check --fix --quiet"), ("format", "format --quiet")):
                    config.set_section_option("post_write_hooks", f"{hook}.type", "module")
                    config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
                    config.set_section_option(
                        "post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME"
                    )
            written = command.revision(
                config,
                message,
                autogenerate=True,
                rev_id=f"{max(numbers, default=0) + 1:04d}",
                process_revision_directives=_nothing_if_unchanged,
            )
    finally:
        engine.dispose()
    if not written:
        return None
    assert not isinstance(written, list)
    return Path(written.path)


def _nothing_if_unchanged(_context: Any, _revision: Any, directives: list[Any]) -> None:
    if directives[0].upgrade_ops.is_empty():
        directives[:] = []


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def _made_before_migrations(connection: Connection) -> bool:
    """True when the database holds the baseline's tables (``create_all`` made them); an error when only some."""
    found = BASELINE_TABLES & set(inspect(connection).get_table_names())
    if found and found != BASELINE_TABLES:
        missing = ", ".join(sorted(BASELINE_TABLES - found))
        raise SchemaError(f"the database has some of journeys' tables but no schema revision, and lacks {missing}")
    return bool(found)


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other process can be upgrading the schema in at the same time.

    On PostgreSQL (transactional DDL) an advisory lock, held to the commit: a second process waits, then reads
    the revision the first one committed. SQLite has no such lock, and Python's driver would commit each
    ``CREATE``: a connection of its own, in which this module emits ``BEGIN IMMEDIATE`` itself, takes the write
    lock for the whole upgrade (a second process waits out ``busy_timeout``), and SQLite's DDL is transactional.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            yield connection
        return
    serialized = create_engine(engine.url, poolclass=NullPool)
    event.listen(serialized, "connect", _driver_leaves_transactions_to_us)
    event.listen(serialized, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with serialized.begin() as connection:
            yield connection
    finally:
        serialized.dispose()


def _driver_leaves_transactions_to_us(connection: Any, _record: Any) -> None:
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
