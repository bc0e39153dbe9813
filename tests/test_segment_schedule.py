"""The Schedule that refreshes time-dependent segments, on the dev server (the time-skipping server has none):
``journeys setup``/``dev`` create it with the configured interval and overlap skipped, running it again updates
it, and a start it makes refreshes the segments: a customer whose last order is 61 days old becomes lapsed with
no event at all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.testing import WorkflowEnvironment

from contracts.segments import REFRESH_WORKFLOW, refresh_schedule_id
from runtime.settings import Settings
from starter.schedules import ensure_refresh_schedule
from storage import make_engine
from storage.tables import Customer, Event, SegmentMembership
from workers.worker import journey_worker

LAPSED = """
name: lapsed
where:
  all:
    - performed: order_placed
    - {performed: order_placed, within: 60d, at_most: 0}
"""


async def test_the_schedule_refreshes_time_dependent_segments(
    dev_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    journeys_dir = tmp_path / "journeys"
    (journeys_dir / "segments").mkdir(parents=True)
    (journeys_dir / "segments" / "lapsed.yaml").write_text(LAPSED)
    queue = f"schedule-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        journeys_dir=journeys_dir, task_queue=queue, database_url=database_url, segments_refresh_minutes=90
    )
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(Customer.__table__), [{"id": "ann", "traits": {}, "updated_at": now}])  # type: ignore[attr-defined]
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": "o1",
                    "customer_id": "ann",
                    "type": "order_placed",
                    "properties": {},
                    "occurred_at": now - timedelta(days=61),
                    "recorded_at": now,
                }
            ],
        )
    client = dev_env.client
    handle = client.get_schedule_handle(refresh_schedule_id(queue))
    try:
        assert await ensure_refresh_schedule(client, settings) == (
            f"segment refresh: schedule journeys-segment-refresh/{queue} every 1h30m (created)"
        )
        described = await handle.describe()
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=90)]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (REFRESH_WORKFLOW, queue)

        faster = settings.model_copy(update={"segments_refresh_minutes": 15})
        assert (await ensure_refresh_schedule(client, faster)).endswith("every 15m (updated)")
        assert [i.every for i in (await handle.describe()).schedule.spec.intervals] == [timedelta(minutes=15)]

        async with journey_worker(client, settings, engine):
            await handle.trigger()
            started = await _first_start(handle)
            await client.get_workflow_handle(started).result()
        with engine.connect() as connection:
            table = SegmentMembership.__table__  # type: ignore[attr-defined]
            members = connection.execute(select(table.c.customer_id).where(table.c.segment == "lapsed")).scalars()
            assert list(members) == ["ann"]
    finally:
        await handle.delete()
        engine.dispose()


async def _first_start(handle: ScheduleHandle) -> str:
    """The id of the first workflow the Schedule started: waits on the Schedule's own record of it."""
    for _ in range(600):
        for action in (await handle.describe()).info.recent_actions:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                return action.action.workflow_id
        await asyncio.sleep(0.05)
    raise AssertionError("the Schedule started no workflow within 30 seconds")
