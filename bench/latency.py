"""Latency at a fixed rate, p50 / p95 / p99: event accepted to message recorded as sent, and event sent to the
event API to the signal in the journey's history.

A dev server on a SQLite file, a ``journeys worker`` in its own process (as deployed) and two maps written to a
temporary journeys folder. Events go in at a fixed rate (open loop, so a slow answer does not slow the load):

- **to sent**: ``bench_welcome`` (on ``signed_up``, send a transactional email at once), events through
  ``JourneyClient``; from ``send_event`` returning (the event is durable) to the ledger row's ``updated_at``
  when the outbox recorded the message as sent.
- **to signal** (issue 18: under 100 ms at p99 at 20 events/s): ``bench_wait`` journeys, started beforehand,
  wait for ``trial_converted``; the event API (``journeys api``, its own process) takes each as ``POST
  /v1/track``; from the moment the request is sent to the ``WorkflowExecutionSignaled`` event's time in the
  journey's history (the server's clock: the same machine).

    python -m bench.latency [--rate EVENTS_PER_S] [--seconds S] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.common import PRAGMAS, dev_server, parser, percentile, report
from bench.ingest import KeepAliveClient, _start_api
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import Customer, Delivery, make_engine
from testkit.harness import ROOT

MAP = """\
name: bench_welcome
version: 1
description: One message at once, to measure the path from event to send.
entry:
  events: [signed_up]
  reentry: after_end
steps:
  - id: welcome
    send:
      channel: email
      template: bench_welcome
      category: transactional
"""

TEMPLATE = """\
email:
  subject: Welcome
  text: "Hello {{ profile.first_name }}, welcome."
  html: "<p>Hello {{ profile.first_name }}, welcome.</p>"
"""


WAITING_MAP = """\
name: bench_wait
version: 1
description: Waits for one event, to measure the path from an event sent to its signal in the history.
entry:
  events: [trial_started]
  reentry: after_end
steps:
  - id: waiting
    wait_for:
      events: [trial_converted]
      timeout: 30d
      on_timeout: end
"""


def write_journeys(folder: Path) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "bench_welcome.yaml").write_text(MAP)
    (folder / "bench_wait.yaml").write_text(WAITING_MAP)
    (folder / "templates" / "bench_welcome.yaml").write_text(TEMPLATE)
    return folder


def start_worker(target: str, task_queue: str, data_dir: Path, journeys_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JOURNEYS_TEMPORAL_ADDRESS": target,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(data_dir),
        "JOURNEYS_JOURNEYS_DIR": str(journeys_dir),
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "journeys"), "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure(rate: float, seconds: float, setting: str) -> list[dict[str, Any]]:
    """Both latencies, one after the other, on one dev server and worker."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        journeys_dir = write_journeys(folder / "journeys")
        engine = make_engine(f"sqlite:///{folder / 'journeys.db'}")
        async with dev_server(folder / "temporal.db", PRAGMAS[setting]) as env:
            task_queue = f"bench-latency-{uuid.uuid4().hex[:8]}"
            target = env.client.service_client.config.target_host
            worker = start_worker(target, task_queue, folder, journeys_dir)
            try:
                client = JourneyClient(env.client, load_catalog(journeys_dir), task_queue=task_queue)
                rows = [await _to_sent(client, engine, rate, seconds, setting)]
                api_dir = folder / "api"
                api_dir.mkdir()
                api = _start_api(target, task_queue, api_dir, journeys_dir=journeys_dir)
                if api is not None:
                    try:
                        rows.append(await _to_signal(env.client, api[1], rate, seconds, setting))
                    finally:
                        api[0].terminate()
                        api[0].wait(10)
            finally:
                worker.terminate()
                worker.wait(30)
        engine.dispose()
    return rows


