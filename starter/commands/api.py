"""``journeys api``: serve the event API and the codec server (configuration from ``JOURNEYS_*``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from fastapi import FastAPI

from runtime.settings import Settings
from starter.api import create_app
from starter.api.server import ApiBindError, serving

log = logging.getLogger("journeys.api")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="serve the event API (JOURNEYS_API_KEYS must be set)")
    parser.add_argument("--host", default=None, help="default: JOURNEYS_API_HOST")
    parser.add_argument("--port", type=int, default=None, help="default: JOURNEYS_API_PORT")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    host, port = args.host or settings.api_host, args.port or settings.api_port
    try:
        app = create_app(settings)
        asyncio.run(_serve(app, host, port))
    except (ValueError, ApiBindError) as exc:
        print(f"journeys api: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(app: FastAPI, host: str, port: int) -> None:
    """Until SIGINT/SIGTERM; then stop accepting and finish the requests in flight."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(app, host, port):
        log.info("event API on http://%s:%s (OpenAPI at /docs)", host, port)
        await stop.wait()
    log.info("event API stopped")
