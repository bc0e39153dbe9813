"""The ``journeys`` command's exit status for each error family, and its one-line message: the one place both are
decided. Commands raise (``contracts.errors``); :func:`starter.cli.main` catches and calls :func:`fail`.

    0   done (a check that found problems, ``validate`` or ``replay``, says so by its own 1)
    1   the work failed: a map or an input is wrong, Temporal or the database did not answer, a port is taken
    2   the command was called wrongly: an argument (``UsageError``) or a setting (``ConfigurationError``)

An error without an entry takes its nearest family's; a new family needs a line here only if its status differs.
"""

from __future__ import annotations

import sys

from contracts.errors import (
    ConfigurationError,
    InputError,
    JourneysError,
    StorageError,
    UnavailableError,
    UsageError,
)
from journeymap import MapValidationError

EXIT_CODES: dict[type[JourneysError], int] = {
    JourneysError: 1,
    InputError: 1,
    UnavailableError: 1,
    StorageError: 1,
    UsageError: 2,
    ConfigurationError: 2,
}


def exit_code(error: JourneysError) -> int:
    """The status of the most specific family of ``error`` in :data:`EXIT_CODES`."""
    return next(EXIT_CODES[cls] for cls in type(error).__mro__ if cls in EXIT_CODES)


LOCATED: tuple[type[JourneysError], ...] = (MapValidationError,)
"""Errors whose lines already say where (``file: path: message``): printed as ``journeys validate`` prints them,
so an editor or a CI annotation reads them the same from every command."""


def message(command: str, error: JourneysError) -> str:
    """``journeys <command>: <message>``, a line per problem (a broken map lists each of its problems)."""
    lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    prefix = "" if isinstance(error, LOCATED) else f"journeys {command}: " if command else "journeys: "
    return "\n".join(prefix + line for line in lines)


def fail(command: str, error: JourneysError) -> int:
    """Print the error's message to stderr and return its exit status."""
    print(message(command, error), file=sys.stderr)
    return exit_code(error)
