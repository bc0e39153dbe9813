"""Alembic's environment: run by every upgrade, stamp and autogenerate that :mod:`storage.schema` starts.

:mod:`storage.schema` passes the connection (inside its locked transaction) in ``config.attributes``, so there is
no URL to read and no ``alembic.ini``, and Alembic neither begins nor commits: the caller does.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.tables  # noqa: F401  (registers the tables on SQLModel.metadata, the target of autogenerate)

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: autogenerate writes batch operations so a migration runs on both.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
