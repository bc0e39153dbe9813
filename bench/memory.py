"""Worker memory: resident set size with N journeys waiting on timers, for several workflow-cache sizes.

N pharmacy journeys are started on one task queue (each then waits on a 27-day timer) by a loading worker,
which then stops. For each ``max_cached_workflows`` a fresh ``journeys worker`` runs on that queue in its own
process, given the size as a deployment gives it (``JOURNEYS_WORKER_MAX_CACHED_WORKFLOWS``); the size printed
is the one the worker reports at start (``worker_max_cached_workflows``), so a setting that does not reach the
SDK shows. Its RSS is read idle, then once ``state`` queries have filled its cache (a query for a journey the
worker does not hold replays its history into the cache, as the journey's next timer or event would): RSS
grows with the journeys cached, min(cache, N), not with the journeys waiting, which live in Temporal. The query
rates show what a miss costs (``replayed_queries_per_s``) against a hit (``cached_queries_per_s``).

    python -m bench.memory [--journeys N] [--cache SIZE ...] [--sample N] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowQueryFailedError

from bench.common import PRAGMAS, dev_server, parser, report
from bench.worker_process import SLOTS, journeys_worker
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneySnapshot
from starter.catalog import load_catalog
from starter.client import JourneyClient
from testkit.harness import ROOT


async def _drive(count: int, concurrency: int, one: Any) -> None:
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await one(index)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


LOADER_CACHE = 2_000
"""The loading worker's cache; journeys are started in batches of half of it, so none is evicted mid-start."""


async def load(env: Any, folder: Path, task_queue: str, journeys: int) -> list[str]:
    """Start ``journeys`` pharmacy journeys on ``task_queue`` and return their workflow ids once all wait."""
    target = env.client.service_client.config.target_host
    # Started with the step searchable: the count of journeys waiting below reads their JourneyStatus.
    client = JourneyClient(env.client, load_catalog(ROOT / "journeys"), task_queue=task_queue, search_by_step=True)
    customers = [f"mem-{task_queue[-8:]}-{i}" for i in range(journeys)]
    filled = datetime.now(UTC).isoformat()
    query = f"TaskQueue = '{task_queue}' AND JourneyStatus = 'waiting'"

    async def start(index: int) -> None:
        event = JourneyEvent(
            id=uuid.uuid4().hex,
            type="prescription_filled",
            properties={"rx_id": "rx", "days_supply": 30, "refills_remaining": 1, "filled_at": filled},
        )
        await client.send_event(customers[index], event)

    async with journeys_worker(
        target, folder, task_queue, WORKER_MAX_CACHED_WORKFLOWS=str(LOADER_CACHE), **SLOTS
    ) as worker:
        batch = LOADER_CACHE // 2
        for first in range(0, journeys, batch):
            count = min(batch, journeys - first)
            await _drive(count, 64, lambda i, first=first: start(first + i))
            while (waiting := (await env.client.count_workflows(query)).count) < first + count:
                worker.check_running()
                print(f"{waiting}/{journeys} waiting", file=sys.stderr, flush=True)
                await asyncio.sleep(1)
    return [journey_workflow_id("pharmacy_refill", customer, "rx") for customer in customers]


async def measure_one(
    env: Any, folder: Path, task_queue: str, ids: list[str], cache: int, sample: int
) -> dict[str, Any]:
    """A fresh worker with ``cache`` places on the loaded queue: idle, then with its cache filled by queries."""
    target = env.client.service_client.config.target_host
    async with journeys_worker(target, folder, task_queue, WORKER_MAX_CACHED_WORKFLOWS=str(cache), **SLOTS) as worker:
        if worker.max_cached_workflows != cache:
            raise RuntimeError(f"asked for a cache of {cache} journeys, the worker runs {worker.max_cached_workflows}")

        retried = 0

        async def ask(index: int) -> None:
            # On a starved core a replay can outlast the SDK's 2-second deadlock detector; the query then fails
            # and is asked again (counted), as a caller would.
            nonlocal retried
            for attempt in range(5):
                try:
                    await env.client.get_workflow_handle(ids[index]).query("state", result_type=JourneySnapshot)
                    return
                except WorkflowQueryFailedError:
                    if attempt == 4:
                        raise
                    retried += 1

        await asyncio.sleep(3)
        idle = worker.rss_mib()
        # A query for a journey the worker does not hold replays its history into the cache, exactly as its next
        # timer or event would; the first min(cache, N) fill it.
        fill = min(cache, len(ids))
        began = time.perf_counter()
        await _drive(fill, 16, ask)
        replayed_per_s = fill / (time.perf_counter() - began)
        worker.check_running()
        await asyncio.sleep(3)
        loaded = worker.rss_mib()
        # The last ones filled are still cached: what a query (or an event) costs without a replay.
        again = min(sample, fill)
        began = time.perf_counter()
        await _drive(again, 16, lambda i: ask(fill - again + i))
        cached_per_s = again / (time.perf_counter() - began)
        return {
            "max_cached_workflows": cache,
            "worker_max_cached_workflows": worker.max_cached_workflows,
            "journeys_waiting": len(ids),
            "cached": fill,
            "idle_rss_mib": idle,
            "rss_mib": loaded,
            "kib_per_cached_journey": (loaded - idle) * 1024 / fill,
            "replayed_queries_per_s": replayed_per_s,
            "cached_queries_per_s": cached_per_s,
            "queries_retried": retried,
        }


async def measure(journeys: int, caches: list[int], sample: int) -> tuple[float, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server(Path(tmp) / "temporal.db", PRAGMAS["wal"]) as env:
            task_queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
            began = time.perf_counter()
            ids = await load(env, Path(tmp), task_queue, journeys)
            starts_per_s = journeys / (time.perf_counter() - began)
            rows = []
            for cache in caches:
                rows.append(await measure_one(env, Path(tmp), task_queue, ids, cache, sample))
                print(f"row: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)  # a long run's rows so far
            return starts_per_s, rows


def main() -> None:
    args_parser: argparse.ArgumentParser = parser(__doc__ or "")
    args_parser.add_argument("--journeys", type=int, default=10_000)
    args_parser.add_argument("--cache", type=int, nargs="*", default=[100, 1000, 10_000])
    args_parser.add_argument("--sample", type=int, default=500, help="queries of cached journeys")
    args = args_parser.parse_args()
    journeys, caches, sample = (100, [10, 1000], 50) if args.quick else (args.journeys, args.cache, args.sample)
    starts_per_s, rows = asyncio.run(measure(journeys, caches, sample))
    settings = {"journeys": journeys, "journey": "pharmacy_refill (27-day timer)", "sqlite": "wal"}
    report(
        "worker memory with journeys waiting on timers",
        settings | {"cached_queries": sample, "started_and_settled_per_s": round(starts_per_s, 1)},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
