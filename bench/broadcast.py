"""Broadcast fan-out: journeys started per second by a broadcast, against a raw signal-with-start loop.

One dev server (SQLite, WAL) and one SQLite database of ``--customers`` customers, all members of one segment.
In alternating rounds the same number of journeys is started two ways, at the same concurrency:

- ``broadcast``: the fan-out workflow (``workflows.broadcasts``) with its activities in this process: pages read
  by key, consent and caps checked in SQL, one journey per member started through
  ``JourneyClient.start_broadcast`` (``--concurrency`` starts in flight), the rate limit set out of the way;
  timed from the workflow's start to its result;
- ``raw``: ``temporalio.client.Client.start_workflow`` with the same input, trigger and id policy, ``--concurrency``
  at once, ids from a list in memory.

No journey worker runs: the figures measure the starts accepted (the journey durable with its trigger), not
the journeys' work, as ``bench.ingest`` does. The ratio of the two, in the same run, is the figure we claim.

    python -m bench.broadcast [--customers N] [--concurrency C] [--rounds R] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import Worker

from activities.broadcasts import BroadcastActivities
from bench.common import PRAGMAS, dev_server, median, parser, report
from contracts.broadcasts import (
    BROADCAST_WORKFLOW,
    OCCURRENCE_PROPERTY,
    BroadcastInput,
    BroadcastResult,
    broadcast_event_type,
    occurrence_workflow_id,
)
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from journeymap import JourneyMap
from journeymap.loader import load_map_text
from runtime import event_loop
from runtime.settings import DeliverySettings
from starter.client import JourneyClient, entry_search_attributes, entry_summary
from storage import make_engine
from storage.tables import Customer, SegmentMembership
from workers.worker import workflow_runner
from workflows.broadcasts import BroadcastWorkflow
from workflows.journey import JourneyWorkflow
from workflows.models import JourneyInput

MAP = """
name: flu
entry: {events: [broadcast.flu], key: broadcast}
steps:
  - id: remind
    wait: {duration: 1d}
"""


def _fill(url: str, customers: int) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    ids = [f"c{i:07d}" for i in range(customers)]
    with engine.begin() as connection:
        for start in range(0, customers, 10_000):
            chunk = ids[start : start + 10_000]
            connection.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [{"id": c, "traits": {"pharmacy": True}, "updated_at": now} for c in chunk],
            )
            connection.execute(
                insert(SegmentMembership.__table__),  # type: ignore[attr-defined]
                [{"segment": "audience", "customer_id": c, "entered_at": now} for c in chunk],
            )
    engine.dispose()


async def _broadcast(client: Client, queue: str, label: str, concurrency: int) -> float:
    occurrence = occurrence_workflow_id("flu", label)
    started = time.perf_counter()
    result = await client.execute_workflow(
        BROADCAST_WORKFLOW,
        BroadcastInput(
            broadcast="flu",
            journey="flu",
            segment="audience",
            category="transactional",
            rate_per_second=1_000_000,
            page_size=1000,
        ),
        id=occurrence,
        task_queue=queue,
        result_type=BroadcastResult,
    )
    done: int = result.progress.started
    return done / (time.perf_counter() - started)


async def _raw(client: Client, journey: JourneyMap, label: str, customers: int, concurrency: int) -> float:
    occurrence = occurrence_workflow_id("flu", label)
    ids = [f"c{i:07d}" for i in range(customers)]
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < len(ids):
            customer, next_index = ids[next_index], next_index + 1
            event = JourneyEvent(
                id=f"{occurrence}/{customer}",
                type=broadcast_event_type("flu"),
                properties={OCCURRENCE_PROPERTY: occurrence},
                timestamp=datetime.now(UTC),
            )
            await client.start_workflow(
                JourneyWorkflow.run,
                JourneyInput(journey=journey, customer_id=customer, instance_key=occurrence),
                id=journey_workflow_id("flu", customer, occurrence),
                task_queue="journeys-nobody-polls",
                start_signal="event",
                start_signal_args=[event],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=entry_search_attributes("flu", customer, search_by_step=False),
                static_summary=entry_summary(journey, customer),
            )

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return customers / (time.perf_counter() - started)


async def measure(customers: int, concurrency: int, rounds: int) -> list[dict[str, Any]]:
    journey = load_map_text(MAP, source="flu.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'journeys.db'}"
        _fill(url, customers)
        engine = make_engine(url)
        async with dev_server(Path(tmp) / "temporal.db", PRAGMAS["wal"]) as env:
            queue = f"bench-broadcast-{uuid.uuid4().hex[:8]}"
            journeys = JourneyClient(env.client, {"flu": journey}, task_queue="journeys-nobody-polls")
            activities = BroadcastActivities(
                engine, DeliverySettings(), journeys.start_broadcast, concurrency=concurrency
            )
            rates: dict[str, list[float]] = {"broadcast": [], "raw": []}
            with ThreadPoolExecutor(max_workers=4) as executor:
                async with Worker(
                    env.client,
                    task_queue=queue,
                    workflows=[BroadcastWorkflow],
                    activities=[activities.start_broadcast_page, activities.segment_size],
                    activity_executor=executor,
                    workflow_runner=workflow_runner(),
                ):
                    for round_number in range(rounds):
                        order = ["broadcast", "raw"] if round_number % 2 == 0 else ["raw", "broadcast"]
                        for path in order:
                            label = f"{path}-{round_number}"
                            if path == "broadcast":
                                rates[path].append(await _broadcast(env.client, queue, label, concurrency))
                            else:
                                rates[path].append(await _raw(env.client, journey, label, customers, concurrency))
        engine.dispose()
    raw = median(rates["raw"])
    return [
        {"path": path, "journeys_per_s": median(values), "best": max(values), "ratio_to_raw": median(values) / raw}
        for path, values in rates.items()
    ]


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--customers", type=int, default=10_000, help="members of the segment (journeys a round)")
    args_parser.add_argument("--concurrency", type=int, default=32, help="journey starts in flight, both paths")
    args_parser.add_argument("--rounds", type=int, default=3)
    args = args_parser.parse_args()
    if args.quick:
        args.customers, args.rounds, args.concurrency = 200, 1, 16
    rows = event_loop.run(measure(args.customers, args.concurrency, args.rounds))
    report(
        "broadcast",
        {
            "customers": args.customers,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "statistic": "median of rounds",
            "worker": "the fan-out only (no journey worker: starts accepted)",
            "server": "temporal dev server, SQLite WAL",
        },
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
