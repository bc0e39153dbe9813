"""``journeys worker``: run journeys and their activities until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from runtime.connection import connect
from runtime.settings import Settings
from storage import make_engine
from workers.worker import journey_worker


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a journey worker (configuration from JOURNEYS_* variables)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings()))
    return 0


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; then stop taking work and let the tasks in hand finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(settings)
    engine = make_engine(settings.database)
    async with journey_worker(client, settings, engine):
        logging.getLogger("journeys").info("worker running on task queue %s", settings.task_queue)
        await stop.wait()
    engine.dispose()
