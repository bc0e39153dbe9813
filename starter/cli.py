"""The ``journeys`` command. Each sub-command lives in its own module under :mod:`starter.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
