"""A change of consent re-checks the segments reading consent at once, for that customer, and journeys hear it.

Without it a customer who unsubscribed stayed in a campaign's audience until the Schedule's next refresh.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select
from temporalio.testing import WorkflowEnvironment

from activities.consent import set_consent
from audiences.definitions import load_segments
from audiences.membership import EVENT, MEMBERSHIP, Audiences
from contracts.ids import journey_workflow_id
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.api.ingestion import Ingestion
from starter.api.models import IdentifyMessage
from starter.cli import main
from storage import make_engine
from storage.tables import Customer, Event
from testkit import JourneyEnvironment
from testkit.harness import write_journeys

SEGMENTS = {
    "emailable": "name: emailable\nwhere: {consent: {channel: email}}\n",
    "emailable_buyers": "name: emailable_buyers\nwhere:\n  all: [{in_segment: emailable}, {performed: order_placed}]\n",
    "buyers": "name: buyers\nwhere: {performed: order_placed}\n",
}
NEWSLETTER = """
name: newsletter
entry:
  events: [segment_entered.emailable]
exit_on:
  - segment_exited.emailable
steps:
  - id: hello
    send: {channels: [email], template: hello, category: transactional}
  - id: subscribed
    wait_for: {events: [never_happens]}
"""
TEMPLATE = "email:\n  subject: hello\n  text: hello\n"
NOW = datetime.now(UTC)


def _segments(folder: Path) -> Path:
    (folder / "segments").mkdir(parents=True, exist_ok=True)
    for name, text in SEGMENTS.items():
        (folder / "segments" / f"{name}.yaml").write_text(text)
    return folder / "segments"


def _members(connection: object, segment: str) -> list[str]:
    rows = connection.execute(  # type: ignore[attr-defined]
        select(MEMBERSHIP.c.customer_id)
        .where(MEMBERSHIP.c.segment == segment, MEMBERSHIP.c.exited_at.is_(None))
        .order_by(MEMBERSHIP.c.customer_id)
    )
    return [str(c) for c in rows.scalars()]


def test_a_consent_change_rechecks_only_the_consent_segments_of_that_customer(
    tmp_path: Path, database_url: str
) -> None:
    audiences = Audiences(load_segments(_segments(tmp_path)))
    assert audiences.for_consent() == ["emailable", "emailable_buyers"]  # and the segment reading it, after it
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [{"id": c, "traits": {}, "updated_at": NOW} for c in ("c0", "c1")],
            )
            connection.execute(
                insert(Event.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "event_id": f"o-{c}",
                        "customer_id": c,
                        "type": "order_placed",
                        "properties": {},
                        "occurred_at": NOW - timedelta(days=1),
                        "recorded_at": NOW,
                    }
                    for c in ("c0", "c1")
                ],
            )
        set_consent(engine, "c0", channel="email", category="promotional", granted=True, at=NOW)
        with engine.begin() as connection:
            audiences.refresh(connection, audiences.order, now=NOW)
            assert _members(connection, "emailable_buyers") == ["c0"]

        later = NOW + timedelta(minutes=1)
        set_consent(engine, "c0", channel="email", granted=False, source="unsubscribe_link", at=later)
        set_consent(engine, "c1", channel="*", granted=True, at=later)  # not re-checked below: c0's change only
        with engine.begin() as connection:
            changes = audiences.after_consent(connection, ["c0"], now=later)
            assert [(c.segment, c.customer_id, c.entered) for c in changes] == [
                ("emailable", "c0", False),
                ("emailable_buyers", "c0", False),
            ]
            assert _members(connection, "emailable") == [] and _members(connection, "buyers") == ["c0", "c1"]
            changes = audiences.after_consent(connection, ["c1"], now=later)
            assert [(c.segment, c.customer_id, c.entered) for c in changes] == [
                ("emailable", "c1", True),
                ("emailable_buyers", "c1", True),
            ]
            recorded = connection.execute(
                select(EVENT.c.type, EVENT.c.customer_id)
                .where(EVENT.c.type.startswith("segment_"), EVENT.c.occurred_at == later)
                .order_by(EVENT.c.id)
            ).all()
            assert [tuple(r) for r in recorded] == [
                ("segment_exited.emailable", "c0"),
                ("segment_exited.emailable_buyers", "c0"),
                ("segment_entered.emailable", "c1"),
                ("segment_entered.emailable_buyers", "c1"),
            ]
            # A deployment whose segments read no consent re-checks nothing.
            only_buyers = Audiences({"buyers": audiences.segments["buyers"]})
            assert only_buyers.after_consent(connection, ["c0"], now=later) == []
    finally:
        engine.dispose()


def test_the_command_line_keeps_no_change_it_cannot_route(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Temporal down: the consent is recorded, the re-check is left whole to the Schedule (nobody's entry is
    recorded that no journey heard)."""
    _segments(tmp_path)
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", "127.0.0.1:1")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Customer.__table__), [{"id": "c0", "traits": {}, "updated_at": NOW}])  # type: ignore[attr-defined]
        assert main(["consent", "grant", "c0", "--channel", "email"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "customer c0: granted email/* (cli)"
        assert out[1].startswith("customer c0: segments emailable: re-checked at the Schedule's next run (cannot")
        with engine.connect() as connection:
            assert _members(connection, "emailable") == []
        # A change that moves nobody needs no Temporal, and says nothing more.
        assert main(["consent", "grant", "nobody", "--channel", "email"]) == 0
        assert capsys.readouterr().out == "customer nobody: granted email/* (cli)\n"
    finally:
        engine.dispose()


async def test_journeys_hear_consent_given_and_taken_through_the_api_and_the_command_line(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_journeys(tmp_path, {"newsletter": NEWSLETTER}, {"hello": TEMPLATE})
    audiences = Audiences(load_segments(_segments(folder)))
    queue = f"consent-{uuid.uuid4().hex[:8]}"
    async with JourneyEnvironment.start(folder, env=time_env, database_url=database_url, task_queue=queue) as system:
        services = ApiServices(system.journeys, system.engine, audiences=audiences)
        app = create_app(Settings(api_keys="k", journeys_dir=folder), services)
        for user in ("ann", "bob"):
            system.add_customer(user)
            system.started[("newsletter", user)] = {journey_workflow_id("newsletter", user)}

        async def state(user: str) -> tuple[str, str | None] | None:
            found = await system.rest(journey_workflow_id("newsletter", user))
            return None if found is None else (found.status, found.step)

        # An identify's consent trait (the event path): ann enters at once, and the journey starts.
        ingestion = Ingestion(lambda: services)
        message = {"userId": "ann", "traits": {"consent": {"email": {"promotional": True}}}}
        await ingestion.message(IdentifyMessage.model_validate(message))
        assert await state("ann") == ("waiting", "subscribed")
        assert await state("bob") is None

        # The consent API: ann's no takes her out, and segment_exited ends her journey.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            said = await http.post(
                "/v1/customers/ann/consents", json={"channel": "email", "granted": False}, auth=("k", "")
            )
            assert said.status_code == 201
        ended = await system.rest(journey_workflow_id("newsletter", "ann"))
        assert ended is not None and (ended.status, ended.end_reason) == (
            "exited",
            "exit event segment_exited.emailable",
        )

        # The command line routes through the configured Temporal.
        monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(folder))
        monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
        monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", time_env.client.service_client.config.target_host)
        monkeypatch.setenv("JOURNEYS_TASK_QUEUE", queue)
        monkeypatch.setenv("JOURNEYS_CODEC_KEYS", "")
        assert await asyncio.to_thread(main, ["consent", "grant", "bob", "--channel", "email"]) == 0
        assert await state("bob") == ("waiting", "subscribed")
        assert [row.customer_id for row in system.sends()] == ["ann", "bob"]


def test_a_pause_holds_until_it_runs_out_as_a_send_reads_it(tmp_path: Path, database_url: str) -> None:
    audiences = Audiences(load_segments(_segments(tmp_path)))
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Customer.__table__), [{"id": "c0", "traits": {}, "updated_at": NOW}])  # type: ignore[attr-defined]
        set_consent(engine, "c0", channel="email", category="promotional", granted=True, at=NOW - timedelta(days=1))
        set_consent(engine, "c0", category="promotional", granted=False, at=NOW, until=NOW + timedelta(days=7))
        with engine.begin() as connection:
            assert audiences.refresh(connection, ["emailable"], now=NOW + timedelta(days=1)) == []
        with engine.begin() as connection:  # the pause ran out: her earlier yes holds again
            [back] = audiences.refresh(connection, ["emailable"], now=NOW + timedelta(days=8))
            assert (back.segment, back.customer_id, back.entered) == ("emailable", "c0", True)
    finally:
        engine.dispose()
