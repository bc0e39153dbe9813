"""After identify merges a customer into another, events for either reach the journeys running under the merged id.

On the time-skipping server, through the event API, on SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.api.bookkeeping import Bookkeeping
from starter.api.identities import merged_customer, resolve_customer
from starter.api.models import TrackMessage
from starter.cli import main
from storage import make_engine
from testkit.harness import ROOT, Journeys, running_journeys

JOURNEY = "pharmacy_refill"
KEY = "merge-key"


@dataclass
class Api:
    http: httpx.AsyncClient
    j: Journeys
    journeys_dir: Path

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(path, content=json.dumps(body), auth=(KEY, ""))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def signals(self, workflow_id: str) -> int:
        history = await self.j.client.get_workflow_handle(workflow_id).fetch_history()
        return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events)


@pytest_asyncio.fixture
async def api(time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str) -> AsyncIterator[Api]:
    journeys_dir = tmp_path / "journeys"
    journeys_dir.mkdir()
    shutil.copy(ROOT / "journeys" / f"{JOURNEY}.yaml", journeys_dir)
    shutil.copytree(ROOT / "journeys" / "templates", journeys_dir / "templates")
    settings = Settings(api_keys=KEY, journeys_dir=journeys_dir)
    async with running_journeys(time_env.client, tmp_path, task_queue, journeys_dir, database_url=database_url) as j:
        app = create_app(settings, ApiServices(j.journeys, j.engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield Api(http, j, journeys_dir)


def _reached(answer: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(r["journey"], r["workflowId"], r["action"]) for r in answer["journeys"]]


async def test_a_journey_under_a_merged_id_hears_events_for_either_id(
    api: Api,
    time_env: WorkflowEnvironment,
    task_queue: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await api.post("/v1/identify", {"userId": "user-m", "traits": {"first_name": "Maria"}})
    now = await time_env.get_current_time()
    rx = {"rx_id": "rx-m", "days_supply": 30, "refills_remaining": 1, "filled_at": now.isoformat()}
    filled: dict[str, Any] = {"event": "prescription_filled", "anonymousId": "visitor-m", "properties": rx}
    before = await api.post("/v1/track", {**filled, "messageId": "m-filled"})
    visitor = before["customerId"]
    [(_, workflow_id, _)] = _reached(before)
    api.j.started.add(str(workflow_id))
    await api.j.settled(JOURNEY, visitor, "rx-m")

    # The visitor turns out to be a known user: the user's customer absorbs the visitor's.
    merged = await api.post("/v1/identify", {"userId": "user-m", "anonymousId": "visitor-m"})
    assert merged["customerId"] == "user-m" != visitor

    await time_env.sleep(timedelta(days=28))
    await api.j.settled(JOURNEY, visitor, "rx-m", until=lambda s: s.step == "await_order")

    # An event for the surviving id reaches the journey still running under the absorbed one, and moves it on.
    ordered = await api.post(
        "/v1/track", {"userId": "user-m", "event": "refill_ordered", "properties": {"rx_id": "rx-m"}}
    )
    assert ordered["customerId"] == "user-m"
    assert _reached(ordered) == [(JOURNEY, workflow_id, "signalled")]
    await api.j.settled(JOURNEY, visitor, "rx-m", until=lambda s: s.step == "await_ready")

    # So does one for the absorbed identity, which now resolves to the survivor too.
    ready = await api.post(
        "/v1/track",
        {"anonymousId": "visitor-m", "event": "refill_ready", "properties": {"rx_id": "rx-m", "store_name": "Elm"}},
    )
    assert (ready["customerId"], _reached(ready)) == ("user-m", [(JOURNEY, workflow_id, "signalled")])
    state = await api.j.settled(JOURNEY, visitor, "rx-m", until=lambda s: s.step == "await_pickup")
    assert state.vars["store_name"] == "Elm"

    # The same prescription filled again goes to the running journey: no second one starts under the survivor.
    again = await api.post("/v1/track", {**filled, "userId": "user-m", "messageId": "m-filled-2"})
    assert _reached(again) == [(JOURNEY, workflow_id, "signalled")]
    with pytest.raises(RPCError) as missing:
        await api.j.handle(JOURNEY, "user-m", "rx-m").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    # A retried message has no second effect, and a journey drops an event id it has seen.
    signals = await api.signals(str(workflow_id))
    assert (await api.post("/v1/track", {**filled, "userId": "user-m", "messageId": "m-filled-2"}))["duplicate"]
    assert await api.signals(str(workflow_id)) == signals

    # A new prescription after the merge starts under the survivor.
    fresh = await api.post("/v1/track", {**filled, "userId": "user-m", "properties": {**rx, "rx_id": "rx-new"}})
    new_id = api.j.handle(JOURNEY, "user-m", "rx-new").id
    api.j.started.add(new_id)
    assert _reached(fresh) == [(JOURNEY, new_id, "started_or_signalled")]

    # An operator's `journeys track` with the absorbed customer id reaches it too: the pickup ends the last cycle.
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", time_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_TASK_QUEUE", task_queue)
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(api.journeys_dir))
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    picked_up = ["rx_id=rx-m", f'picked_up_at="{(await time_env.get_current_time()).isoformat()}"']
    assert await asyncio.to_thread(main, ["track", visitor, "refill_picked_up", *picked_up]) == 0
    assert f"{JOURNEY}: signalled ({workflow_id})" in capsys.readouterr().out
    state = await api.j.settled(JOURNEY, visitor, "rx-m")
    assert (state.status, state.end_reason) == ("completed", "reached the end")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


async def test_merged_ids_follow_the_survivor_through_a_second_merge(engine: Engine) -> None:
    first = resolve_customer(engine, user_id=None, anonymous_id="device-a")
    second = resolve_customer(engine, user_id=None, anonymous_id="device-b")
    resolve_customer(engine, user_id="user-c", anonymous_id=None, traits={"email": "c@example.com"})
    resolve_customer(engine, user_id="user-c", anonymous_id="device-a")
    resolve_customer(engine, user_id="user-c", anonymous_id="device-b")
    resolve_customer(engine, user_id="user-d", anonymous_id=None)
    # user-d turns out to own user-c's email: user-d absorbs user-c, and with it what user-c had absorbed.
    assert resolve_customer(engine, user_id="user-d", anonymous_id=None, traits={"email": "c@example.com"}) == "user-d"

    expected = ("user-d", sorted([first, second, "user-c"]))
    assert merged_customer(engine, first) == expected
    assert merged_customer(engine, "user-c") == expected
    assert merged_customer(engine, "user-d") == expected
    assert merged_customer(engine, "nobody") == ("nobody", [])

    # The event API's look-ups carry them: a plain track by user id (one joined read) and an anonymous one.
    bookkeeping = Bookkeeping(engine)
    for identity in ({"userId": "user-d"}, {"anonymousId": "device-b"}, {"userId": "user-c"}):
        found = await bookkeeping.before_routing(TrackMessage.model_validate({**identity, "event": "e"}))
        assert (found.customer_id, list(found.absorbed)) == expected, identity
    never_merged = await bookkeeping.before_routing(TrackMessage.model_validate({"userId": "user-e", "event": "e"}))
    assert (never_merged.customer_id, never_merged.absorbed) == ("user-e", ())