async def _at_rate(rate: float, items: list[str], one: Callable[[str], Coroutine[Any, Any, None]]) -> float:
    """``one(item)`` for each item, started at ``rate`` a second whatever the answers' pace; seconds taken."""
    started = time.perf_counter()
    tasks = []
    for index, item in enumerate(items):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(item)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def _row(path: str, setting: str, rate: float, total: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    return {
        "path": path,
        "sqlite": setting,
        "offered_per_s": rate,
        "achieved_per_s": total / seconds,
        "events": total,
        "sent": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
    }


async def _to_sent(client: JourneyClient, engine: Any, rate: float, seconds: float, setting: str) -> dict[str, Any]:
    total = int(rate * seconds)
    customers = [f"lat-{i}" for i in range(total + 5)]
    with Session(engine) as session:
        for customer in customers:
            session.add(Customer(id=customer, traits={"first_name": "Sam", "email": f"{customer}@example.invalid"}))
        session.commit()
    # Warm up: the worker's first workflow task imports and compiles what later ones reuse.
    for customer in customers[total:]:
        await client.send_event(customer, JourneyEvent(id=uuid.uuid4().hex, type="signed_up"))
    await _wait_for_sends(engine, customers[total:], 60)
    accepted: dict[str, datetime] = {}

    async def one(customer: str) -> None:
        await client.send_event(customer, JourneyEvent(id=uuid.uuid4().hex, type="signed_up"))
        accepted[customer] = datetime.now(UTC)

    offered_for = await _at_rate(rate, customers[:total], one)
    sent = await _wait_for_sends(engine, customers[:total], 120)
    latencies = [(sent[c] - accepted[c]).total_seconds() * 1000 for c in sent if c in accepted]
    return _row("event accepted -> message sent (JourneyClient)", setting, rate, total, offered_for, latencies)


async def _to_signal(temporal: Client, api_url: str, rate: float, seconds: float, setting: str) -> dict[str, Any]:
    """``trial_converted`` through ``POST /v1/track`` to journeys waiting for it: the request's start to the
    signal's time in the history."""
    total = int(rate * seconds)
    customers = [f"wait-{i}" for i in range(total)]
    api = KeepAliveClient(api_url)

    def track(customer: str, event: str) -> dict[str, Any]:
        return {"type": "track", "messageId": uuid.uuid4().hex, "userId": customer, "event": event}

    try:
        for customer in customers:  # the journeys, running before the measured events
            await api.post("/v1/track", track(customer, "trial_started"))
        sent_at: dict[str, datetime] = {}

        async def one(customer: str) -> None:
            body = track(customer, "trial_converted")
            sent_at[customer] = datetime.now(UTC)
            await api.post("/v1/track", body)

        offered_for = await _at_rate(rate, customers, one)
    finally:
        await api.aclose()
    latencies: list[float] = []
    for customer in customers:
        handle = temporal.get_workflow_handle(journey_workflow_id("bench_wait", customer))
        signalled = [
            e.event_time.ToDatetime(tzinfo=UTC)
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        if len(signalled) >= 2:  # the first came with the start (signal-with-start)
            latencies.append((signalled[-1] - sent_at[customer]).total_seconds() * 1000)
    return _row("event sent -> signal in history (API /v1/track)", setting, rate, total, offered_for, latencies)


async def _wait_for_sends(engine: Any, customers: list[str], timeout: float) -> dict[str, datetime]:
    """When each customer's message was recorded sent (UTC), waiting up to ``timeout`` s for all of them."""
    wanted = set(customers)
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = session.exec(select(Delivery).where(Delivery.status == "sent")).all()
        sent = {
            r.customer_id: r.updated_at.replace(tzinfo=r.updated_at.tzinfo or UTC)
            for r in rows
            if r.customer_id in wanted
        }
        if len(sent) == len(wanted) or time.monotonic() > deadline:
            return sent
        await asyncio.sleep(0.2)


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--rate", type=float, default=50.0, help="events offered per second")
    args_parser.add_argument("--seconds", type=float, default=20.0)
    args_parser.add_argument("--pragmas", choices=sorted(PRAGMAS), default="wal")
    args = args_parser.parse_args()
    rate, seconds = (10.0, 2.0) if args.quick else (args.rate, args.seconds)
    rows = asyncio.run(measure(rate, seconds, args.pragmas))
    report(
        "latency",
        {
            "journeys": "bench_welcome (one email), bench_wait (waits for an event)",
            "worker": "journeys worker, separate process",
            "clients": "JourneyClient (to sent), journeys api in its own process (to signal)",
        },
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
