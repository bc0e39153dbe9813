"""``journeys api``: serve the event API and the codec server (configuration from ``JOURNEYS_*``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import uvicorn

from contracts.errors import UsageError
from runtime import event_loop
from runtime.connection import connect
from runtime.settings import Settings
from starter.api import create_app
from starter.api.auth import ApiKeys
from starter.api.server import bind, serving
from starter.api.services import open_services
from starter.catalog import load_catalog
from starter.commands.stopping import stop_on_signals
from storage import make_engine
from storage.schema import check

log = logging.getLogger("journeys.api")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="serve the event API (JOURNEYS_API_KEYS must be set)")
    parser.add_argument("--host", default=None, help="default: JOURNEYS_API_HOST")
    parser.add_argument("--port", type=int, default=None, help="default: JOURNEYS_API_PORT")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes serving the one port, one per spare core (default: JOURNEYS_API_WORKERS, 1)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    host, port = args.host or settings.api_host, args.port or settings.api_port
    workers = args.workers if args.workers is not None else settings.api_workers
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    ApiKeys.parse(settings.api_keys)  # the keys are checked before any process starts
    if workers == 1:
        event_loop.run(_serve(settings, host, port))
    else:
        # A broken map, an unreachable Temporal or a database behind is one clear error here, not a start-up
        # traceback per process.
        load_catalog(settings.journeys_dir)
        asyncio.run(connect(settings))
        _check_schema(settings)
        _serve_processes(host, port, workers)
    return 0


async def _serve(settings: Settings, host: str, port: int) -> None:
    """Until SIGINT/SIGTERM; then stop accepting and finish the requests in flight.

    The services are opened before uvicorn starts, so a broken map or an unreachable Temporal is the command's
    one-line error (``starter.cli``), not a traceback from uvicorn's start-up."""
    with stop_on_signals() as stop:
        async with open_services(settings) as services, serving(create_app(settings, services), host, port):
            log.info("event API on http://%s:%s (OpenAPI at /docs)", host, port)
            await stop.wait()
    log.info("event API stopped")


def _check_schema(settings: Settings) -> None:
    engine = make_engine(settings.database, create=False)
    try:
        check(engine)
    finally:
        engine.dispose()


def _serve_processes(host: str, port: int, workers: int) -> None:
    """``workers`` processes on one port under uvicorn's supervisor (it restarts one that dies; SIGTERM stops
    them all gracefully). Each builds its own app, Temporal client and database engine from ``JOURNEYS_*``."""
    bind(host, port).close()  # a taken port is a clear error here, not in uvicorn's supervisor
    log.info("event API on http://%s:%s with %d worker processes (OpenAPI at /docs)", host, port, workers)
    uvicorn.run(
        "starter.api.asgi:app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    log.info("event API stopped")
