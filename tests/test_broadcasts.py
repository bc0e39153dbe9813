"""Broadcasts on the time-skipping server (SQLite and PostgreSQL): the fan-out pages through a segment's members by
key across continue-as-new, starts one journey per member and occurrence at the rate asked, skips whoever lost
consent, is at the promotional cap or left the segment before their turn, starts nobody twice when a page is
retried, and pauses, resumes and cancels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, update
from sqlmodel import Session
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.broadcasts import BroadcastActivities, BroadcastStart, local_delay
from contracts.broadcasts import (
    BROADCAST_WORKFLOW,
    BroadcastInput,
    BroadcastPageInput,
    BroadcastProgress,
    BroadcastResult,
    occurrence_workflow_id,
)
from contracts.ids import journey_workflow_id
from runtime.settings import DeliverySettings
from storage.tables import Delivery, SegmentMembership
from testkit import JourneyEnvironment
from testkit.harness import write_journeys

MAP = """
name: flu
entry:
  events: [broadcast.flu]
  key: broadcast
steps:
  - id: remind
    send: {channels: [email], template: flu, category: promotional}
"""
TEMPLATE = 'email:\n  subject: flu shot\n  text: "walk in; unsubscribe: {{ unsubscribe_url }}"\n'
SEGMENT = "name: audience\nwhere: {trait: pharmacy, equals: true}\n"
CUSTOMERS = [f"c{i:02d}" for i in range(12)]
TERMS = DeliverySettings(quiet_hours_start="00:00", quiet_hours_end="00:00")
"""No quiet hours: the time-skipping clock may stand at night."""


def _folder(tmp_path: Path) -> Path:
    folder = write_journeys(tmp_path, {"flu": MAP}, {"flu": TEMPLATE})
    (folder / "segments").mkdir()
    (folder / "segments" / "audience.yaml").write_text(SEGMENT)
    return folder


def _members(system: JourneyEnvironment, customers: list[str]) -> None:
    """The audience's members, written as a refresh would have."""
    now = datetime.now(UTC)
    for customer in customers:
        system.add_customer(customer, pharmacy=True)
    with system.engine.begin() as connection:
        connection.execute(
            insert(SegmentMembership.__table__),  # type: ignore[attr-defined]
            [{"segment": "audience", "customer_id": c, "entered_at": now} for c in customers],
        )


def _leave(system: JourneyEnvironment, customer: str) -> None:
    table = SegmentMembership.__table__  # type: ignore[attr-defined]
    with system.engine.begin() as connection:
        connection.execute(update(table).where(table.c.customer_id == customer).values(exited_at=datetime.now(UTC)))


def _fan_out(occurrence: str, **options: object) -> BroadcastInput:
    return BroadcastInput.model_validate(
        {"broadcast": "flu", "journey": "flu", "segment": "audience", "channels": ["email"], **options}
    )


def _track(system: JourneyEnvironment, occurrence: str) -> None:
    """The environment terminates the journeys it knows of at the end: the broadcast's too."""
    for customer in CUSTOMERS:
        system.started[("flu", customer)] = {journey_workflow_id("flu", customer, occurrence)}


async def _sent(system: JourneyEnvironment, occurrence: str, customers: list[str]) -> list[str]:
    for customer in customers:
        await system.rest(journey_workflow_id("flu", customer, occurrence))
    return sorted(row.customer_id for row in system.sends() if row.template == "flu")


