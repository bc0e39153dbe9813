"""Wake-ups: how fast one worker gets through N journeys whose timers all fire at the same moment.

The monthly statement, as a bank runs it: every statement is ready at month's end and goes out at the same
morning hour, so N timers fire at once. The bench runs ``journeys/monthly_statement.yaml`` with one step put in
front of its email, ``wait: {until: <the moment>}``, on a real-clock dev server: N journeys are started (each
then waits for the moment), the moment is set far enough ahead for all of them to be waiting when it comes
(``--lead``), and once it passes the bench counts, twice a second, the journeys done (woken, their email sent
through the outbox, ended). It prints the rate (journeys done per second from the moment to the last), when
half and when all were done, and the CPU the worker and the Temporal server spent per journey woken, which is
what sizing a deployment needs (docs/scaling.md).

Real clock rather than the time-skipping server: the time-skipping server is an in-memory test server, and what
a morning's burst costs is the worker's replays and activities *and* the server's persistence; only the dev
server (SQLite) has both. With a workflow cache smaller than N, most journeys are no longer cached when they
wake and are replayed from their history first, as in production.

    python -m bench.wakeup [--journeys N] [--cache SIZE] [--lead SECONDS] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.common import PRAGMAS, dev_server, parser, report
from bench.worker_process import SLOTS, journeys_worker
from contracts.events import JourneyEvent
from starter.catalog import load_catalog
from starter.client import JourneyClient
from testkit.harness import ROOT

MAP = "monthly_statement"


def morning_catalog(folder: Path, moment: datetime) -> Path:
    """A copy of ``journeys/`` whose monthly statement first waits for ``moment`` (an absolute UTC instant)."""
    journeys = folder / "journeys"
    shutil.copytree(ROOT / "journeys", journeys)
    path = journeys / f"{MAP}.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["steps"].insert(0, {"id": "statement_morning", "wait": {"until": repr(moment.isoformat())}})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return journeys


def _server_process() -> psutil.Process | None:
    """The dev server this bench started (a child process named ``temporal``)."""
    for child in psutil.Process().children(recursive=True):
        if child.name().startswith("temporal"):
            return child
    return None


def _cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return float("nan")
    times = process.cpu_times()
    return float(times.user + times.system)


async def _drive(count: int, concurrency: int, one: Any) -> None:
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await one(index)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def measure(journeys: int, cache: int, lead: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with dev_server(folder / "temporal.db", PRAGMAS["wal"]) as env:
            server = _server_process()
            task_queue = f"bench-wakeup-{uuid.uuid4().hex[:8]}"
            target = env.client.service_client.config.target_host
            async with journeys_worker(
                target, folder, task_queue, WORKER_MAX_CACHED_WORKFLOWS=str(cache), **SLOTS
            ) as worker:
                moment = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
                # Started with the step searchable (JOURNEYS_SEARCH_BY_STEP): the counts below read JourneyStatus.
                # That costs each journey two upserts at its wake-up (its end, its cooldown) that the default
                # deployment does not make; the worker's CPU for an upsert is small beside the task's.
                catalog = load_catalog(morning_catalog(folder, moment))
                client = JourneyClient(env.client, catalog, task_queue=task_queue, search_by_step=True)

                async def start(index: int) -> None:
                    event = JourneyEvent(
                        id=uuid.uuid4().hex, type="statement_ready", properties={"statement_id": f"st-{index}"}
                    )
                    await client.send_event(f"wake-{task_queue[-8:]}-{index}", event)

                # In batches of half the cache, each waiting before the next: a start whose journey is evicted
                # before it rests replays at each of its first tasks, and a burst of starts far larger than the
                # cache would thrash it (the morning's wake-up is measured below, not the loading).
                began = time.perf_counter()
                waiting_query = f"TaskQueue = '{task_queue}' AND JourneyStatus = 'waiting'"
                waiting, batch = 0, max(1, cache // 2)
                for first in range(0, journeys, batch):
                    count = min(batch, journeys - first)
                    await _drive(count, 64, lambda i, first=first: start(first + i))
                    while datetime.now(UTC) < moment:
                        waiting = (await env.client.count_workflows(waiting_query)).count
                        if waiting >= first + count:
                            break
                        worker.check_running()
                        print(f"{waiting}/{journeys} waiting", file=sys.stderr, flush=True)
                        await asyncio.sleep(1)
                started_s = time.perf_counter() - began
                print(f"{waiting}/{journeys} waiting; the moment is {moment:%H:%M:%S}", file=sys.stderr, flush=True)
                await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds() - 1))
                cpu_worker, cpu_server, rss_before = _cpu_s(worker.process), _cpu_s(server), worker.rss_mib()
                peak = rss_before
                # A statement's journey that has sent stays open through its re-entry cooldown (60 days, an idle
                # timer), so "done" is its JourneyStatus, upserted when it ends; read twice a second, which is the
                # figures' resolution.
                done_query = f"TaskQueue = '{task_queue}' AND JourneyStatus IN ('cooldown', 'completed')"
                done, half, last = 0, float("nan"), float("nan")
                while done < journeys:
                    await asyncio.sleep(0.5)
                    worker.check_running()
                    peak = max(peak, worker.rss_mib())
                    done = (await env.client.count_workflows(done_query)).count
                    after = (datetime.now(UTC) - moment).total_seconds()
                    if done * 2 >= journeys and half != half:
                        half = after
                    print(f"{done}/{journeys} completed {after:.1f}s after the moment", file=sys.stderr, flush=True)
                last = (datetime.now(UTC) - moment).total_seconds()
                cpu_worker = _cpu_s(worker.process) - cpu_worker
                cpu_server = _cpu_s(server) - cpu_server
                return {
                    "journeys": journeys,
                    "max_cached_workflows": worker.max_cached_workflows,
                    "waiting_at_moment": waiting,
                    "starts_per_s": journeys / started_s,
                    "woken_per_s": journeys / last,
                    "half_done_after_s": half,
                    "all_done_after_s": last,
                    "worker_cpu_ms_per_journey": cpu_worker * 1000 / journeys,
                    "server_cpu_ms_per_journey": cpu_server * 1000 / journeys,
                    "worker_rss_mib": rss_before,
                    "worker_peak_rss_mib": peak,
                }


def main() -> None:
    args_parser: argparse.ArgumentParser = parser(__doc__ or "")
    args_parser.add_argument("--journeys", type=int, default=10_000)
    args_parser.add_argument("--cache", type=int, default=1000, help="the worker's max_cached_workflows")
    args_parser.add_argument(
        "--lead", type=float, help="seconds from the first start to the moment (default: 60 + journeys / 20)"
    )
    args = args_parser.parse_args()
    journeys = 50 if args.quick else args.journeys
    lead = args.lead if args.lead is not None else (20.0 if args.quick else 60 + journeys / 20)
    row = asyncio.run(measure(journeys, args.cache, lead))
    report(
        "journeys woken when their timers fire at the same moment",
        {"journeys": journeys, "journey": f"{MAP} (a wait for one moment, then the email)", "sqlite": "wal"},
        [row],
        args.json,
    )


if __name__ == "__main__":
    main()
