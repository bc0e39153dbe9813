"""``journeys worker``: run journeys and their activities until SIGINT or SIGTERM.

Everything comes from ``JOURNEYS_*`` variables (Temporal address, namespace, TLS or API key, database,
providers). Run as many as the load needs, on as many machines: they share the work through Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from runtime.connection import connect
from runtime.settings import Settings
from starter.client import JourneyClient
from starter.commands.stopping import stop_on_signals
from storage import make_engine
from storage.schema import check
from workers.worker import delivery_queues, journey_worker

log = logging.getLogger("journeys.worker")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="run a journey worker (configuration from JOURNEYS_* variables)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings()))  # a database behind raises SchemaError: one line (starter/exit_codes.py)
    return 0


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics (task latencies, slots, failures) for Prometheus."""
    if settings.metrics_port is None:
        return None
    address = f"0.0.0.0:{settings.metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; then stop polling and give the activities in hand time to finish."""
    runtime = metrics_runtime(settings)
    client = await connect(settings, runtime=runtime)
    engine = make_engine(settings.database, create=False)
    try:
        check(engine)
        with stop_on_signals() as stop:
            journeys = JourneyClient.from_settings(client, settings)  # routes the segment changes a refresh finds
            async with journey_worker(
                client, settings, engine, announce=journeys.send_event, start_journey=journeys.start_broadcast
            ) as worker:
                extra = sorted(delivery_queues(settings))
                # The cache size as the worker holds it (not as configured): bench.memory reads it from this line.
                log.info(
                    "worker running on task queue %s (caching up to %s journeys)%s%s",
                    settings.task_queue,
                    worker.config().get("max_cached_workflows"),
                    f" and delivery queues {', '.join(extra)}" if extra else "",
                    f"; metrics on :{settings.metrics_port}/metrics" if runtime else "",
                )
                await stop.wait()
                log.info("stopping: finishing the tasks in hand (up to %ss)", settings.worker_shutdown_seconds)
    finally:
        engine.dispose()
    log.info("worker stopped")