async def test_the_fan_out_pages_rates_skips_and_starts_nobody_twice(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    async with JourneyEnvironment.start(
        _folder(tmp_path), env=time_env, database_url=database_url, task_queue=queue, delivery=TERMS
    ) as system:
        _members(system, CUSTOMERS)
        system.set_consent("c03", channel="*", category="promotional", granted=False)  # lost consent
        with Session(system.engine) as session:  # c05 had three promotional messages this week: at the cap
            for n in range(3):
                key = f"other/{n}"
                session.add(
                    Delivery(
                        idempotency_key=key,
                        channel="email",
                        delivery_key=f"{key}#email",
                        customer_id="c05",
                        journey="other",
                        step="s",
                        template="t",
                        category="promotional",
                        status="sent",
                        sent_at=datetime.now(UTC),
                    )
                )
            session.commit()
        _leave(system, "c07")  # left the segment before the broadcast
        occurrence = occurrence_workflow_id("flu", "2026-09")
        _track(system, occurrence)

        before = await time_env.get_current_time()
        result = await system.client.execute_workflow(
            BROADCAST_WORKFLOW,
            _fan_out(occurrence, page_size=5, rate_per_second=2, pages_per_run=1),
            id=occurrence,
            task_queue=queue,
            result_type=BroadcastResult,
        )
        took = await time_env.get_current_time() - before
        progress = result.progress
        # 11 members now, in pages of 5, 5 and 1 (one run each: the place travels across continue-as-new).
        assert (progress.members, progress.pages, progress.after, progress.state) == (11, 3, None, "done")
        assert (progress.started, progress.skipped) == (9, {"consent": 1, "capped": 1})
        # The rate: 4 and 4 journeys started on the first two pages at 2 a second: at least 4 seconds of timers.
        assert took >= timedelta(seconds=4)
        allowed = [c for c in CUSTOMERS if c not in ("c03", "c05", "c07")]
        assert await _sent(system, occurrence, allowed) == allowed
        # Each journey's id names the occurrence and the customer; its trigger says which occurrence.
        state = await system.rest(journey_workflow_id("flu", "c00", occurrence))
        assert state is not None and state.status == "completed"

        # The first page again (a retry, or a page re-run after a crash): every start finds its journey there.
        outcomes: list[bool] = []

        async def start(one: BroadcastStart) -> bool:
            outcomes.append(await system.journeys.start_broadcast(one))
            return outcomes[-1]

        activities = BroadcastActivities(system.engine, TERMS, start)
        page = await ActivityEnvironment().run(
            activities.start_broadcast_page,
            BroadcastPageInput(
                broadcast="flu",
                occurrence=occurrence,
                journey="flu",
                segment="audience",
                channels=["email"],
                page_size=5,
                now=datetime.now(UTC),
            ),
        )
        assert (page.upto, page.started, page.skipped) == ("c04", 4, {"consent": 1})
        assert outcomes == [False] * 4
        assert await _sent(system, occurrence, allowed) == allowed, "nobody was sent to twice"


async def test_pause_resume_cancel_and_who_left_meanwhile(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    async with JourneyEnvironment.start(
        _folder(tmp_path), env=time_env, database_url=database_url, task_queue=queue, delivery=TERMS
    ) as system:
        _members(system, CUSTOMERS[:4])
        occurrence = occurrence_workflow_id("flu", "paused")
        _track(system, occurrence)
        handle = await system.client.start_workflow(
            BROADCAST_WORKFLOW, _fan_out(occurrence, paused=True), id=occurrence, task_queue=queue
        )
        progress = await _progress_when(handle, lambda p: p.members is not None and p.state == "paused")
        assert (progress.started, progress.members) == (0, 4)
        _leave(system, "c02")  # leaves while the broadcast is paused: not sent when it resumes
        await handle.signal("resume")
        done = BroadcastResult.model_validate(await handle.result())
        assert (done.progress.started, done.progress.state) == (3, "done")
        assert await _sent(system, occurrence, ["c00", "c01", "c03"]) == ["c00", "c01", "c03"]

        cancelled = occurrence_workflow_id("flu", "cancelled")
        handle = await system.client.start_workflow(
            BROADCAST_WORKFLOW, _fan_out(cancelled, paused=True), id=cancelled, task_queue=queue
        )
        await _progress_when(handle, lambda p: p.state == "paused")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        memo = await (await handle.describe()).memo()
        assert memo["progress"]["state"] == "cancelled" and memo["progress"]["started"] == 0


async def _progress_when(
    handle: WorkflowHandle[Any, Any], check: Callable[[BroadcastProgress], bool]
) -> BroadcastProgress:
    for _ in range(600):
        answer: BroadcastProgress | None = await handle.query("progress", result_type=BroadcastProgress)
        if answer is not None and check(answer):
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError("the broadcast never reached the expected state")


def test_local_time_is_each_customers_own() -> None:
    """10:00 on September 1st: Tokyo's comes 13 hours before New York's; a moment passed gives no delay."""
    now = datetime(2026, 8, 31, 20, 0, tzinfo=UTC)  # 10:00 on Sept 1st at UTC+14, when the Schedule fires
    day = date(2026, 9, 1)
    tokyo = local_delay(day, "10:00", ZoneInfo("Asia/Tokyo"), now=now)
    new_york = local_delay(day, "10:00", ZoneInfo("America/New_York"), now=now)
    assert tokyo == timedelta(hours=5) and new_york == timedelta(hours=18)
    assert local_delay(day, "10:00", ZoneInfo("Pacific/Kiritimati"), now=now + timedelta(minutes=1)) is None
