"""The ``journeys`` command. Each sub-command lives in its own module under :mod:`starter.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from journeymap import MapValidationError
from runtime.codec import CodecError
from runtime.connection import TemporalUnreachable

#: Sub-command modules, in the order ``journeys --help`` lists them.
COMMANDS = (
    "validate",
    "render",
    "track",
    "worker",
    "setup",
    "dev",
    "api",
    "identify",
    "describe",
    "replay",
    "demo",
    "outbox",
    "preview",
    "report",
    "simulate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeys", description="Durable customer journeys on Temporal: maps as data, run as workflows."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"starter.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the errors a user can fix are printed as one line each (exit 1), not as tracebacks."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except MapValidationError as exc:
        # A map in the journeys folder is broken: every command that loads the catalog says where, and stops.
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    except (TemporalUnreachable, CodecError) as exc:
        # CodecError: a malformed key, or a payload sealed with a key this process was not given.
        print(f"journeys {args.command}: {exc}", file=sys.stderr)
        return 1
    return code


def entry() -> None:
    """The ``journeys`` executable: :func:`main`, then exit without interpreter finalization.

    The Temporal SDK's Rust threads can still call into Python while a short-lived client process finalizes,
    which aborts it (SIGABRT or SIGSEGV) after its work is done, and more often after a failed connect
    (temporalio/sdk-python#300, open). Every command has finished and cleaned up when ``main`` returns, so the
    process flushes what it wrote and leaves at once with ``main``'s status.
    """
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
