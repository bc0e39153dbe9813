"""The customer's say through the event API: one-click unsubscribe, the preference center, the consent API,
consent in identify traits, and export and erasure, each followed by the next send the customer would get."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest_asyncio
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.delivery import DeliveryActivities
from activities.links import customer_links
from activities.rendering import TemplateRenderer
from contracts.activities import SendMessageInput, SendMessageResult
from journeymap.preferences import load_preferences
from runtime.settings import DeliverySettings, Settings
from starter.api import ApiServices, create_app
from storage.tables import Consent, CustomerIdentity, Delivery, LinkReference
from testkit.harness import ROOT, Journeys, running_journeys

API_KEY = "backend-key"
LINK_KEY = "link-key-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Center:
    http: httpx.AsyncClient
    j: Journeys
    settings: Settings
    sender: DeliveryActivities
    clock: list[datetime]

    async def send(self, template: str, category: str, *, key: str, customer: str = "ana") -> SendMessageResult:
        result: SendMessageResult = await ActivityEnvironment().run(
            self.sender.send_message,
            SendMessageInput(
                idempotency_key=key,
                journey="lifecycle",
                step=template,
                customer_id=customer,
                channels=["email"],
                template=template,
                category=category,
                variables={"vars": {"since": "2020-01-01", "rx_id": "rx-1", "supply_ends": "2026-07-01"}},
            ),
        )
        return result

    def content(self, key: str) -> dict[str, str]:
        with Session(self.j.engine) as session:
            row = session.exec(select(Delivery).where(Delivery.delivery_key == f"{key}#email")).one()
            return dict(row.content)

    def link(self, key: str, kind: str) -> str:
        """The path of the ``kind`` (unsubscribe, preferences) link in the email the ledger holds for ``key``."""
        found = re.search(rf"https?://[^/\s]+(/{kind}/[A-Za-z0-9._-]+)", self.content(key)["text"])
        assert found, f"no {kind} link in {self.content(key)['text']!r}"
        return found.group(1)

    def words(self, customer: str = "ana") -> list[Consent]:
        with Session(self.j.engine) as session:
            query = select(Consent).where(Consent.customer_id == customer).order_by(col(Consent.id))
            return list(session.exec(query))


@pytest_asyncio.fixture
async def center(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> AsyncIterator[Center]:
    overrides = {"link_keys": LINK_KEY, "links_url": "https://prefs.example"}
    async with running_journeys(
        dev_env.client, tmp_path, task_queue, database_url=database_url, settings_overrides=overrides
    ) as j:
        settings = Settings(api_keys=API_KEY, data_dir=tmp_path, journeys_dir=ROOT / "journeys", **overrides)  # type: ignore[arg-type]
        clock = [datetime(2026, 6, 1, 12, tzinfo=UTC)]
        sender = DeliveryActivities(
            j.engine,
            TemplateRenderer(settings.templates_dir),
            settings=DeliverySettings(quiet_hours_start="21:00", quiet_hours_end="08:00", promotional_cap=0),
            clock=lambda: clock[0],
            links=customer_links(settings),
            preferences=load_preferences(settings.preferences_file),
        )
        j.add_customer("ana", first_name="Ana", email="ana@example.com", timezone="UTC")
        app = create_app(settings, ApiServices(j.journeys, j.engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://prefs.example") as http:
            yield Center(http, j, settings, sender, clock)


async def test_one_click_unsubscribe_stops_that_list_from_the_next_send_and_transactional_goes_on(
    center: Center,
) -> None:
    first = await center.send("lifecycle_winback", "promotional", key="promo-1")
    assert first.delivered == ["email"]
    unsubscribe = center.link("promo-1", "unsubscribe")
    assert "ana" not in unsubscribe and "example.com" not in unsubscribe, "no customer id or address in a link"

    # What Gmail's and Yahoo's unsubscribe buttons send (RFC 8058): no login, no second step.
    answer = await center.http.post(
        unsubscribe,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert [(w.channel, w.category, w.granted, w.source) for w in center.words()] == [
        ("email", "offers", False, "unsubscribe_link")
    ]

    again = await center.send("lifecycle_winback", "promotional", key="promo-2")
    assert again.outcomes[0].status == "suppressed"
    assert again.outcomes[0].reason == "unconsented: email/offers revoked (unsubscribe_link)"
    refill = await center.send("refill_reminder", "transactional", key="refill-1")
    assert refill.delivered == ["email"], "the pharmacy's own messages still go"


async def test_the_unsubscribe_page_asks_first_and_offers_the_preference_center(center: Center) -> None:
    await center.send("lifecycle_review_ask", "promotional", key="promo-1")
    page = await center.http.get(center.link("promo-1", "unsubscribe"))
    assert page.status_code == 200
    assert '<form method="post">' in page.text and "/preferences/" in page.text
    assert center.words() == [], "a GET (a mail scanner following the link) changes nothing"
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-frame-options"] == "DENY"


async def test_a_bad_an_altered_or_an_erased_link_gets_a_clear_page_and_changes_nothing(center: Center) -> None:
    await center.send("lifecycle_review_ask", "promotional", key="promo-1")
    genuine = center.link("promo-1", "unsubscribe")
    with Session(center.j.engine) as session:
        session.add(LinkReference(ref="someone-else", customer_id="bob"))
        session.commit()
    ref = genuine.split("/")[-1].split(".")[0]
    for path, says in [
        ("/unsubscribe/nonsense", "not one of ours"),
        (genuine.replace(ref, "someone-else"), "altered"),  # replayed onto another customer
        (genuine[:-2] + "xx", "altered"),
        ("/preferences/" + genuine.split("/")[-1], "not for this page"),
    ]:
        answer = await center.http.post(path, content="List-Unsubscribe=One-Click")
        assert answer.status_code == 400 and says in answer.text, (path, answer.text)
        assert "Traceback" not in answer.text
    assert center.words() == [] and center.words("bob") == []
    with Session(center.j.engine) as session:
        session.delete(session.get(LinkReference, ref))
        session.commit()
    gone = await center.http.get(genuine)
    assert gone.status_code == 400 and "no longer works" in gone.text


async def test_the_preference_center_changes_only_what_the_customer_changed(center: Center) -> None:
    await center.send("refill_reminder", "transactional", key="refill-1")
    prefs = center.link("refill-1", "preferences")
    page = await center.http.get(prefs)
    assert page.status_code == 200
    assert page.text.count("<fieldset") == 2 + 3 + 1, "service, promotions, three topics, the pause"
    assert '<label for="box-email-offers">' in page.text and 'id="box-email-offers"' in page.text
    boxes = dict(re.findall(r'name="([a-z]+\.[a-z_]+)"\s*(checked)?', page.text))
    assert boxes["email.offers"] == "checked" and boxes["sms.transactional"] == "checked"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf

    form = {name: "on" for name in boxes if name != "email.offers"} | {"csrf": csrf.group(1)}
    saved = await center.http.post(prefs, data=form)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?saved=1")
    assert [(w.channel, w.category, w.granted, w.source) for w in center.words()] == [
        ("email", "offers", False, "preference_center")
    ], "one row for the one box unticked, none for the boxes left as they were"
    shown = await center.http.get(saved.headers["location"])
    assert 'role="status"' in shown.text
    assert dict(re.findall(r'name="([a-z]+\.[a-z_]+)"\s*(checked)?', shown.text))["email.offers"] == ""

    offer = await center.send("lifecycle_winback", "promotional", key="promo-1")
    assert offer.outcomes[0].reason == "unconsented: email/offers revoked (preference_center)"
    news = await center.send("lifecycle_review_ask", "promotional", key="promo-2")
    assert news.delivered == ["email"], "another topic of promotions still goes"


async def test_the_form_refuses_a_post_without_its_token_or_with_another_links(center: Center) -> None:
    await center.send("refill_reminder", "transactional", key="refill-1")
    center.j.add_customer("bob", email="bob@example.com")
    await center.send("refill_reminder", "transactional", key="refill-2", customer="bob")
    mine, theirs = center.link("refill-1", "preferences"), center.link("refill-2", "preferences")
    their_page = await center.http.get(theirs)
    their_csrf = re.search(r'name="csrf" value="([^"]+)"', their_page.text)
    assert their_csrf
    for form in ({}, {"csrf": their_csrf.group(1)}, {"csrf": "x.y.z.w"}):
        answer = await center.http.post(mine, data=form)  # e.g. a form on another site posting to this link
        assert answer.status_code == 400, form
    assert center.words() == []


async def test_a_pause_holds_sends_waiting_out_quiet_hours_and_ends_on_its_day(center: Center) -> None:
    # The page records the pause at the wall clock's time: the sends' clock runs from today.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    center.clock[0] = today + timedelta(hours=23)  # quiet hours: the offer waits for 08:00
    waiting = await center.send("lifecycle_winback", "promotional", key="promo-1")
    assert waiting.outcomes[0].status == "deferred"
    await center.send("refill_reminder", "transactional", key="refill-1")
    prefs = center.link("refill-1", "preferences")
    page = await center.http.get(prefs)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    boxes = [n for n, c in re.findall(r'name="([a-z]+\.[a-z_]+)"\s*(checked)?', page.text) if c]
    await center.http.post(prefs, data={**{b: "on" for b in boxes}, "pause": "30", "csrf": csrf.group(1)})

    center.clock[0] = today + timedelta(days=1, hours=8)  # the window opens: the same send asks again
    woke = await center.send("lifecycle_winback", "promotional", key="promo-1")
    assert woke.outcomes[0].status == "suppressed"
    assert woke.outcomes[0].reason is not None and woke.outcomes[0].reason.startswith("paused: promotional paused")
    assert (await center.send("refill_reminder", "transactional", key="refill-2")).delivered == ["email"]
    center.clock[0] = today + timedelta(days=31, hours=9)  # past the 30 days
    assert (await center.send("lifecycle_winback", "promotional", key="promo-2")).delivered == ["email"]


async def test_backends_read_and_set_consent_and_export_the_audit_trail(center: Center) -> None:
    refused = await center.http.get("/v1/customers/ana/consents")
    assert refused.status_code == 401
    set_ = await center.http.post(
        "/v1/customers/ana/consents",
        json={"channel": "sms", "category": "promotional", "granted": False, "source": "call_centre"},
        headers=AUTH,
    )
    assert set_.status_code == 201 and set_.json()["source"] == "call_centre"
    unknown = await center.http.post(
        "/v1/customers/ana/consents", json={"category": "raffles", "granted": True}, headers=AUTH
    )
    assert unknown.status_code == 400 and "raffles" in unknown.text
    shown = (await center.http.get("/v1/customers/ana/consents", headers=AUTH)).json()
    cell = next(c for c in shown["choices"] if c["channel"] == "sms" and c["scope"] == "promotional")
    assert cell == {
        "channel": "sms",
        "scope": "promotional",
        "allowed": False,
        "reason": "unconsented: sms/promotional revoked (call_centre)",
    }
    # Segment-style: consent in identify's traits becomes consent rows, not a profile trait.
    identified = await center.http.post(
        "/v1/identify",
        json={"userId": "ana", "traits": {"first_name": "Ana", "consent": {"email": {"news": False}, "sms": True}}},
        headers=AUTH,
    )
    assert identified.status_code == 200, identified.text
    assert "consent" not in center.j.profile("ana")
    malformed = await center.http.post(
        "/v1/identify", json={"userId": "ana", "traits": {"consent": {"fax": True}}}, headers=AUTH
    )
    assert malformed.status_code == 422 and "fax" in malformed.text
    audit = await center.http.get("/v1/consents/audit", params={"format": "csv", "customer_id": "ana"}, headers=AUTH)
    rows = list(csv.DictReader(io.StringIO(audit.text)))
    assert [(r["channel"], r["category"], r["granted"], r["source"]) for r in rows] == [
        ("sms", "promotional", "False", "call_centre"),
        ("email", "news", "False", "identify"),
        ("sms", "*", "True", "identify"),
    ]
    assert all(r["at"] for r in rows)
    later = await center.http.get("/v1/consents/audit", params={"since": "2999-01-01"}, headers=AUTH)
    assert later.json() == {"consents": []}
    impossible = await center.http.get("/v1/consents/audit", params={"since": "2026-13-45"}, headers=AUTH)
    assert impossible.status_code == 400 and "since" in impossible.text


async def test_export_then_forget_ends_journeys_and_erases_but_never_sends_twice(center: Center) -> None:
    j = center.j
    j.add_customer("eve", email="eve@example.com", phone="+15555550123", first_name="Eve")
    with Session(j.engine) as session:
        session.add(CustomerIdentity(kind="email", value="eve@example.com", customer_id="eve"))
        session.commit()
    await j.send("eve", "order_placed", order_id="o-1", total=20)
    await j.settled("order_updates", "eve", "o-1")
    sent = j.outbox("eve")
    assert [r.template for r in sent] == ["order_confirmed"]
    assert (await center.send("refill_reminder", "transactional", key="refill-1", customer="eve")).delivered
    link = center.link("refill-1", "preferences")

    export = (await center.http.get("/v1/customers/eve/export", headers=AUTH)).json()
    assert export["profile"]["email"] == "eve@example.com"
    assert export["identities"] == [
        {"kind": "email", "value": "eve@example.com", "linked_at": export["identities"][0]["linked_at"]}
    ]
    assert {m["template"] for m in export["messages"]} == {"order_confirmed", "refill_reminder"}
    # An order starts two journeys: the order's updates and the customer's lifecycle.
    workflow_ids = [j.handle("lifecycle", "eve").id, j.handle("order_updates", "eve", "o-1").id]
    for workflow_id in workflow_ids:
        assert {"workflow_id": workflow_id, "temporal_status": "RUNNING"} in export["journeys"]

    forgotten = (await center.http.delete("/v1/customers/eve", headers=AUTH)).json()
    assert forgotten["journeys_ended"] == workflow_ids
    for workflow_id in workflow_ids:
        described = await j.client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.TERMINATED
    assert j.profile("eve") == {}
    after = (await center.http.get("/v1/customers/eve/export", headers=AUTH)).json()
    assert after["profile"] is None and after["identities"] == []
    assert [(m["status"], m["sent_at"] is not None) for m in after["messages"]] == [("sent", True), ("sent", True)]
    assert all(set(m["content"]) == {"redacted"} for m in after["messages"])
    assert "eve@example.com" not in str(after)

    # The same send again (a retried activity, a replayed event) finds the fact of the send: nothing goes.
    again = await center.send("refill_reminder", "transactional", key="refill-1", customer="eve")
    assert again.outcomes[0].status == "sent" and len(j.outbox("eve")) == 2
    assert (await center.http.get(link)).status_code == 400, "the links in old mail stop working"
    repeat = (await center.http.delete("/v1/customers/eve", headers=AUTH)).json()
    assert repeat["journeys_ended"] == [] and repeat["profiles_removed"] == 0


async def test_a_merged_customer_is_one_person_for_consent_and_erasure(center: Center) -> None:
    # "old-ana" was merged into "ana" (identify); journeys started before still run and send under "old-ana".
    center.j.add_customer("old-ana", email="ana.old@example.com")
    with Session(center.j.engine) as session:
        session.add(CustomerIdentity(kind="customer_id", value="old-ana", customer_id="ana"))
        session.commit()
    revoked = await center.http.post(
        "/v1/customers/ana/consents",
        json={"channel": "email", "category": "promotional", "granted": False},
        headers=AUTH,
    )
    assert revoked.status_code == 201
    offer = await center.send("lifecycle_review_ask", "promotional", key="promo-old", customer="old-ana")
    assert offer.outcomes[0].reason == "unconsented: email/news revoked (api)", "her no holds under every id"
    assert (await center.send("refill_reminder", "transactional", key="refill-old", customer="old-ana")).delivered

    forgotten = (await center.http.delete("/v1/customers/ana", headers=AUTH)).json()
    assert forgotten["profiles_removed"] == 2 and forgotten["messages_redacted"] == 2
    assert center.j.profile("old-ana") == {}
