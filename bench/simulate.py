"""Simulation speed: how long ``journeys simulate`` takes for a population, and where the time goes.

Runs :func:`starter.simulation.simulate` on the system ``journeys simulate`` runs it on (its own time-skipping
server and an unsandboxed worker, ``simulation_system``), without the report, over a fresh SQLite database,
and reports the wall time with its split: skipping the clock (timers fire, journeys act), routing the day's
events, and the customers' responses (database reads). ``--sandboxed`` runs the worker as deployed, for
comparison; ``--cache`` sets its ``max_cached_workflows`` (the command sizes it to the population).

    python -m bench.simulate [--customers N] [--days D] [--seed S] [--sandboxed] [--cache N] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import parser, report
from runtime.settings import Settings
from starter.catalog import load_catalog
from starter.commands.simulate import simulation_settings, simulation_system
from starter.simulation import SimulationConfig, simulate
from storage import make_engine
from testkit.harness import ROOT


async def measure(config: SimulationConfig, *, sandboxed: bool, cache: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        base = Settings(data_dir=Path(tmp), journeys_dir=ROOT / "journeys")
        settings = simulation_settings(base, config, f"sqlite:///{tmp}/simulation.db")
        if cache is not None:
            settings.worker_max_cached_workflows = cache
        engine = make_engine(settings.database)
        try:
            async with simulation_system(
                settings, load_catalog(settings.journeys_dir), engine, sandboxed=sandboxed
            ) as system:
                started = time.perf_counter()
                result = await simulate(system.env, system.journeys, engine, config)
                seconds = time.perf_counter() - started
        finally:
            engine.dispose()
    return {
        "customers": result.customers,
        "days": config.days,
        "events": result.events,
        "messages": result.messages,
        "journeys": len(result.workflow_ids),
        "seconds": round(seconds, 1),
        "ms_per_day": round(1000 * seconds / config.days, 1),
        **{f"{phase}_s": round(spent, 1) for phase, spent in result.timings.items()},
    }


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--customers", type=int, default=50)
    cli.add_argument("--days", type=int, default=365)
    cli.add_argument("--seed", type=int, default=7)
    cli.add_argument("--sandboxed", action="store_true", help="run the workflows in the sandbox, as workers do")
    cli.add_argument("--cache", type=int, default=None, help="the worker's max_cached_workflows")
    args = cli.parse_args()
    customers, days = (5, 20) if args.quick else (args.customers, args.days)
    config = SimulationConfig(customers=customers, days=days, seed=args.seed)
    row = asyncio.run(measure(config, sandboxed=args.sandboxed, cache=args.cache))
    settings = {
        "customers": customers,
        "days": days,
        "seed": args.seed,
        "sandboxed": args.sandboxed,
        "cache": args.cache or "default",
    }
    report("simulate", settings, [row], args.json)


if __name__ == "__main__":
    main()
