"""``journeys describe CUSTOMER``: every journey of a customer, its step, what it waits for and until when, its sends.

Journeys are found by the ``JourneyCustomerId`` search attribute (visibility), then each running one is asked
for its state (the ``state`` query). A journey whose worker is down, or that has ended, is described from its
search attributes alone. Only ids, steps and channels are printed: no personal data.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts import search_attributes as sa
from contracts.journey import JourneySnapshot, SendRecord
from runtime.connection import connect
from runtime.settings import Settings

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
    note: str | None = None


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
    return await describe_customer(await connect(Settings()), customer_id, running_only=running_only)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def describe_customer(
    client: Client, customer_id: str, *, running_only: bool = False
) -> list[JourneyDescription]:
    """Every journey of ``customer_id``, newest first."""
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
            step=attrs.get(sa.STEP),
            waiting_for=[],
            wait_until=attrs.get(sa.WAIT_UNTIL),
            sends=[],
            started=execution.start_time,
        )
        if execution.status == WorkflowExecutionStatus.RUNNING:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                snapshot = await handle.query("state", result_type=JourneySnapshot, rpc_timeout=QUERY_TIMEOUT)
            except (RPCError, WorkflowQueryFailedError) as exc:
                description.note = f"state unavailable ({exc}); is a worker running?"
            else:
                description = description.model_copy(
                    update={
                        "status": snapshot.status,
                        "step": snapshot.step,
                        "waiting_for": snapshot.waiting_for,
                        "wait_until": snapshot.wait_until,
                        "sends": snapshot.sends,
                    }
                )
        found.append(description)
    return found


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
    if d.note:
        lines.append(f"  note:      {d.note}")
    return "\n".join(lines)
