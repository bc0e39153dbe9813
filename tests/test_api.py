"""The event API against a real dev server: what a backend sending Segment messages relies on."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.cli import main
from storage.tables import Customer, Event, ProcessedMessage
from testkit.harness import Journeys, running_journeys

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("key-one", "key-two")


@dataclass
class Api:
    http: httpx.AsyncClient
    j: Journeys

    async def post(
        self, path: str, body: Any, *, key: str | None = KEYS[0], content_type: str = "application/json"
    ) -> httpx.Response:
        headers = {"content-type": content_type}
        if key is None:
            return await self.http.post(path, content=json.dumps(body), headers=headers)
        return await self.http.post(path, content=json.dumps(body), headers=headers, auth=(key, ""))

    def customer(self, customer_id: str) -> Customer | None:
        with Session(self.j.engine) as session:
            return session.get(Customer, customer_id)

    async def signals(self, workflow_id: str) -> int:
        history = await self.j.client.get_workflow_handle(workflow_id).fetch_history()
        return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events)


@pytest_asyncio.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str) -> AsyncIterator[Api]:
    # Only the pharmacy map, so what an event reaches does not change when other journeys are added.
    journeys_dir = tmp_path / "journeys"
    journeys_dir.mkdir()
    shutil.copy(ROOT / "journeys" / "pharmacy_refill.yaml", journeys_dir)
    shutil.copytree(ROOT / "journeys" / "templates", journeys_dir / "templates")
    settings = Settings(api_keys=",".join(KEYS), api_max_body_bytes=8192, journeys_dir=journeys_dir)
    async with running_journeys(dev_env.client, tmp_path, task_queue, journeys_dir, database_url=database_url) as j:
        app = create_app(settings, ApiServices(j.journeys, j.engine))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield Api(http, j)


def filled(user: dict[str, str], rx: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        **user,
        "messageId": message_id or uuid.uuid4().hex,
        "event": "prescription_filled",
        "properties": {
            "rx_id": rx,
            "days_supply": 30,
            "refills_remaining": 1,
            "filled_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        },
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"library": {"name": "analytics-python"}},  # Segment extras are accepted and ignored
    }


# `application/json` takes the lean path (starter.api.ingestion); another JSON type goes through FastAPI's
# routes. Both must answer alike.
BOTH_PATHS = pytest.mark.parametrize(
    "content_type", ["application/json", "application/vnd.segment+json"], ids=["lean path", "FastAPI route"]
)


@BOTH_PATHS
async def test_track_starts_the_journey_and_says_which_journeys_it_reached(api: Api, content_type: str) -> None:
    async def post(path: str, body: Any) -> httpx.Response:
        return await api.post(path, body, content_type=content_type)

    user = f"api-1-{uuid.uuid4().hex[:6]}"  # each path starts a journey of its own on the shared server

    response = await post("/v1/track", filled({"userId": user}, "rx-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customerId"] == user
    assert body["duplicate"] is False
    [reached] = body["journeys"]
    assert reached["journey"] == "pharmacy_refill"
    assert reached["action"] == "started_or_signalled"
    state = await api.j.settled("pharmacy_refill", user, "rx-1")
    assert state.step == "wait_for_reminder"
    assert reached["workflowId"] == api.j.handle("pharmacy_refill", user, "rx-1").id

    # An event a map waits for reaches that journey and no other; one no map names reaches none.
    ordered = await post("/v1/track", {"userId": user, "event": "refill_ordered", "properties": {"rx_id": "rx-1"}})
    assert [(r["journey"], r["action"]) for r in ordered.json()["journeys"]] == [("pharmacy_refill", "signalled")]
    unknown = await post("/v1/track", {"userId": user, "event": "page_viewed"})
    assert unknown.status_code == 200
    assert unknown.json()["journeys"] == []
    elsewhere = await post(
        "/v1/track", {"userId": "api-other", "event": "refill_ordered", "properties": {"rx_id": "rx-1"}}
    )
    assert [r["action"] for r in elsewhere.json()["journeys"]] == ["not_in_journey"]


@pytest.mark.parametrize(
    "auth",
    [None, ("wrong-key", ""), ("", "key-one")],
    ids=["none", "unknown key", "key as password"],
)
async def test_requests_without_a_valid_key_are_refused_and_do_nothing(api: Api, auth: Any) -> None:
    response = await api.http.post("/v1/track", json=filled({"userId": "api-auth"}, "rx-a"), auth=auth)
    assert response.status_code == 401
    with pytest.raises(RPCError):
        await api.j.handle("pharmacy_refill", "api-auth", "rx-a").describe()


async def test_every_v1_path_needs_a_key_before_its_body_is_even_read(api: Api) -> None:
    """Without a key a client learns nothing: not whether its body would validate, not a report."""
    for method, path in (("POST", "/v1/track"), ("POST", "/v1/batch"), ("GET", "/v1/report"), ("GET", "/v1/nope")):
        response = await api.http.request(method, path, content=b"{not json")
        assert response.status_code == 401, (path, response.text)
        assert response.json() == {"errors": [{"path": "", "message": "missing or unknown API key"}]}
        assert response.headers["www-authenticate"] == "Basic"


async def test_every_configured_key_works_as_basic_or_bearer(api: Api) -> None:
    basic = await api.post("/v1/identify", {"userId": "api-keys"}, key=KEYS[1])
    bearer = await api.http.post(
        "/v1/identify", json={"userId": "api-keys"}, headers={"Authorization": f"Bearer {KEYS[0]}"}
    )
    assert (basic.status_code, bearer.status_code) == (200, 200)


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/track", {"userId": "api-bad", "properties": {}}, "event"),
        ("/v1/track", {"event": "prescription_filled"}, ""),
        ("/v1/track", {"userId": "api-bad", "event": "x", "properties": []}, "properties"),
        ("/v1/track", {"userId": "api-bad", "event": "x", "timestamp": "yesterday"}, "timestamp"),
        ("/v1/track", {"userId": "api-bad", "event": "x", "timestamp": "2026-11-25T10:00:00"}, "timestamp"),
        ("/v1/track", {"userId": "api-bad", "event": "x", "sentAt": "2026-11-25T10:00:00"}, "sentAt"),
        ("/v1/track", {"userId": "api-bad", "event": "x", "timestamp": 1764064800}, "timestamp"),
        ("/v1/identify", {"userId": "api-bad", "sentAt": "0"}, "sentAt"),
        ("/v1/track", {"userId": "api\u0000bad", "event": "x"}, "userId"),
        # PostgreSQL keeps a NUL in JSON, then fails every query that reads the document (the report's 500).
        ("/v1/track", {"userId": "api-bad", "event": "x", "properties": {"note": "a\u0000b"}}, "properties"),
        ("/v1/identify", {"userId": "api-bad", "traits": {"stage\u0000": "lost"}}, "traits"),
        ("/v1/identify", {"userId": "api-bad", "traits": {"email": "x" * 401 + "@example.com"}}, "traits"),
        ("/v1/batch", {"batch": [{"type": "track", "userId": "b", "event": "x"}], "sentAt": "soon"}, "sentAt"),
        ("/v1/identify", {"userId": "", "traits": {}}, "userId"),
        ("/v1/batch", {"batch": []}, "batch"),
        ("/v1/batch", {"batch": [{"type": "page", "userId": "api-bad"}]}, "batch[0]"),
    ],
)
@BOTH_PATHS
async def test_bad_input_is_refused_naming_the_field(
    api: Api, path: str, body: Any, where: str, content_type: str
) -> None:
    response = await api.post(path, body, content_type=content_type)
    assert response.status_code == 422
    assert where in [e["path"] for e in response.json()["errors"]], response.text


async def test_a_bad_message_in_a_batch_stops_the_whole_batch(api: Api) -> None:
    good = filled({"userId": "api-batch-bad"}, "rx-b")
    response = await api.post("/v1/batch", {"batch": [{"type": "track", **good}, {"type": "track", "userId": "x"}]})
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["batch[1].event"]
    with pytest.raises(RPCError):
        await api.j.handle("pharmacy_refill", "api-batch-bad", "rx-b").describe()


async def test_invalid_json_and_oversized_bodies_are_refused(api: Api) -> None:
    broken = await api.http.post(
        "/v1/track", content=b"{not json", headers={"content-type": "application/json"}, auth=(KEYS[0], "")
    )
    assert broken.status_code == 422
    huge = filled({"userId": "api-huge"}, "rx-h")
    huge["properties"]["note"] = "x" * 10_000
    response = await api.post("/v1/track", huge)
    assert response.status_code == 413
    assert "8192" in response.json()["errors"][0]["message"]
    with pytest.raises(RPCError):
        await api.j.handle("pharmacy_refill", "api-huge", "rx-h").describe()


async def test_the_same_message_id_twice_has_effect_once(api: Api) -> None:
    message = filled({"userId": "api-dup"}, "rx-d", message_id="dup-1")
    first = await api.post("/v1/track", message)
    second = await api.post("/v1/track", message)
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is True
    assert second.json()["journeys"] == first.json()["journeys"]
    await api.j.settled("pharmacy_refill", "api-dup", "rx-d")
    assert await api.signals(first.json()["journeys"][0]["workflowId"]) == 1


async def test_messages_arriving_together_are_each_recorded_once_under_their_customer(api: Api) -> None:
    """Requests in flight together share the API's database work: each still gets its own customer and answer,
    and copies of one message sent at the same moment leave one event and one remembered answer."""
    await api.post("/v1/identify", {"userId": "api-known", "anonymousId": "api-known-device"})
    messages = [filled({"userId": f"api-many-{i}"}, f"rx-many-{i}", message_id=f"many-{i}") for i in range(12)]
    messages.append({"anonymousId": "api-known-device", "event": "page_viewed", "messageId": "many-known"})
    copies = [message for message in messages for _ in range(2)]
    answers = await asyncio.gather(*(api.post("/v1/track", message) for message in copies))
    assert [a.status_code for a in answers] == [200] * len(copies)
    customers = {a.json()["messageId"]: a.json()["customerId"] for a in answers}
    assert customers == {**{f"many-{i}": f"api-many-{i}" for i in range(12)}, "many-known": "api-known"}
    with Session(api.j.engine) as session:
        events = Counter(e.event_id for e in session.exec(select(Event)))
        remembered = Counter(m.message_id for m in session.exec(select(ProcessedMessage)))
    assert {k: n for k, n in events.items() if k.startswith("many-")} == dict.fromkeys(customers, 1)
    assert {k: n for k, n in remembered.items() if k.startswith("many-")} == dict.fromkeys(customers, 1)
    again = await api.post("/v1/track", messages[0])
    assert again.json()["duplicate"] is True and again.json()["customerId"] == "api-many-0"


async def test_event_times_are_corrected_for_the_senders_clock(api: Api) -> None:
    """A device clock a day ahead (timestamp and sentAt both tomorrow) records the event at its arrival, a
    timestamp in the future without sentAt is capped at arrival, and a past one (an import) is kept."""
    now = datetime.now(UTC)
    ahead = now + timedelta(days=1)
    week_ago = now - timedelta(days=7)

    def page(message_id: str, **times: datetime) -> dict[str, Any]:
        event = {"userId": "api-clock", "event": "page_viewed", "messageId": message_id}
        return event | {name: at.isoformat() for name, at in times.items()}

    await api.post("/v1/track", page("skewed", timestamp=ahead - timedelta(minutes=5), sentAt=ahead))
    await api.post("/v1/track", page("future", timestamp=ahead))
    await api.post("/v1/track", page("imported", timestamp=week_ago))
    batch = {"batch": [{"type": "track", **page("batched", timestamp=ahead - timedelta(hours=1))}], "sentAt": ahead}
    await api.post("/v1/batch", json.loads(json.dumps(batch, default=datetime.isoformat)))
    after = datetime.now(UTC)
    with Session(api.j.engine) as session:
        recorded = {e.event_id: e.occurred_at.replace(tzinfo=UTC) for e in session.exec(select(Event))}
    assert now - timedelta(minutes=5, seconds=1) <= recorded["skewed"] <= after - timedelta(minutes=5)
    assert now <= recorded["future"] <= after
    assert recorded["imported"] == week_ago
    assert now - timedelta(hours=1, seconds=1) <= recorded["batched"] <= after - timedelta(hours=1)


@BOTH_PATHS
async def test_batch_handles_each_message_in_order(api: Api, content_type: str) -> None:
    user = f"api-batch-{uuid.uuid4().hex[:6]}"  # each path starts journeys of its own on the shared server
    response = await api.post(
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": user, "traits": {"timezone": "Europe/Berlin"}},
                {"type": "track", **filled({"userId": user}, "rx-1")},
                {"type": "track", **filled({"userId": user}, "rx-2")},
            ]
        },
        content_type=content_type,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["type"] for r in results] == ["identify", "track", "track"]
    assert [len(r["journeys"]) for r in results] == [0, 1, 1]
    for rx in ("rx-1", "rx-2"):
        await api.j.settled("pharmacy_refill", user, rx)
    customer = api.customer(user)
    assert customer is not None and customer.traits["timezone"] == "Europe/Berlin"


async def test_an_anonymous_visitor_who_signs_up_keeps_their_journeys(api: Api) -> None:
    before = await api.post("/v1/track", filled({"anonymousId": "visitor-7"}, "rx-anon"))
    anonymous_customer = before.json()["customerId"]
    assert "visitor-7" not in anonymous_customer
    await api.j.settled("pharmacy_refill", anonymous_customer, "rx-anon")

    signed_up = await api.post(
        "/v1/identify",
        {"userId": "user-7", "anonymousId": "visitor-7", "traits": {"email": "Seven@Example.com", "locale": "de"}},
    )
    assert signed_up.json()["customerId"] == anonymous_customer
    customer = api.customer(anonymous_customer)
    assert customer is not None and customer.traits["locale"] == "de"

    # Events under the user id now reach the journey the visitor started.
    ordered = await api.post(
        "/v1/track", {"userId": "user-7", "event": "refill_ordered", "properties": {"rx_id": "rx-anon"}}
    )
    [reached] = ordered.json()["journeys"]
    assert reached["action"] == "signalled"
    assert reached["workflowId"] == before.json()["journeys"][0]["workflowId"]
    assert await api.signals(reached["workflowId"]) == 2

    # The email links too (case-insensitively): a backend that only knows it reaches the same customer.
    by_email = await api.post("/v1/identify", {"anonymousId": "other-device", "traits": {"email": "seven@example.com"}})
    assert by_email.json()["customerId"] == anonymous_customer


async def test_identify_merges_two_known_customers_into_the_users(api: Api) -> None:
    await api.post("/v1/identify", {"userId": "user-8", "traits": {"locale": "fr", "phone": "+15550100"}})
    visitor = await api.post("/v1/identify", {"anonymousId": "visitor-8", "traits": {"timezone": "Europe/Paris"}})
    assert visitor.json()["customerId"] != "user-8"
    merged = await api.post("/v1/identify", {"userId": "user-8", "anonymousId": "visitor-8"})
    assert merged.json()["customerId"] == "user-8"
    customer = api.customer("user-8")
    assert customer is not None
    assert customer.traits == {"locale": "fr", "phone": "+15550100", "timezone": "Europe/Paris"}
    later = await api.post("/v1/track", {"anonymousId": "visitor-8", "event": "page_viewed"})
    assert later.json()["customerId"] == "user-8"


async def test_openapi_is_published_with_the_auth_schemes(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    assert {"/v1/track", "/v1/identify", "/v1/batch", "/v1/report"} <= set(spec["paths"])
    assert {"HTTPBasic", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
    for path, operations in spec["paths"].items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                assert operation["security"] == [{"HTTPBasic": []}, {"HTTPBearer": []}], path


def test_identify_command_links_identities_without_printing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    assert main(["identify", "--anonymous-id", "v-9"]) == 0
    anonymous = capsys.readouterr().out.split()[1].rstrip(":")
    assert main(["identify", "user-9", "email=nine@example.com", "vip=true", "--anonymous-id", "v-9"]) == 0
    out = capsys.readouterr().out
    assert out == f"customer {anonymous}: linked anonymous_id, email, user_id\n"
    assert main(["identify"]) == 2
    assert main(["identify", "user-9", "novalue"]) == 2


def test_batch_groups_keep_one_persons_messages_together() -> None:
    """Messages sharing a user id or an anonymous id run in order; others may run at once."""
    from starter.api.ingestion import same_person
    from starter.api.models import IdentifyMessage, TrackMessage

    messages: list[TrackMessage | IdentifyMessage] = [
        TrackMessage.model_validate({"messageId": "1", "anonymousId": "v1", "event": "viewed"}),
        IdentifyMessage.model_validate({"messageId": "2", "anonymousId": "v1", "userId": "u1"}),
        TrackMessage.model_validate({"messageId": "3", "userId": "u1", "event": "purchase"}),
        TrackMessage.model_validate({"messageId": "4", "userId": "u2", "event": "purchase"}),
    ]
    assert sorted(same_person(messages)) == [[0, 1, 2], [3]]


async def test_a_client_gone_before_its_body_arrived_gets_nothing_done() -> None:
    """The lean path reads the whole body first: a disconnect means no answer and no message handled."""
    from starter.api.auth import ApiKeys
    from starter.api.ingestion import Ingestion, IngestionPath

    def no_services() -> ApiServices:
        raise AssertionError("a message was handled for a client that went away")

    async def fastapi(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a JSON track was passed on to FastAPI")

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer k1")]
    scope = {"type": "http", "method": "POST", "path": "/v1/track", "headers": headers}
    await IngestionPath(fastapi, Ingestion(no_services), ApiKeys(["k1"]), 1000)(scope, receive, send)
    assert sent == []


async def test_a_client_gone_mid_body_reaches_no_route() -> None:
    """The body limit buffers the body before anything reads it: a client that goes away after a first chunk
    (here a whole, valid track) must not have that chunk handled as if it were the whole body."""
    from starter.api.middleware import BodyLimit

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"the app got a body from a client that went away: {await receive()}")

    chunk = json.dumps({"userId": "gone", "event": "purchase"}).encode()
    messages = iter([{"type": "http.request", "body": chunk, "more_body": True}, {"type": "http.disconnect"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/track", "headers": [(b"content-type", b"application/json")]}
    await BodyLimit(app, limit=8192)(scope, receive, send)
    assert sent == []


async def test_the_lean_path_holds_a_client_gone_mid_body_and_answers_a_bug_with_500() -> None:
    """The lean path reads the body itself, in front of BodyLimit: a first chunk from a client that went away is
    not handled as a whole body; and an exception that is not ours is a 500 with the API's error body."""
    from starter.api.auth import ApiKeys
    from starter.api.ingestion import Ingestion, IngestionPath

    async def fastapi(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a JSON track was passed on to FastAPI")

    def broken() -> ApiServices:
        raise RuntimeError("a bug")

    track = json.dumps({"userId": "u1", "event": "purchase"}).encode()
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer k1")]
    scope = {"type": "http", "method": "POST", "path": "/v1/track", "headers": headers}
    for chunks, expected in (
        ([{"type": "http.request", "body": track, "more_body": True}, {"type": "http.disconnect"}], None),
        ([{"type": "http.request", "body": track, "more_body": False}], 500),
    ):
        messages = iter(chunks)
        sent: list[Any] = []

        async def receive() -> Any:
            return next(messages)  # noqa: B023  (each round's own)

        async def send(message: Any) -> None:
            sent.append(message)  # noqa: B023

        await IngestionPath(fastapi, Ingestion(broken), ApiKeys(["k1"]), 8192)(scope, receive, send)
        if expected is None:
            assert sent == []
        else:
            assert sent[0]["status"] == expected
            assert json.loads(sent[1]["body"]) == {"errors": [{"path": "", "message": "internal error"}]}
