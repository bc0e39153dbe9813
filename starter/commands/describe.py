"""``journeys describe CUSTOMER``: every journey of a customer, its step, what it waits for and until when, its sends.

Journeys are found by the ``JourneyCustomerId`` search attribute (visibility), then each running one is asked
for its state (the ``state`` query). A journey whose worker is down, whose state this process cannot decrypt, or
that has ended is described from its search attributes, and its sends from the delivery ledger (the rows keyed
under its workflow id, made while it ran). Only ids, steps and channels are printed: no personal data.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts import search_attributes as sa
from contracts.journey import Fault, JourneyResult, JourneySnapshot, SendRecord
from runtime.codec import CodecError
from runtime.connection import connect
from runtime.settings import Settings
from storage import Delivery, make_engine

QUERY_TIMEOUT = timedelta(seconds=5)


class JourneyDescription(BaseModel):
    """One journey of the customer, as ``describe`` shows it."""

    workflow_id: str
    journey: str | None
    execution: str
    """Temporal's view: Running, Completed, ContinuedAsNew..."""
    status: str | None
    step: str | None
    waiting_for: list[str]
    wait_until: datetime | None
    sends: list[SendRecord]
    started: datetime
    closed: datetime | None = None
    note: str | None = None
    fault: Fault | None = None
    """The latest fault (open while the status is ``faulted``): ``journeys resume`` decides what happens next."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("describe", help="every journey of a customer: step, waits, sends")
    parser.add_argument("customer_id")
    parser.add_argument("--json", action="store_true", help="one JSON object per journey")
    parser.add_argument("--running", action="store_true", help="only journeys still running")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found = asyncio.run(_describe(args.customer_id, running_only=args.running))
    if not found:
        print(f"no journeys for customer {args.customer_id}")
        return 0
    for journey in found:
        print(journey.model_dump_json() if args.json else render(journey))
    return 0


async def _describe(customer_id: str, *, running_only: bool) -> list[JourneyDescription]:
    settings = Settings()
    client = await connect(settings)
    engine = make_engine(settings.database)
    try:
        return await describe_customer(client, customer_id, running_only=running_only, engine=engine)
    finally:
        engine.dispose()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def describe_customer(
    client: Client, customer_id: str, *, running_only: bool = False, engine: Engine | None = None
) -> list[JourneyDescription]:
    """Every journey of ``customer_id``, newest first; with ``engine``, sends the state cannot give come from
    the delivery ledger."""
    query = f"{sa.CUSTOMER_ID.name} = '{_quote(customer_id)}'"
    if running_only:
        query += " AND ExecutionStatus = 'Running'"
    found: list[JourneyDescription] = []
    async for execution in client.list_workflows(query):
        attrs = execution.typed_search_attributes
        description = JourneyDescription(
            workflow_id=execution.id,
            journey=attrs.get(sa.JOURNEY_NAME),
            execution=execution.status.name.title().replace("_", "") if execution.status else "Unknown",
            status=attrs.get(sa.STATUS),
            step=None if attrs.get(sa.STEP) == "-" else attrs.get(sa.STEP),  # "-": at no step (ended)
            waiting_for=[],
            wait_until=attrs.get(sa.WAIT_UNTIL),
            sends=[],
            started=execution.start_time,
            closed=execution.close_time,
        )
        if execution.status == WorkflowExecutionStatus.RUNNING:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                snapshot = await handle.query("state", result_type=JourneySnapshot, rpc_timeout=QUERY_TIMEOUT)
            except (RPCError, WorkflowQueryFailedError) as exc:
                description.note = f"state unavailable ({exc}); is a worker running?"
            except CodecError as exc:
                description.note = f"state unreadable: {exc}; give this command the workers' codec keys"
            else:
                description = description.model_copy(
                    update={
                        "status": snapshot.status,
                        "step": snapshot.step,
                        "waiting_for": snapshot.waiting_for,
                        "wait_until": snapshot.wait_until,
                        "sends": snapshot.sends,
                        "fault": snapshot.fault,
                    }
                )
        elif execution.status == WorkflowExecutionStatus.COMPLETED and description.status is None:
            # Journeys upsert no status unless the step is searchable (issue 18): how it ended is its result,
            # read from its history (no billable action).
            ended = client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=JourneyResult)
            try:
                result = await ended.result(follow_runs=False, rpc_timeout=QUERY_TIMEOUT)
            except (RPCError, CodecError, WorkflowFailureError) as exc:
                description.note = f"result unreadable ({exc})"
            else:
                description.status = result.status
        found.append(description)
    stateless = [d.note is not None or d.execution != "Running" for d in found]
    if engine is not None and any(stateless):
        rows = await asyncio.to_thread(_ledger, engine, customer_id)
        found = [
            d.model_copy(update={"sends": ledger_sends(d, rows)}) if no_state else d
            for d, no_state in zip(found, stateless, strict=True)
        ]
    return found


def _ledger(engine: Engine, customer_id: str) -> list[Delivery]:
    with Session(engine) as session:
        query = select(Delivery).where(Delivery.customer_id == customer_id).order_by(col(Delivery.id))
        return list(session.exec(query).all())


def ledger_sends(journey: JourneyDescription, rows: list[Delivery]) -> list[SendRecord]:
    """The sends of one execution, from the ledger rows keyed under its workflow id made while it ran.

    Keys are ``<workflow id>/<entry>/<step>/<visit>``; an instance journey's id has one more part, so the count
    of parts tells this journey's rows from those of its instances (``journey/j/c`` vs ``journey/j/c/<key>``).
    """
    prefix = journey.workflow_id + "/"
    by_key: dict[str, list[Delivery]] = {}
    for row in rows:
        rest = row.idempotency_key.removeprefix(prefix)
        at = _utc(row.created_at)
        ran = journey.started <= at and (journey.closed is None or at <= journey.closed)
        if row.idempotency_key.startswith(prefix) and rest.count("/") == 2 and ran:
            by_key.setdefault(row.idempotency_key, []).append(row)
    sends = []
    for key, channels in by_key.items():
        delivered = [r.channel for r in channels if r.status == "sent"]
        sends.append(
            SendRecord(
                step=channels[0].step,
                visit=int(key.rsplit("/", 1)[1]),
                idempotency_key=key,
                delivered=delivered,
                outcome="sent" if delivered else ",".join(sorted({r.status for r in channels})),
                at=max(_utc(r.sent_at or r.updated_at) for r in channels),
            )
        )
    return sorted(sends, key=lambda send: send.at)


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def render(d: JourneyDescription) -> str:
    lines = [f"{d.journey or '?'}  {d.workflow_id}  [{d.execution}, {d.status or 'unknown'}]"]
    lines.append(f"  started:   {d.started.isoformat(timespec='seconds')}")
    if d.step:
        lines.append(f"  step:      {d.step}")
    if d.waiting_for or d.wait_until:
        events = " or ".join(d.waiting_for) if d.waiting_for else "time to pass"
        until = f" until {d.wait_until.isoformat(timespec='minutes')}" if d.wait_until else ""
        lines.append(f"  waits for: {events}{until}")
    for send in d.sends:
        channels = ", ".join(send.delivered) or "-"
        lines.append(
            f"  sent:      {send.step} #{send.visit} at {send.at.isoformat(timespec='minutes')}: {send.outcome}"
            f" ({channels})"
        )
    if d.fault is not None:
        f = d.fault
        state = f"resolved: {f.resolved}" if f.resolved else f"open, on_error {f.on_error}"
        lines.append(f"  fault:     {f.where} at {f.at.isoformat(timespec='minutes')}: {f.message} ({state})")
        if not f.resolved:
            lines.append(f"             journeys resume {d.workflow_id} [--goto STEP | --end]")
    if d.note:
        lines.append(f"  note:      {d.note}")
    return "\n".join(lines)
