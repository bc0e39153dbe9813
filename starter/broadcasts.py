"""Broadcasts from the outside (issue 15): their Schedules, and starting, pausing, resuming, cancelling and
reading an occurrence. The ``journeys broadcast`` command and the event API both go through here.

Each broadcast gets the Temporal Schedule ``journeys-broadcast/<task queue>/<name>`` (``journeys setup``,
``journeys dev`` and ``journeys broadcast schedule`` create or update it; one whose definition is gone is
deleted). Its calendar comes from ``when``: read in the broadcast's zone, or, "at 10:00 in each customer's zone",
in the earliest zone on Earth (UTC+14), each member's journey then waiting for their own 10:00. Every start is an
occurrence, the workflow ``broadcast/<name>-<scheduled time>``; a manual start is ``broadcast/<name>-<label>``.
Occurrences may overlap (a paused newsletter does not hold next week's back); a start missed by more than a day
(the server was down) is not made up. Billable actions: one per Schedule start, plus the fan-out's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from audiences.broadcasts import WEEKDAYS, Broadcast, label, load_broadcasts
from audiences.definitions import load_segments
from contracts.broadcasts import (
    BROADCAST_PREFIX,
    BROADCAST_WORKFLOW,
    BroadcastInput,
    BroadcastProgress,
    broadcast_schedule_id,
    occurrence_prefix,
    occurrence_workflow_id,
)
from contracts.errors import InputError, UsageError
from journeymap.suggest import did_you_mean
from runtime.settings import Settings
from starter.catalog import load_catalog

CATCHUP = timedelta(days=1)


def load_all(settings: Settings) -> dict[str, Broadcast]:
    """The deployment's broadcasts, checked against its maps and segments (raises ``MapValidationError``)."""
    if not settings.broadcasts_dir.is_dir():
        return {}
    return load_broadcasts(
        settings.broadcasts_dir,
        maps=load_catalog(settings.journeys_dir),
        segments=load_segments(settings.segments_dir),
    )


def named(broadcasts: Mapping[str, Broadcast], name: str) -> Broadcast:
    if name not in broadcasts:
        known = ", ".join(sorted(broadcasts)) or "none defined"
        raise UsageError(f"unknown broadcast {name!r}{did_you_mean(name, broadcasts)} (known: {known})")
    return broadcasts[name]


def fan_out_input(broadcast: Broadcast, settings: Settings) -> BroadcastInput:
    """What each occurrence starts with."""
    when = broadcast.when
    return BroadcastInput(
        broadcast=broadcast.name,
        journey=broadcast.journey,
        segment=broadcast.segment,
        category=broadcast.category,
        channels=list(broadcast.channels),
        local_time=when.at if when.local else None,
        zone=when.schedule_zone,
        default_timezone=settings.delivery.default_timezone,
        rate_per_second=broadcast.rate_per_second,
        page_size=broadcast.page_size,
    )


def calendar(broadcast: Broadcast) -> ScheduleCalendarSpec:
    when = broadcast.when
    hour, minute = (int(part) for part in when.at.split(":"))
    fields: dict[str, list[ScheduleRange]] = {"hour": [ScheduleRange(hour)], "minute": [ScheduleRange(minute)]}
    if when.once is not None:
        fields |= {
            "year": [ScheduleRange(when.once.year)],
            "month": [ScheduleRange(when.once.month)],
            "day_of_month": [ScheduleRange(when.once.day)],
        }
    elif when.weekly is not None:
        fields["day_of_week"] = [ScheduleRange((WEEKDAYS.index(when.weekly) + 1) % 7)]  # Sunday is 0
    elif when.monthly is not None:
        fields["day_of_month"] = [ScheduleRange(when.monthly)]
    elif when.yearly is not None:
        fields |= {"month": [ScheduleRange(when.yearly.month)], "day_of_month": [ScheduleRange(when.yearly.day)]}
    return ScheduleCalendarSpec(**fields, comment=when.describe())


def broadcast_schedule(broadcast: Broadcast, settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BROADCAST_WORKFLOW,
            fan_out_input(broadcast, settings),
            id=f"{BROADCAST_PREFIX}{broadcast.name}",
            task_queue=settings.task_queue,
            static_summary=f"broadcast {broadcast.name}: {broadcast.journey} to {broadcast.segment}",
        ),
        spec=ScheduleSpec(calendars=[calendar(broadcast)], time_zone_name=broadcast.when.schedule_zone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CATCHUP),
    )


