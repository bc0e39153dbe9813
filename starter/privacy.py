"""Data-subject requests end to end: export a customer's data, or forget them (journeys ended first).

A forgotten customer's journeys are **terminated**, not signalled. Termination takes effect on the server at
once, whatever the journey is doing (waiting out quiet hours, retrying a send, asleep for a month), needs no
worker to be up and no workflow code to react, and so cannot race a send the way a signal handled at the
journey's next task could; it changes no workflow code, so recorded histories replay as before, and costs one
call per journey. The reason given is ``erasure request``, no personal data. What the histories hold (encrypted
when a codec key is set) is deleted by the namespace's retention period after the journey closes.

Journeys are found by visibility (``JourneyCustomerId``), plus every id the database knows (the ledger's keys,
the report's runs) and the keyless ids the catalog implies, so the time-skipping server (no visibility) and a
journey that never sent anything are covered too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.privacy import export_customer, forget_customer, ids_of, journey_ids_of
from contracts import search_attributes as sa
from contracts.ids import journey_workflow_id
from journeymap import JourneyMap

ERASURE_REASON = "erasure request"


async def journeys_of(client: Client, engine: Engine, catalog: dict[str, JourneyMap], customer_id: str) -> set[str]:
    """Every journey workflow id of ``customer_id``, and of the ids merged into it (their journeys run on under
    them), that Temporal or the database knows of (some may not exist)."""
    ids = await asyncio.to_thread(ids_of, engine, customer_id)
    found = await asyncio.to_thread(journey_ids_of, engine, ids)
    found |= {journey_workflow_id(name, one) for name in catalog for one in ids}
    quoted = ", ".join("'" + one.replace("\\", "\\\\").replace("'", "\\'") + "'" for one in sorted(ids))
    try:
        async for execution in client.list_workflows(f"{sa.CUSTOMER_ID.name} IN ({quoted})"):
            found.add(execution.id)
    except RPCError as exc:
        # The time-skipping test server has no visibility store; the database's ids stand alone there.
        if exc.status not in (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.INVALID_ARGUMENT):
            raise
    return found


async def journey_statuses(client: Client, workflow_ids: set[str]) -> dict[str, str]:
    """``workflow id -> Temporal status`` (``RUNNING``, ``COMPLETED``, ``TERMINATED``...) of those that exist."""
    statuses: dict[str, str] = {}
    for workflow_id in sorted(workflow_ids):
        # Raw: the SDK's describe() cannot parse the datetime search attributes the time-skipping server returns.
        request = DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
        try:
            described = await client.workflow_service.describe_workflow_execution(request)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        status = WorkflowExecutionStatus(described.workflow_execution_info.status)
        statuses[workflow_id] = status.name
    return statuses


async def export(client: Client, engine: Engine, catalog: dict[str, JourneyMap], customer_id: str) -> dict[str, Any]:
    """The database's export with each journey's state as Temporal has it."""
    data = await asyncio.to_thread(export_customer, engine, customer_id)
    ids = await journeys_of(client, engine, catalog, customer_id)
    statuses = await journey_statuses(client, ids)
    known = {j["workflow_id"] for j in data["journeys"]}
    for journey in data["journeys"]:
        journey["temporal_status"] = statuses.get(journey["workflow_id"])
    data["journeys"] += [
        {"workflow_id": wid, "temporal_status": status} for wid, status in sorted(statuses.items()) if wid not in known
    ]
    return data


async def forget(client: Client, engine: Engine, catalog: dict[str, JourneyMap], customer_id: str) -> dict[str, Any]:
    """End the customer's running journeys, then erase them from the database (``activities.privacy``).

    Journeys first: a journey still running after its customer's profile went could still send (to nobody, but
    with a new ledger row). Safe to repeat: a second call finds nothing running and nothing left to remove.
    """
    ended: list[str] = []
    for workflow_id in sorted(await journeys_of(client, engine, catalog, customer_id)):
        try:
            await client.get_workflow_handle(workflow_id).terminate(reason=ERASURE_REASON)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # never ran, or closed already
                continue
            raise
        ended.append(workflow_id)
    counts = await asyncio.to_thread(forget_customer, engine, customer_id)
    return {"customer_id": customer_id, "journeys_ended": ended, **counts}
