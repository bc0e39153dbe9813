"""Where running journeys rest, counted by step without the ``JourneyStep`` search attribute (issue 18).

Journeys upsert their step as a search attribute only when the deployment asks for it
(``JOURNEYS_SEARCH_BY_STEP``): each upsert is a billable action. Without it, a journey's step is still written
in its own history, for free: every timed rest is a durable timer whose summary begins with the step's id
(``await_order: timeout``, ``wait_for_reminder: wait``, ``notify_ready: quiet hours``). Reading each running
journey's history backwards to its pending timer names the step it rests on; reading history is not an action.

A journey resting without a timer (a ``wait_for`` with no timeout, a fault waiting for an operator) has none to
read: it is asked with the ``state`` query, which is exact but billable (one action each); the count says how
many were asked. With the setting on, one visibility count query per step answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts import search_attributes as sa
from contracts.journey import JourneySnapshot

PAGE = 50
"""Events per page read backwards: a pending timer is almost always among a journey's last few events."""


@dataclass
class RestingCounts:
    steps: dict[str, int]
    listed: int = 0
    """Running journeys looked at (0 when counted by search attribute)."""
    queried: list[str] = field(default_factory=list)
    """Workflow ids asked with the ``state`` query (no pending timer): one billable action each."""


def running_query(journey: str) -> str:
    return f"WorkflowType = 'Journey' AND ExecutionStatus = 'Running' AND {sa.JOURNEY_NAME.name} = '{journey}'"


async def count_resting(
    client: Client, journey: str, steps: tuple[str, ...], *, search_by_step: bool = False
) -> RestingCounts:
    """Running journeys of ``journey`` resting on each of ``steps``.

    ``search_by_step`` (the deployment's ``JOURNEYS_SEARCH_BY_STEP``): one visibility count query per step. Step
    ids are plain names (checked by the map language), so they go into the query as they are.
    """
    base = running_query(journey)
    if search_by_step:
        counts = {}
        for name in steps:
            counts[name] = (await client.count_workflows(f"{base} AND {sa.STEP.name} = '{name}'")).count
        return RestingCounts(counts)
    result = RestingCounts({step: 0 for step in steps})
    async for execution in client.list_workflows(base):
        result.listed += 1
        resting = await pending_timer_step(client, execution.id, execution.run_id)
        if resting is None:
            resting = await _asked(client, execution.id, execution.run_id)
            result.queried.append(execution.id)
        if resting in result.steps:
            result.steps[resting] += 1
    return result


async def pending_timer_step(client: Client, workflow_id: str, run_id: str | None) -> str | None:
    """The step a running journey's pending timer names (the part of its summary before ``:``), read from
    its history backwards; None when no timer is pending."""
    closed: set[int] = set()
    token = b""
    while True:
        try:
            page = await client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
                    maximum_page_size=PAGE,
                    next_page_token=token,
                )
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        for event in page.history.events:
            step = await _pending(client, event, closed)
            if step is not None:
                return step
        token = page.next_page_token
        if not token:
            return None


async def _pending(client: Client, event: HistoryEvent, closed: set[int]) -> str | None:
    if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
        closed.add(event.timer_fired_event_attributes.started_event_id)
    elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
        closed.add(event.timer_canceled_event_attributes.started_event_id)
    elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED and event.event_id not in closed:
        if not event.user_metadata.HasField("summary"):
            return ""
        # Summaries go through the data converter (and its codec, when payloads are encrypted).
        [summary] = await client.data_converter.decode([event.user_metadata.summary], [str])
        return str(summary).split(":", 1)[0] if ":" in str(summary) else ""
    return None


async def _asked(client: Client, workflow_id: str, run_id: str | None) -> str | None:
    try:
        snapshot: JourneySnapshot = await client.get_workflow_handle(workflow_id, run_id=run_id).query(
            "state", result_type=JourneySnapshot
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    return snapshot.step
