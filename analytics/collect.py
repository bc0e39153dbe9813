"""Refresh :class:`storage.tables.JourneyRun` from the journeys themselves (their ``state`` query).

Which workflows to ask is worked out from the recorded events and the catalog by the client's own routing
decision (``journeymap.routing``: an entry event of journey J for customer C, with J's instance key, names J's
workflow for C). So it needs no visibility store: it works on the time-skipping test server as on a production
cluster.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts.journey import JourneySnapshot
from journeymap import JourneyMap
from journeymap.routing import Routes
from storage.tables import Event, JourneyRun


def workflow_ids(engine: Engine, catalog: dict[str, JourneyMap]) -> dict[str, tuple[str, str]]:
    """Every journey workflow an entry event may have started: ``{workflow_id: (journey, customer_id)}``."""
    routes = Routes(catalog)
    found: dict[str, tuple[str, str]] = {}
    with Session(engine) as session:
        rows = session.exec(
            select(Event.customer_id, Event.type, Event.properties).where(
                Event.type.in_(sorted(routes.entry_event_types))  # type: ignore[attr-defined]
            )
        )
        for customer_id, event_type, properties in rows:
            for target in routes.targets(customer_id, event_type, properties):
                if target.action == "start" and target.workflow_id is not None:
                    found[target.workflow_id] = (target.journey.name, customer_id)
    return found


async def refresh_runs(client: Client, engine: Engine, catalog: dict[str, JourneyMap], *, concurrency: int = 16) -> int:
    """Ask every known journey workflow for its state and store it; returns how many answered.

    A workflow that is gone (never started, or past the namespace's retention) keeps its last stored row.
    """
    targets = workflow_ids(engine, catalog)
    limit = asyncio.Semaphore(concurrency)

    async def ask(workflow_id: str) -> JourneySnapshot | None:
        async with limit:
            try:
                snapshot: JourneySnapshot = await client.get_workflow_handle(workflow_id).query(
                    "state", result_type=JourneySnapshot
                )
                return snapshot
            except (RPCError, WorkflowQueryFailedError):
                return None

    answers = await asyncio.gather(*(ask(w) for w in targets))
    now = datetime.now(UTC)
    rows = [
        JourneyRun(
            workflow_id=workflow_id,
            journey=snapshot.journey,
            customer_id=snapshot.customer_id,
            status=snapshot.status,
            step=snapshot.step,
            end_reason=snapshot.end_reason,
            entered_at=snapshot.entered_at,
            goal_reached_at=snapshot.goal_reached_at,
            split_variants=dict(snapshot.split_variants),
            refreshed_at=now,
        )
        for workflow_id, snapshot in zip(targets, answers, strict=True)
        if snapshot is not None
    ]
    await asyncio.to_thread(_store, engine, rows)
    return len(rows)


def _store(engine: Engine, rows: list[JourneyRun]) -> None:
    with Session(engine) as session:
        for row in rows:
            session.merge(row)
        session.commit()
