"""Segments reach journeys (time-skipping server, SQLite and PostgreSQL): an event that changes a segment is
re-checked on the API's path and its ``segment_entered.<segment>`` starts a journey; a condition that changes with time
alone flips in the refresh workflow (what the Schedule starts), page by page across continue-as-new; a journey
branches on ``segments`` and exits on ``segment_exited.<segment>``. A map on one segment hears only its events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.segments import SegmentActivities
from audiences.definitions import load_segments
from audiences.membership import Audiences
from contracts.activities import RefreshSegmentsInput
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.segments import REFRESH_WORKFLOW, SegmentRefreshInput, SegmentRefreshResult
from runtime.settings import DeliverySettings
from starter.api.ingestion import Ingestion
from starter.api.models import IdentifyMessage, TrackMessage
from starter.api.services import ApiServices
from starter.catalog import load_catalog
from storage import make_engine
from storage.tables import Customer, Event, SegmentMembership
from testkit import JourneyEnvironment
from testkit.harness import ROOT, write_journeys

WINBACK = """
name: winback
entry:
  events: [segment_entered.lapsed]
exit_on:
  - segment_exited.lapsed
steps:
  - id: only_buyers
    branch:
      - when: "'buyers' in segments"
        goto: offer
      - otherwise: end
  - id: offer
    send: {channels: [email], template: winback, category: promotional}
  - id: wait_return
    wait_for: {events: [never_happens]}  # no timer: waiting on the refresh lets the server skip to one
"""
THANKS = """
name: thanks
entry:
  events: [segment_entered.buyers]
  reentry: once
steps:
  - id: thank
    send: {channels: [email], template: thanks, category: transactional}
"""
NO_QUIET_HOURS = DeliverySettings(quiet_hours_start="00:00", quiet_hours_end="00:00")
"""The session's time-skipping server keeps the time of day earlier tests skipped it to: a promotional send may
otherwise fall in quiet hours and rest at its step until morning (a test that failed by the hour it ran)."""
TEMPLATE = "email:\n  subject: hello\n  text: hello\n"
PROMOTIONAL = 'email:\n  subject: we miss you\n  text: "we miss you; unsubscribe: {{ unsubscribe_url }}"\n'
SEGMENTS = {
    "buyers": "name: buyers\nwhere: {performed: order_placed}\n",
    "lapsed": (
        "name: lapsed\nwhere:\n  all:\n    - performed: order_placed\n"
        "    - {performed: order_placed, within: 60d, at_most: 0}\n"
    ),
    "gold": "name: gold\nwhere: {trait: plan, equals: gold}\n",
}


def _folder(tmp_path: Path) -> Path:
    folder = write_journeys(
        tmp_path, {"winback": WINBACK, "thanks": THANKS}, {"winback": PROMOTIONAL, "thanks": TEMPLATE}
    )
    (folder / "segments").mkdir()
    for name, text in SEGMENTS.items():
        (folder / "segments" / f"{name}.yaml").write_text(text)
    return folder


async def test_segments_start_branch_and_end_journeys(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    folder = _folder(tmp_path)
    queue = f"segments-{uuid.uuid4().hex[:8]}"
    async with JourneyEnvironment.start(
        folder, env=time_env, database_url=database_url, task_queue=queue, delivery=NO_QUIET_HOURS
    ) as system:
        services = ApiServices(system.journeys, system.engine, audiences=Audiences(load_segments(folder / "segments")))
        ingestion = Ingestion(lambda: services)
        # Segment events start these journeys, not the environment's own `send`: it must still end them.
        for journey in ("thanks", "winback"):
            for user in ("ann", "bob", "cid"):
                system.started[(journey, user)] = {journey_workflow_id(journey, user)}

        async def order(user: str) -> None:
            await ingestion.message(TrackMessage.model_validate({"userId": user, "event": "order_placed"}))

        # The API's path: an order re-checks the segments that count orders, for that customer only.
        for user in ("ann", "bob", "cid"):
            await order(user)
            await system.rest(journey_workflow_id("thanks", user))
        assert [row.customer_id for row in system.sends(status=None) if row.template == "thanks"] == [
            "ann",
            "bob",
            "cid",
        ]
        # An identify re-checks the segments reading its traits.
        await ingestion.message(IdentifyMessage.model_validate({"userId": "ann", "traits": {"plan": "gold"}}))
        with Session(system.engine) as session:
            gold = session.exec(select(SegmentMembership.customer_id).where(SegmentMembership.segment == "gold"))
            assert list(gold) == ["ann"]

        # Time alone: 61 days on, nobody ordered again. The refresh (what the Schedule starts) walks the
        # customers one per page, two pages a run, so it continues-as-new on the way. (Its moment is given: the
        # API's clock is the wall clock, the time-skipping server's is not.)
        later = datetime.now(UTC) + timedelta(days=61)

        async def refresh(**options: int) -> SegmentRefreshResult:
            done: SegmentRefreshResult = await system.client.execute_workflow(
                REFRESH_WORKFLOW,
                SegmentRefreshInput(now=later, **options),
                id=f"segments/refresh/{uuid.uuid4().hex}",
                task_queue=queue,
                result_type=SegmentRefreshResult,
            )
            return done

        assert await refresh(page_size=1, pages_per_run=2) == SegmentRefreshResult(pages=4, entered=3, exited=0)
        for user in ("ann", "bob", "cid"):
            state = await system.rest(journey_workflow_id("winback", user))
            assert state is not None and (state.status, state.step) == ("waiting", "wait_return"), user
        assert sorted(row.customer_id for row in system.sends() if row.template == "winback") == ["ann", "bob", "cid"]
        # A second refresh at the same moment finds nothing new, and announces nothing twice.
        assert await refresh(page_size=1000) == SegmentRefreshResult(pages=1, entered=0, exited=0)

        # bob orders again: he leaves `lapsed` on the API's path, and segment_exited.lapsed ends his winback.
        await order("bob")
        state = await system.rest(journey_workflow_id("winback", "bob"))
        assert state is not None
        assert (state.status, state.end_reason) == ("exited", "exit event segment_exited.lapsed")

        with Session(system.engine) as session:
            kinds = session.exec(
                select(Event.type, Event.customer_id)
                .where(col(Event.type).in_(["segment_entered.lapsed", "segment_exited.lapsed"]))
                .order_by(col(Event.id))
            )
            assert list(kinds) == [
                ("segment_entered.lapsed", "ann"),
                ("segment_entered.lapsed", "bob"),
                ("segment_entered.lapsed", "cid"),
                ("segment_exited.lapsed", "bob"),
            ]


async def test_a_retried_page_announces_the_same_events_and_changes_nothing(tmp_path: Path, database_url: str) -> None:
    """A worker killed after a page committed but before its changes were all routed: the retry finds nothing new
    to change, and announces the page's recorded changes again under the same ids (journeys drop an id seen)."""
    folder = _folder(tmp_path)
    engine = make_engine(database_url)
    announced: list[tuple[str, str]] = []

    async def announce(customer_id: str, event: JourneyEvent) -> None:
        announced.append((customer_id, event.id))

    later = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": c, "traits": {}, "updated_at": later} for c in ("ann", "bob")],
        )
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": f"o-{c}",
                    "customer_id": c,
                    "type": "order_placed",
                    "properties": {},
                    "occurred_at": later - timedelta(days=61),
                    "recorded_at": later,
                }
                for c in ("ann", "bob")
            ],
        )
    activities = SegmentActivities(engine, Audiences(load_segments(folder / "segments")), announce)
    page = RefreshSegmentsInput(page_size=10, now=later)
    first = await ActivityEnvironment().run(activities.refresh_segments, page)
    retried = await ActivityEnvironment().run(activities.refresh_segments, page)
    assert (first.entered, retried.entered, first.upto, retried.upto) == (2, 0, None, None)
    ids = [("ann", "segment_entered.lapsed/1"), ("bob", "segment_entered.lapsed/2")]
    assert announced == ids + ids
    engine.dispose()


