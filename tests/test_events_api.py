"""The event API enforces the tracking plan (issue 17, items 2 and 4), on SQLite and PostgreSQL, against a real
dev server: a declared event that breaks its declaration is refused with 422 naming the event, the property and
what was expected, or quarantined where its declaration says so, and never reaches a journey; unknown event types
are accepted and counted."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from analytics.event_counts import event_counts
from journeymap.events import PayloadValidator
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.cli import main
from storage.tables import QuarantinedEvent
from testkit.harness import Journeys, running_journeys

ROOT = Path(__file__).resolve().parent.parent
KEY = "events-key"
JOURNEY = "pharmacy_refill"
A_DAY = "an ISO 8601 date (2026-11-25) or an ISO 8601 date-time (2026-11-25T09:00:00Z)"


@dataclass
class Api:
    http: httpx.AsyncClient
    j: Journeys
    journeys_dir: Path

    async def track(self, user: str, event: str, content_type: str = "application/json", **props: Any) -> Any:
        body = {"userId": user, "event": event, "properties": props}
        return await self.post("/v1/track", body, content_type=content_type)

    async def post(self, path: str, body: Any, content_type: str = "application/json") -> httpx.Response:
        return await self.http.post(
            path, content=json.dumps(body), headers={"content-type": content_type}, auth=(KEY, "")
        )

    async def signals(self, user: str, rx: str) -> int:
        history = await self.j.handle(JOURNEY, user, rx).fetch_history()
        return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events)

    async def at_pickup(self, user: str, rx: str) -> None:
        """A journey of ``user`` for ``rx`` resting at await_pickup: reminded, ordered, ready."""
        filled = (datetime.now(UTC) - timedelta(days=40)).isoformat()
        self.j.add_customer(user)
        started = await self.track(
            user, "prescription_filled", rx_id=rx, days_supply=30, refills_remaining=2, filled_at=filled
        )
        assert started.status_code == 200, started.text
        await self.j.settled(JOURNEY, user, rx, until=lambda s: s.step == "await_order")
        assert (await self.track(user, "refill_ordered", rx_id=rx)).status_code == 200
        await self.j.settled(JOURNEY, user, rx, until=lambda s: s.step == "await_ready")
        assert (await self.track(user, "refill_ready", rx_id=rx, store_name="Elm St")).status_code == 200
        await self.j.settled(JOURNEY, user, rx, until=lambda s: s.step == "await_pickup")


def _folder(tmp_path: Path, *, quarantine: bool) -> Path:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    shutil.copy(ROOT / "journeys" / "pharmacy_refill.yaml", journeys)
    shutil.copytree(ROOT / "journeys" / "templates", journeys / "templates")
    plan = (ROOT / "journeys" / "events.yaml").read_text(encoding="utf-8")
    if quarantine:
        plan = plan.replace(
            "  refill_picked_up:\n", "  refill_picked_up:\n    on_invalid: quarantine\n", 1
        )  # a brand that would rather keep the event than lose it
    (journeys / "events.yaml").write_text(plan, encoding="utf-8")
    return journeys


@pytest_asyncio.fixture(params=[False, True], ids=["refuse", "quarantine"])
async def api(
    request: pytest.FixtureRequest, dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> AsyncIterator[Api]:
    journeys = _folder(tmp_path, quarantine=request.param)
    settings_ = Settings(api_keys=KEY, journeys_dir=journeys)
    async with running_journeys(dev_env.client, tmp_path, task_queue, journeys, database_url=database_url) as j:
        app = create_app(settings_, ApiServices(j.journeys, j.engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield Api(http, j, journeys)


def _quarantining(api: Api) -> bool:
    assert api.j.journeys.plan is not None
    return api.j.journeys.plan.events["refill_picked_up"].on_invalid == "quarantine"


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.segment+json"])
async def test_a_pickup_without_picked_up_at_never_reaches_the_journey(api: Api, content_type: str) -> None:
    """The issue's case: the pickup without ``picked_up_at`` once became a reminder sent at once. Refused, it
    says what is missing; quarantined, it is kept apart. Either way the journey never hears of it."""
    user, rx = f"pick-{uuid.uuid4().hex[:6]}", "rx-1"
    await api.at_pickup(user, rx)
    signals, sent = await api.signals(user, rx), len(api.j.outbox(user))

    response = await api.track(user, "refill_picked_up", content_type=content_type, rx_id=rx)

    if _quarantining(api):
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["quarantined"], body["journeys"]) == (True, [])
        assert body["problems"] == [f"picked_up_at: required, missing; expected {A_DAY}"]
        with Session(api.j.engine) as session:
            [row] = session.exec(select(QuarantinedEvent)).all()
        assert (row.customer_id, row.type, row.properties) == (user, "refill_picked_up", {"rx_id": rx})
    else:
        assert response.status_code == 422
        assert response.json() == {
            "errors": [
                {
                    "path": "properties.picked_up_at",
                    "message": "event 'refill_picked_up': property 'picked_up_at': required, missing; "
                    f"expected {A_DAY}",
                }
            ]
        }
    assert await api.signals(user, rx) == signals
    state = await api.j.settled(JOURNEY, user, rx)
    assert (state.step, state.status, state.fault) == ("await_pickup", "waiting", None)
    assert len(api.j.outbox(user)) == sent  # nothing went out, least of all a reminder

    # The corrected event goes through, and the next cycle counts from it.
    picked = datetime.now(UTC).isoformat()
    fixed = await api.track(user, "refill_picked_up", content_type=content_type, rx_id=rx, picked_up_at=picked)
    assert fixed.status_code == 200, fixed.text
    state = await api.j.settled(JOURNEY, user, rx, until=lambda s: s.step == "wait_for_reminder")
    assert state.vars["refills_remaining"] == 1


async def test_in_a_batch_only_the_bad_message_is_refused(
    api: Api, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user, rx = f"batch-{uuid.uuid4().hex[:6]}", "rx-2"
    await api.at_pickup(user, rx)
    bad: dict[str, Any] = {"type": "track", "userId": user, "messageId": "m-bad", "event": "refill_picked_up"}
    bad["properties"] = {"rx_id": rx, "picked_up_at": 20261230}
    unknown = {"type": "track", "userId": user, "messageId": "m-unknown", "event": "page_viewed"}
    response = await api.post("/v1/batch", {"batch": [bad, unknown]})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    if _quarantining(api):
        assert first["quarantined"] is True
        assert first["problems"] == [f"picked_up_at: expected {A_DAY}"]
    else:
        assert first == {
            "messageId": "m-bad",
            "type": "track",
            "status": 422,
            "errors": [
                {
                    "path": "batch[0].properties.picked_up_at",
                    "message": "event 'refill_picked_up': property 'picked_up_at': expected an ISO 8601 date "
                    "(2026-11-25) or an ISO 8601 date-time (2026-11-25T09:00:00Z), got int 20261230",
                }
            ],
        }
    assert (second["messageId"], second["journeys"], second["quarantined"]) == ("m-unknown", [], False)
    state = await api.j.settled(JOURNEY, user, rx)
    assert state.step == "await_pickup"

    counts = {t.type: t for t in event_counts(api.j.engine, api.j.journeys.plan).types}
    assert (counts["page_viewed"].declared, counts["page_viewed"].accepted) == (False, 1)
    pickup = counts["refill_picked_up"]
    assert (pickup.declared, pickup.accepted) == (True, 0)
    if _quarantining(api):
        assert (pickup.refused, pickup.quarantined) == (0, 1)
    else:
        assert (pickup.refused, pickup.quarantined) == (1, 0)
        assert pickup.last_problem == f"picked_up_at: expected {A_DAY}"
    assert counts["prescription_filled"].accepted == 1

    # The same counts, as `journeys events --stats` and `journeys report` show them.
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(api.journeys_dir))
    monkeypatch.setenv("JOURNEYS_DATA_DIR", str(tmp_path))
    assert await asyncio.to_thread(main, ["events", "--stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [row] = [line for line in lines if line.startswith("refill_picked_up ")]
    assert row.split()[:5] == ["refill_picked_up", "yes", "0", *(["0", "1"] if _quarantining(api) else ["1", "0"])]
    assert lines[-1].startswith("events: 3 declared, 1 unknown, ")
    assert await asyncio.to_thread(main, ["report", "--no-refresh", "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Events against the tracking plan</h2>" in page
    assert "<td>page_viewed</td><td>no</td><td>1</td>" in page


async def test_the_openapi_document_describes_the_declared_events(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    pickup = document["components"]["schemas"]["Event_refill_picked_up"]
    assert pickup["required"] == ["rx_id", "picked_up_at"]
    assert pickup["properties"]["picked_up_at"] == {
        "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
        "description": "the next supply runs out days_supply after it",
    }
    assert "`refill_picked_up`" in document["paths"]["/v1/track"]["post"]["description"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


async def test_random_bad_payloads_get_a_4xx_never_a_500_and_never_a_signal(api: Api) -> None:
    user, rx = f"prop-{uuid.uuid4().hex[:6]}", "rx-p"
    api.j.add_customer(user)
    filled = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    ok = await api.track(user, "prescription_filled", rx_id=rx, days_supply=30, refills_remaining=1, filled_at=filled)
    assert ok.status_code == 200
    await api.j.settled(JOURNEY, user, rx)
    signals = await api.signals(user, rx)
    plan = api.j.journeys.plan
    assert plan is not None
    declared = sorted(name for name, spec in plan.events.items() if spec.properties)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event=st.sampled_from(declared), properties=st.dictionaries(st.text(max_size=14), _JSON, max_size=5))
    def bad(event: str, properties: dict[str, Any]) -> None:
        if not PayloadValidator(event, plan.events[event]).violations(properties):
            return  # a valid one by chance: not this test's business
        payloads.append((event, properties))

    payloads: list[tuple[str, dict[str, Any]]] = []
    bad()
    assert payloads
    for event, properties in payloads:
        response = await api.post("/v1/track", {"userId": user, "event": event, "properties": properties})
        if response.status_code == 200:  # accepted only into quarantine, where the declaration says so
            assert plan.events[event].on_invalid == "quarantine"
            assert response.json()["quarantined"] is True
        else:  # refused: breaking the declaration, or not even JSON's numbers (Infinity)
            assert 400 <= response.status_code < 500, response.text
    assert await api.signals(user, rx) == signals
