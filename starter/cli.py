"""The ``journeys`` command. Each sub-command lives in its own module under :mod:`starter.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from starter.errors import as_ours
from starter.exit_codes import fail

#: Sub-command modules, in the order ``journeys --help`` lists them.
COMMANDS = (
    "validate",
    "render",
    "track",
    "events",
    "worker",
    "setup",
    "dev",
    "api",
    "identify",
    "consent",
    "customers",
    "describe",
    "resume",
    "replay",
    "demo",
    "outbox",
    "preview",
    "report",
    "simulate",
    "test",
    "diff",
    "check",
    "segments",
    "score",
    "broadcast",
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
    """Run one command. Its errors (``contracts.errors``) are printed as ``journeys <command>: <message>`` with
    the family's exit status (``starter.exit_codes``), not as tracebacks; anything else is a bug, and ``entry``
    shows its traceback."""
    command = ""  # not known until the arguments are parsed
    try:
        # Building the parser reads the settings (some commands take their defaults from them): a bad
        # JOURNEYS_* value is one line here too.
        args = build_parser().parse_args(argv)
        command = args.command
        code: int = args.handler(args)
    except Exception as exc:
        error = as_ours(exc)
        if error is None:
            raise
        return fail(command, error)
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