async def test_the_shipped_rescue_starts_when_a_customer_lapses_and_ends_when_she_returns(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    """The shipped map (journeys/lapsed_rescue.yaml) on the shipped segment (segments/lapsed_customers.yaml):
    nothing but 61 silent days starts it; an order ends it, and no last call follows."""
    shipped = ROOT / "journeys"
    queue = f"rescue-{uuid.uuid4().hex[:8]}"
    catalog = {"lapsed_rescue": load_catalog(shipped)["lapsed_rescue"]}
    async with JourneyEnvironment.start(
        shipped, catalog=catalog, env=time_env, database_url=database_url, task_queue=queue, delivery=NO_QUIET_HOURS
    ) as system:
        services = ApiServices(system.journeys, system.engine, audiences=Audiences(load_segments(shipped / "segments")))
        ingestion = Ingestion(lambda: services)
        workflow_id = journey_workflow_id("lapsed_rescue", "ada")
        system.started[("lapsed_rescue", "ada")] = {workflow_id}
        system.add_customer("ada", first_name="Ada")

        async def order(number: int) -> None:
            message = {"userId": "ada", "event": "order_placed", "properties": {"order_id": f"o-{number}"}}
            await ingestion.message(TrackMessage.model_validate(message))

        await order(1)
        assert await system.rest(workflow_id) is None  # she just ordered: not lapsed
        done: SegmentRefreshResult = await system.client.execute_workflow(
            REFRESH_WORKFLOW,
            SegmentRefreshInput(now=datetime.now(UTC) + timedelta(days=61)),
            id=f"segments/refresh/{uuid.uuid4().hex}",
            task_queue=queue,
            result_type=SegmentRefreshResult,
        )
        assert (done.entered, done.exited) == (1, 0)
        state = await system.rest(workflow_id)
        assert state is not None and (state.status, state.step) == ("waiting", "winback_wait")
        assert [(row.template, row.channel) for row in system.sends("ada")] == [("lapsed_winback", "push")]

        await order(2)  # back: the order is the goal, and she leaves the segment on the API's path
        state = await system.rest(workflow_id)
        assert state is not None and state.status not in ("running", "waiting")
        assert state.goal_reached_at is not None
        assert [row.template for row in system.sends("ada")] == ["lapsed_winback"]
        with Session(system.engine) as session:
            stays = session.exec(select(SegmentMembership).where(SegmentMembership.segment == "lapsed_customers"))
            assert [(s.customer_id, s.exited_at is not None) for s in stays] == [("ada", True)]
