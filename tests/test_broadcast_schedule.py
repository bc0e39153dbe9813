"""Broadcast Schedules on the dev server (the time-skipping server has none): ``journeys setup``/``dev``/``broadcast
schedule`` create one per broadcast with its calendar in its zone, update it, delete one whose definition is gone;
a start it makes fans out to the segment; "at 10:00 in each customer's zone" holds each journey back to the
customer's own 10:00 (a start delay)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleActionStartWorkflow, ScheduleHandle
from temporalio.testing import WorkflowEnvironment

from audiences.broadcasts import EARLIEST_ZONE
from contracts.broadcasts import BROADCAST_WORKFLOW, BroadcastResult, broadcast_schedule_id
from contracts.ids import journey_workflow_id
from runtime.settings import Settings
from starter.broadcasts import ensure_broadcast_schedules, load_all
from starter.testing import journey_system
from storage import make_engine
from storage.tables import Customer, SegmentMembership
from testkit.harness import write_journeys

MAP = """
name: news
entry:
  events: [broadcast.newsletter, broadcast.hello]
  key: broadcast
steps:
  - id: letter
    send: {channels: [email], template: news, category: transactional}
"""
NEWSLETTER = """
name: newsletter
journey: news
segment: readers
category: transactional
when: {weekly: monday, at: "09:30", time_zone: Europe/Paris}
"""
HELLO = """
name: hello
journey: news
segment: readers
category: transactional
when: {once: 2030-01-01, at: "10:00"}
"""


async def test_broadcast_schedules_are_made_and_fan_out_at_local_time(
    dev_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    folder = write_journeys(tmp_path, {"news": MAP}, {"news": "email:\n  subject: news\n  text: news\n"})
    (folder / "segments").mkdir()
    (folder / "segments" / "readers.yaml").write_text("name: readers\nwhere: {trait: reads, equals: true}\n")
    (folder / "broadcasts").mkdir()
    (folder / "broadcasts" / "newsletter.yaml").write_text(NEWSLETTER)
    (folder / "broadcasts" / "hello.yaml").write_text(HELLO)
    queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    settings = Settings(journeys_dir=folder, task_queue=queue, database_url=database_url, data_dir=tmp_path)
    client = dev_env.client
    newsletter = client.get_schedule_handle(broadcast_schedule_id(queue, "newsletter"))
    hello = client.get_schedule_handle(broadcast_schedule_id(queue, "hello"))
    try:
        lines = await ensure_broadcast_schedules(client, settings)
        assert lines == [
            f"broadcast hello: schedule journeys-broadcast/{queue}/hello, once on 2030-01-01 at 10:00 in each "
            "customer's time zone (created)",
            f"broadcast newsletter: schedule journeys-broadcast/{queue}/newsletter, every monday at 09:30 in "
            "Europe/Paris (created)",
        ]
        described = await newsletter.describe()
        assert described.schedule.spec.time_zone_name == "Europe/Paris"
        (monday,) = described.schedule.spec.calendars
        assert ([r.start for r in monday.day_of_week], monday.hour[0].start, monday.minute[0].start) == ([1], 9, 30)
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == BROADCAST_WORKFLOW
        nxt = described.info.next_action_times[0].astimezone(ZoneInfo("Europe/Paris"))
        assert (nxt.weekday(), nxt.time()) == (0, time(9, 30))
        once = (await hello.describe()).schedule.spec
        assert once.time_zone_name == EARLIEST_ZONE
        assert [r.start for r in once.calendars[0].year] == [2030]

        # Edited: the newsletter moves to Tuesday; the hello broadcast is removed and its Schedule goes too.
        (folder / "broadcasts" / "newsletter.yaml").write_text(NEWSLETTER.replace("monday", "tuesday"))
        (folder / "broadcasts" / "hello.yaml").unlink()
        lines = await ensure_broadcast_schedules(client, settings)
        assert lines[0] == f"broadcast: schedule journeys-broadcast/{queue}/hello deleted (no such broadcast any more)"
        assert lines[1].endswith("every tuesday at 09:30 in Europe/Paris (updated)")
        (tuesday,) = (await newsletter.describe()).schedule.spec.calendars
        assert [r.start for r in tuesday.day_of_week] == [2]

        # Back, and triggered now: the once broadcast at 10:00 in each reader's zone.
        (folder / "broadcasts" / "hello.yaml").write_text(HELLO)
        await ensure_broadcast_schedules(client, settings, load_all(settings))
        engine = make_engine(database_url)
        now = datetime.now(UTC)
        zones = {"ann": "Asia/Tokyo", "bob": "America/New_York", "cid": "Pacific/Kiritimati"}
        with engine.begin() as connection:
            connection.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [{"id": c, "traits": {"reads": True, "timezone": z}, "updated_at": now} for c, z in zones.items()],
            )
            connection.execute(
                insert(SegmentMembership.__table__),  # type: ignore[attr-defined]
                [{"segment": "readers", "customer_id": c, "entered_at": now} for c in zones],
            )
        async with journey_system(client, settings):
            await hello.trigger()
            occurrence = await _first_start(hello)
            done = await client.get_workflow_handle(occurrence, result_type=BroadcastResult).result()
            assert done.progress.started == 3
            # The occurrence's date is the one at UTC+14 when it began; each journey waits for 10:00 there.
            began = (await client.get_workflow_handle(occurrence).describe()).start_time
            done_day = began.astimezone(ZoneInfo(EARLIEST_ZONE)).date()
            for customer, zone in zones.items():
                target = datetime.combine(done_day, time(10, 0), tzinfo=ZoneInfo(zone))
                described_journey = await client.get_workflow_handle(
                    journey_workflow_id("news", customer, occurrence)
                ).describe()
                info = described_journey.raw_description.workflow_execution_info
                runs_at = info.execution_time.ToDatetime(tzinfo=UTC)
                entered = described_journey.start_time
                if target > entered + timedelta(seconds=30):
                    assert abs(runs_at - target) < timedelta(seconds=30), customer
                else:
                    assert abs(runs_at - entered) < timedelta(seconds=30), customer
                await client.get_workflow_handle(journey_workflow_id("news", customer, occurrence)).terminate()
        engine.dispose()
    finally:
        for handle in (newsletter, hello):
            with contextlib.suppress(Exception):  # deleted by the test already, or never made
                await handle.delete()


async def _first_start(handle: ScheduleHandle) -> str:
    for _ in range(600):
        for action in (await handle.describe()).info.recent_actions:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                return action.action.workflow_id
        await asyncio.sleep(0.05)
    raise AssertionError("the Schedule started no workflow within 30 seconds")
