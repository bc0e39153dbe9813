"""Simulation speed: how long ``journeys simulate`` takes for a population, and where the time goes.

Runs :func:`starter.simulation.simulate` (what ``journeys simulate`` runs, without the report) on a fresh
time-skipping server, worker and SQLite database, and reports the wall time with its split: skipping the
clock (timers fire, journeys act), routing the day's events, and the customers' responses (database reads).

    python -m bench.simulate [--customers N] [--days D] [--seed S] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import parser, report
from starter.simulation import SimulationConfig, simulate
from testkit import JourneyEnvironment
from testkit.harness import ROOT


async def measure(config: SimulationConfig, cache: int | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {} if cache is None else {"worker_max_cached_workflows": cache}
    async with JourneyEnvironment.start(ROOT / "journeys", **settings) as system:
        started = time.perf_counter()
        result = await simulate(system.env, system.journeys, system.engine, config)
        seconds = time.perf_counter() - started
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
    cli.add_argument("--cache", type=int, default=None, help="the worker's max_cached_workflows")
    args = cli.parse_args()
    customers, days = (5, 20) if args.quick else (args.customers, args.days)
    config = SimulationConfig(customers=customers, days=days, seed=args.seed)
    row = asyncio.run(measure(config, args.cache))
    settings = {"customers": customers, "days": days, "seed": args.seed, "cache": args.cache or "default"}
    report("simulate", settings, [row], args.json)


if __name__ == "__main__":
    main()