async def ensure_broadcast_schedules(
    client: Client, settings: Settings, broadcasts: Mapping[str, Broadcast] | None = None
) -> list[str]:
    """Create or update each broadcast's Schedule, delete those of broadcasts no longer defined; a line each."""
    broadcasts = load_all(settings) if broadcasts is None else broadcasts
    lines: list[str] = []
    prefix = broadcast_schedule_id(settings.task_queue, "")
    wanted = {broadcast_schedule_id(settings.task_queue, name): b for name, b in broadcasts.items()}
    async for listed in await client.list_schedules():
        if listed.id.startswith(prefix) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            lines.append(f"broadcast: schedule {listed.id} deleted (no such broadcast any more)")
    for schedule_id, broadcast in sorted(wanted.items()):
        schedule = broadcast_schedule(broadcast, settings)
        try:
            await client.create_schedule(schedule_id, schedule)
            done = "created"
        except ScheduleAlreadyRunningError:

            def updated(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(updated)
            done = "updated"
        lines.append(f"broadcast {broadcast.name}: schedule {schedule_id}, {broadcast.when.describe()} ({done})")
    return lines


async def start_occurrence(
    client: Client, settings: Settings, broadcast: Broadcast, occurrence: str | None = None
) -> WorkflowHandle[object, object]:
    """Start an occurrence now (``journeys broadcast start``): labelled by the time unless ``occurrence`` is given.
    Starting a label again is refused, so a repeated command sends nobody a second time."""
    tag = label(occurrence) if occurrence else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not tag:
        raise UsageError(f"occurrence label {occurrence!r} has no letter or digit")
    workflow_id = occurrence_workflow_id(broadcast.name, tag)
    try:
        return await client.start_workflow(
            BROADCAST_WORKFLOW,
            fan_out_input(broadcast, settings),
            id=workflow_id,
            task_queue=settings.task_queue,
            static_summary=f"broadcast {broadcast.name}: {broadcast.journey} to {broadcast.segment}",
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise InputError(f"occurrence {workflow_id} was already started: its members were sent to") from None


@dataclass(frozen=True)
class Occurrence:
    workflow_id: str
    status: str
    started_at: datetime | None
    progress: BroadcastProgress | None


async def occurrences(client: Client, broadcast: str, *, limit: int = 20) -> list[Occurrence]:
    """The broadcast's occurrences, newest first, with the progress each last wrote in its memo."""
    query = f"WorkflowType = '{BROADCAST_WORKFLOW}' AND WorkflowId STARTS_WITH '{occurrence_prefix(broadcast)}'"
    found: list[Occurrence] = []
    async for execution in client.list_workflows(query, limit=limit):
        memo = await execution.memo()
        raw = memo.get("progress")
        progress = BroadcastProgress.model_validate(raw) if isinstance(raw, dict) else None
        status = execution.status.name.lower() if execution.status is not None else "unknown"
        found.append(Occurrence(execution.id, status, execution.start_time, progress))
    return found


async def find_occurrence(client: Client, broadcast: str, occurrence: str | None) -> WorkflowHandle[object, object]:
    """The named occurrence (its label or workflow id), else the newest one running."""
    if occurrence:
        workflow_id = (
            occurrence if occurrence.startswith(BROADCAST_PREFIX) else occurrence_workflow_id(broadcast, occurrence)
        )
        handle = client.get_workflow_handle(workflow_id)
        try:
            await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise InputError(f"no occurrence {workflow_id}") from None
            raise
        return handle
    query = (
        f"WorkflowType = '{BROADCAST_WORKFLOW}' AND WorkflowId STARTS_WITH '{occurrence_prefix(broadcast)}'"
        " AND ExecutionStatus = 'Running'"
    )
    async for execution in client.list_workflows(query, limit=1):
        return client.get_workflow_handle(execution.id)
    raise InputError(f"no occurrence of broadcast {broadcast!r} is running (name one with --occurrence)")


async def progress_of(handle: WorkflowHandle[object, object]) -> tuple[str, BroadcastProgress | None]:
    """The occurrence's status and progress: from the query while it runs, else from its memo."""
    described = await handle.describe()
    status = described.status.name.lower() if described.status is not None else "unknown"
    if described.status == WorkflowExecutionStatus.RUNNING:
        answer = await handle.query("progress", result_type=BroadcastProgress)
        if answer is not None:
            return status, answer
    raw = (await described.memo()).get("progress")
    return status, BroadcastProgress.model_validate(raw) if isinstance(raw, dict) else None


async def control(handle: WorkflowHandle[object, object], action: str) -> None:
    """``pause``, ``resume`` (signals) or ``cancel`` one running occurrence."""
    described = await handle.describe()
    if described.status != WorkflowExecutionStatus.RUNNING:
        state = described.status.name.lower() if described.status is not None else "closed"
        raise InputError(f"occurrence {handle.id} is {state}: nothing to {action}")
    if action == "cancel":
        await handle.cancel()
    else:
        await handle.signal(action)
