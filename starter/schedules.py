"""The Temporal Schedule that keeps time-dependent segments current (issue 15), made by ``journeys setup``/``dev``.

Every ``JOURNEYS_SEGMENTS_REFRESH_MINUTES`` it starts the segment refresh workflow (``workflows.segments``) on
the deployment's task queue; a start that comes while the previous refresh still runs is skipped (overlap
``SKIP``), so a slow refresh never stacks up. Running setup again updates the interval and page size in place.
Billable actions: one per start, plus the refresh's own (an activity per page).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from contracts.segments import REFRESH_WORKFLOW, SegmentRefreshInput, refresh_schedule_id, refresh_workflow_id
from journeymap.durations import format_duration
from runtime.settings import Settings


def refresh_schedule(settings: Settings) -> Schedule:
    """The Schedule as these settings want it."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            REFRESH_WORKFLOW,
            SegmentRefreshInput(page_size=settings.segments_refresh_page_size),
            id=refresh_workflow_id(settings.task_queue),
            task_queue=settings.task_queue,
            static_summary="refresh the segments that change with time",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=refresh_interval(settings))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def refresh_interval(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.segments_refresh_minutes)


async def ensure_refresh_schedule(client: Client, settings: Settings) -> str:
    """Create the Schedule, or bring an existing one to these settings; says which, in one line."""
    schedule = refresh_schedule(settings)
    every = format_duration(refresh_interval(settings))
    schedule_id = refresh_schedule_id(settings.task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def updated(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(updated)
        return f"segment refresh: schedule {schedule_id} every {every} (updated)"
    return f"segment refresh: schedule {schedule_id} every {every} (created)"
