"""The database driver's errors, as :class:`~contracts.errors.StorageError` where they reach a boundary.

SQLAlchemy's message carries the statement and its parameters, which may be a customer's email or phone: only the
driver's own first line is kept, so the one-line error of a command or an API answer holds no row values.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from contracts.errors import StorageError


def storage_error(exc: DBAPIError) -> StorageError:
    """``exc`` (an ``OperationalError``: unreachable, locked, no such file) as our error, naming the setting."""
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    return StorageError(f"the database failed: {reason} (JOURNEYS_DATABASE_URL)")
