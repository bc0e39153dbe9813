"""Third parties' errors that reach the ``journeys`` command or the event API unhandled, translated into ours.

Both boundaries (``starter.cli`` with ``starter.exit_codes``, and ``starter.api.errors``) ask :func:`as_ours`, so
a database that is gone or a Temporal that does not answer reads the same in a terminal and in an API answer.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError

from contracts.errors import JourneysError
from runtime.connection import temporal_error
from runtime.settings import settings_error
from storage.errors import storage_error


def as_ours(exc: Exception) -> JourneysError | None:
    """``exc`` if it is ours, a translation if we know what it means, else None: a bug, shown as one."""
    if isinstance(exc, JourneysError):
        return exc
    if isinstance(exc, OperationalError):
        return storage_error(exc)
    if isinstance(exc, RPCError):
        return temporal_error(exc)
    if isinstance(exc, ValidationError):
        return settings_error(exc)  # None when it is not about settings: a bug of ours
    return None
