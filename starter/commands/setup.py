"""``journeys setup``: register the search attributes on an existing cluster or Cloud namespace."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from runtime.connection import connect
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("setup", help="register the journeys' search attributes on the namespace")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    added = asyncio.run(_setup())
    print("added: " + ", ".join(added) if added else "search attributes already registered")
    return 0


async def _setup() -> list[str]:
    return await register_search_attributes(await connect(Settings()))
