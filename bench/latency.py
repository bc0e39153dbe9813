"""Latency: event accepted to message recorded as sent, p50 / p95 / p99, at a stated load.

A dev server on a SQLite file, a ``journeys worker`` in its own process (as deployed), and a one-step journey
(``bench_welcome``: on ``signed_up``, send a transactional email at once) written to a temporary journeys
folder. Events go in at a fixed rate (open loop, so a slow answer does not slow the load) through
``JourneyClient`` (or the HTTP API with ``--api``); latency is from ``send_event`` returning (the event is
durable) to the ledger row's ``updated_at`` when the outbox recorded the message as sent.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from bench.common import PRAGMAS, dev_server, parser, percentile, report
from contracts.events import JourneyEvent
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


def write_journeys(folder: Path) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "bench_welcome.yaml").write_text(MAP)
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


async def measure(rate: float, seconds: float, setting: str) -> dict[str, Any]:
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
                total = int(rate * seconds)
                customers = [f"lat-{i}" for i in range(total + 5)]
                with Session(engine) as session:
                    for customer in customers:
                        session.add(
                            Customer(id=customer, traits={"first_name": "Sam", "email": f"{customer}@example.invalid"})
                        )
                    session.commit()
                # Warm up: the worker's first workflow task imports and compiles what later ones reuse.
                for customer in customers[total:]:
                    await client.send_event(customer, JourneyEvent(id=uuid.uuid4().hex, type="signed_up"))
                await _wait_for_sends(engine, customers[total:], 60)
                accepted: dict[str, datetime] = {}

                async def one(customer: str) -> None:
                    await client.send_event(customer, JourneyEvent(id=uuid.uuid4().hex, type="signed_up"))
                    accepted[customer] = datetime.now(UTC)

                started = time.perf_counter()
                tasks = []
                for index, customer in enumerate(customers[:total]):
                    delay = started + index / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(customer)))
                await asyncio.gather(*tasks)
                offered_for = time.perf_counter() - started
                sent = await _wait_for_sends(engine, customers[:total], 120)
            finally:
                worker.terminate()
                worker.wait(30)
        engine.dispose()
    latencies = [(sent[c] - accepted[c]).total_seconds() * 1000 for c in sent if c in accepted]
    return {
        "sqlite": setting,
        "offered_per_s": rate,
        "achieved_per_s": total / offered_for,
        "events": total,
        "sent": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
    }


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
    row = asyncio.run(measure(rate, seconds, args.pragmas))
    report(
        "latency event accepted -> message recorded sent",
        {
            "journey": "bench_welcome (one email)",
            "worker": "journeys worker, separate process",
            "client": "JourneyClient",
        },
        [row],
        args.json,
    )


if __name__ == "__main__":
    main()
