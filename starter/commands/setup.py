"""``journeys setup``: upgrade the database schema, register the search attributes on the namespace, and create
(or update) the Schedule that refreshes the segments that change with time (``starter.schedules``) and each
broadcast's Schedule (``starter.broadcasts``).

Run it before starting workers and API processes of a new version: they refuse a database at an older schema
revision (:func:`storage.schema.check`). docker-compose runs it as a one-shot job they wait for.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from runtime.connection import connect
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from starter.broadcasts import ensure_broadcast_schedules
from starter.schedules import ensure_refresh_schedule
from storage import make_engine
from storage.schema import upgrade


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "setup", help="upgrade the database schema and register the journeys' search attributes on the namespace"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    engine = make_engine(settings.database, create=False)
    try:
        print(upgrade(engine), flush=True)
    finally:
        engine.dispose()
    added, schedules = asyncio.run(_setup(settings))
    print("added: " + ", ".join(added) if added else "search attributes already registered")
    print("\n".join(schedules))
    return 0


async def _setup(settings: Settings) -> tuple[list[str], list[str]]:
    client = await connect(settings)
    added = await register_search_attributes(client)
    refresh = await ensure_refresh_schedule(client, settings)
    return added, [refresh, *await ensure_broadcast_schedules(client, settings)]
