"""Worker memory: resident set size with N journeys waiting on timers, for several workflow-cache sizes.

For each ``max_cached_workflows`` a ``journeys`` worker runs in its own process on a fresh task queue; N
pharmacy journeys are started (each then waits on a 27-day timer) and, once every one is waiting, the worker's
RSS is read. A pass of ``state`` queries over a sample then shows what a smaller cache costs: a query (or an
event) for a journey evicted from the cache replays its history first.

    python -m bench.memory [--journeys N] [--cache SIZE ...] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.common import PRAGMAS, dev_server, parser, report
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneySnapshot
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import make_engine
from testkit.harness import ROOT


def run_worker(cache: int) -> None:
    """The worker process: ``journeys worker`` with the workflow cache size under test.

    ``journey_worker`` takes no cache size (yet), so its ``Worker`` is given one here; everything else it
    registers stays exactly what production runs.
    """
    import temporalio.worker

    import workers.worker
    from runtime.settings import Settings
    from starter.commands.worker import serve

    setattr(workers.worker, "Worker", functools.partial(temporalio.worker.Worker, max_cached_workflows=cache))  # noqa: B010
    asyncio.run(serve(Settings()))


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


async def _drive(count: int, concurrency: int, one: Any) -> None:
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await one(index)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def measure_one(env: Any, folder: Path, cache: int, journeys: int, sample: int) -> dict[str, Any]:
    task_queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
    target = env.client.service_client.config.target_host
    # `journeys setup`'s part: the worker refuses a database whose schema it has not upgraded.
    make_engine(f"sqlite:///{folder / task_queue / 'journeys.db'}").dispose()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", "--worker-process", str(cache)],
        env={
            **os.environ,
            "JOURNEYS_TEMPORAL_ADDRESS": target,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_DATA_DIR": str(folder / task_queue),
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(folder / f"{task_queue}.log").open("wb"),
    )
    try:
        worker = psutil.Process(process.pid)
        # Started with the step searchable: the count of journeys waiting below reads their JourneyStatus.
        client = JourneyClient(env.client, load_catalog(ROOT / "journeys"), task_queue=task_queue, search_by_step=True)
        customers = [f"mem-{cache}-{task_queue[-8:]}-{i}" for i in range(journeys)]
        filled = datetime.now(UTC).isoformat()

        async def start(index: int) -> None:
            event = JourneyEvent(
                id=uuid.uuid4().hex,
                type="prescription_filled",
                properties={"rx_id": "rx", "days_supply": 30, "refills_remaining": 1, "filled_at": filled},
            )
            await client.send_event(customers[index], event)

        await asyncio.sleep(3)
        idle = _rss_mib(worker)
        started = time.perf_counter()
        await _drive(journeys, 64, start)
        query = f"TaskQueue = '{task_queue}' AND JourneyStatus = 'waiting'"
        waiting = 0
        while time.perf_counter() - started < 1800:
            waiting = (await env.client.count_workflows(query)).count
            if waiting >= journeys:
                break
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: {(folder / f'{task_queue}.log').read_text()[-2000:]}")
            print(f"cache {cache}: {waiting}/{journeys} waiting", file=sys.stderr, flush=True)
            await asyncio.sleep(1)
        settled_in = time.perf_counter() - started
        await asyncio.sleep(3)
        loaded = _rss_mib(worker)

        async def ask(index: int) -> None:
            handle = env.client.get_workflow_handle(journey_workflow_id("pharmacy_refill", customers[index], "rx"))
            await handle.query("state", result_type=JourneySnapshot)

        # The sample is the journeys started first: with a cache smaller than N they are the ones evicted.
        query_started = time.perf_counter()
        await _drive(min(sample, journeys), 16, ask)
        queries_per_s = min(sample, journeys) / (time.perf_counter() - query_started)
        return {
            "max_cached_workflows": cache,
            "journeys_waiting": waiting,
            "idle_rss_mib": idle,
            "rss_mib": loaded,
            "kib_per_cached_journey": (loaded - idle) * 1024 / min(cache, journeys),
            "start_and_settle_s": settled_in,
            "queries_per_s": queries_per_s,
        }
    finally:
        process.terminate()
        process.wait(30)


async def measure(journeys: int, caches: list[int], sample: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server(Path(tmp) / "temporal.db", PRAGMAS["wal"]) as env:
            return [await measure_one(env, Path(tmp), cache, journeys, sample) for cache in caches]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker-process":
        run_worker(int(sys.argv[2]))
        return
    args_parser: argparse.ArgumentParser = parser(__doc__ or "")
    args_parser.add_argument("--journeys", type=int, default=10_000)
    args_parser.add_argument("--cache", type=int, nargs="*", default=[100, 1000, 10_000])
    args_parser.add_argument("--sample", type=int, default=500, help="state queries after settling")
    args = args_parser.parse_args()
    journeys, caches, sample = (100, [10, 1000], 50) if args.quick else (args.journeys, args.cache, args.sample)
    rows = asyncio.run(measure(journeys, caches, sample))
    report(
        "worker memory with journeys waiting on timers",
        {"journeys": journeys, "journey": "pharmacy_refill (27-day timer)", "sqlite": "wal", "sample_queries": sample},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
