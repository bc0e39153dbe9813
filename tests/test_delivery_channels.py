"""Each channel against a real local stand-in of its provider: the request format, errors, fallback, ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels.webhook_channel import SIGNATURE_HEADER, verify_signature
from activities.consent import set_consent
from activities.delivery import DeliveryActivities
from activities.links import CustomerLinks
from activities.rendering import TemplateRenderer
from contracts.activities import SendMessageInput
from runtime.links import LinkSigner
from runtime.settings import DeliverySettings
from storage import Customer, Delivery, make_engine
from storage.tables import CustomerIdentity
from testkit.processes import free_port
from tests.delivery_fakes import FakeProvider, provider_server

TEMPLATE = """
email:
  subject: "Hello {{ profile.first_name }}"
  html: "<p>Hello {{ profile.first_name }} at {{ vars.store }}</p>"
  text: "Hello {{ profile.first_name }} at {{ vars.store }}"
sms:
  text: "Your refill is ready at {{ vars.store }}."
push:
  title: Refill ready
  body: "Pick it up at {{ vars.store }}."
voice:
  text: "Your refill is ready at {{ vars.store }}."
locales:
  es:
    sms:
      text: "Su resurtido está listo en {{ vars.store }}."
"""

PLAIN_EMAIL = """
email:
  subject: "Hello {{ profile.first_name }}"
  text: "Hello {{ profile.first_name }} at {{ vars.store }}"
"""

LONG_SMS = """
sms:
  text: "{{ 'x' * 200 }} \U0001f48a"
"""


@dataclass
class Rig:
    tmp_path: Path
    database_url: str
    http: httpx.AsyncClient
    links_mailto: str | None = None

    def __post_init__(self) -> None:
        templates = self.tmp_path / "templates"
        templates.mkdir(exist_ok=True)
        (templates / "hello.yaml").write_text(TEMPLATE)
        (templates / "too_long.yaml").write_text(LONG_SMS)
        (templates / "plain.yaml").write_text(PLAIN_EMAIL)
        self.engine = make_engine(self.database_url)
        self.renderer = TemplateRenderer(templates)

    def customer(self, customer_id: str = "c1", **traits: Any) -> None:
        traits = {"first_name": "Ana", "email": "ana@example.test", "phone": "+15555550100", **traits}
        with Session(self.engine) as session:
            session.add(Customer(id=customer_id, traits=traits))
            session.commit()

    def activities(self, **settings: Any) -> DeliveryActivities:
        config = DeliverySettings(
            quiet_hours_start="00:00",
            quiet_hours_end="00:00",
            **settings,
        )
        links = CustomerLinks(LinkSigner([b"k" * 32]), "https://prefs.example", timedelta(days=1), self.links_mailto)
        return DeliveryActivities(self.engine, self.renderer, http=self.http, settings=config, links=links)

    def ledger(self) -> list[Delivery]:
        with Session(self.engine) as session:
            return list(session.exec(select(Delivery).order_by(Delivery.id)))  # type: ignore[arg-type]


def send_input(
    channels: list[str], *, key: str = "k1", mode: Literal["all", "first"] = "all", **kw: Any
) -> SendMessageInput:
    return SendMessageInput(
        idempotency_key=key,
        journey="j",
        step="s",
        customer_id=kw.pop("customer_id", "c1"),
        channels=channels,
        mode=mode,
        template=kw.pop("template", "hello"),
        category=kw.pop("category", "transactional"),
        variables={"vars": {"store": "Smith & Sons"}},
    )


@pytest_asyncio.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    async with httpx.AsyncClient(timeout=5) as http:
        r = Rig(tmp_path, database_url, http)
        yield r
        r.engine.dispose()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with provider_server() as fake:
        yield fake


async def run(acts: DeliveryActivities, input: SendMessageInput) -> Any:
    return await ActivityEnvironment().run(acts.send_message, input)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    """A real SMTP server on loopback (aiosmtpd): what it received, and its port."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_over_smtp_reaches_a_real_server_as_html_and_text(rig: Rig, smtp: tuple[_Inbox, int]) -> None:
    inbox, port = smtp
    rig.customer()
    acts = rig.activities(email_provider="smtp", smtp_host="127.0.0.1", smtp_port=port)
    result = await run(acts, send_input(["email"]))
    again = await run(acts, send_input(["email"]))
    assert result.delivered == ["email"] and again.delivered == ["email"]
    assert len(inbox.messages) == 1, "a retried send with the same key must not send again"
    mail_from, rcpt, raw = inbox.messages[0]
    assert rcpt == ["ana@example.test"] and "journeys@localhost" in mail_from
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Hello Ana"
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and "<p>Hello Ana at Smith &amp; Sons</p>" in html.get_content()
    assert text is not None and "Hello Ana at Smith & Sons" in text.get_content()
    assert msg["Message-ID"] == result.outcomes[0].provider_message_id
    [row] = rig.ledger()
    assert (row.status, row.provider, row.attempts) == ("sent", "smtp", 1) and row.sent_at is not None


async def test_a_text_only_email_goes_over_smtp_as_one_plain_text_part(rig: Rig, smtp: tuple[_Inbox, int]) -> None:
    inbox, port = smtp
    rig.customer()
    acts = rig.activities(email_provider="smtp", smtp_host="127.0.0.1", smtp_port=port)
    result = await run(acts, send_input(["email"], template="plain"))
    assert result.delivered == ["email"]
    [(_, _, raw)] = inbox.messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Hello Ana"
    assert msg.get_content_type() == "text/plain" and not msg.is_multipart()
    assert msg.get_content().strip() == "Hello Ana at Smith & Sons"


async def test_a_text_only_email_goes_to_the_http_provider_without_html(rig: Rig, provider: FakeProvider) -> None:
    rig.customer()
    provider.answer = lambda r: (200, {}, {"id": "re_124"})
    acts = rig.activities(email_provider="http", http_email_url=provider.url)
    result = await run(acts, send_input(["email"], template="plain"))
    assert result.delivered == ["email"]
    [request] = provider.requests
    body = request.json()
    assert body["text"] == "Hello Ana at Smith & Sons" and "html" not in body


async def test_http_email_provider_gets_the_resend_format_and_the_idempotency_key(
    rig: Rig, provider: FakeProvider
) -> None:
    rig.customer()
    provider.answer = lambda r: (200, {}, {"id": "re_123"})
    acts = rig.activities(email_provider="http", http_email_url=provider.url, http_email_api_key="re_key")
    result = await run(acts, send_input(["email"]))
    assert result.outcomes[0].provider_message_id == "re_123"
    [request] = provider.requests
    assert request.path == "/emails"
    assert request.headers["authorization"] == "Bearer re_key"
    assert request.headers["idempotency-key"] == "k1#email"
    body = request.json()
    assert body["to"] == ["ana@example.test"] and body["subject"] == "Hello Ana"
    assert "&amp;" in body["html"] and body["text"] == "Hello Ana at Smith & Sons"


async def test_twilio_sms_and_voice_with_twiml_say(rig: Rig, provider: FakeProvider) -> None:
    rig.customer(locale="es-MX")
    provider.answer = lambda r: (201, {}, {"sid": "SM1" if "Messages" in r.path else "CA1"})
    acts = rig.activities(
        sms_provider="twilio",
        voice_provider="twilio",
        twilio_url=provider.url,
        twilio_account_sid="AC123",
        twilio_auth_token="tok",
        twilio_from="+15555550999",
    )
    result = await run(acts, send_input(["sms", "voice"]))
    assert [(o.channel, o.provider_message_id) for o in result.outcomes] == [("sms", "SM1"), ("voice", "CA1")]
    sms, call = provider.requests
    assert sms.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert sms.headers["authorization"].startswith("Basic ")  # AC123:tok
    assert sms.form() == {
        "To": "+15555550100",
        "From": "+15555550999",
        "Body": "Su resurtido está listo en Smith & Sons.",
    }
    assert call.path == "/2010-04-01/Accounts/AC123/Calls.json"
    form = call.form()
    assert form["To"] == "+15555550100" and form["From"] == "+15555550999"
    assert form["Twiml"] == (
        '<Response><Say voice="alice" language="es-MX">Your refill is ready at Smith &amp; Sons.</Say></Response>'
    )


async def test_fcm_v1_message_shape(rig: Rig, provider: FakeProvider) -> None:
    rig.customer(push_token="tok-abc")
    provider.answer = lambda r: (200, {}, {"name": "projects/p1/messages/42"})
    acts = rig.activities(push_provider="fcm", fcm_url=provider.url, fcm_project_id="p1", fcm_access_token="ya29")
    result = await run(acts, send_input(["push"]))
    assert result.outcomes[0].provider_message_id == "projects/p1/messages/42"
    [request] = provider.requests
    assert request.path == "/v1/projects/p1/messages:send"
    assert request.headers["authorization"] == "Bearer ya29"
    message = request.json()["message"]
    assert message["token"] == "tok-abc"
    assert message["notification"] == {"title": "Refill ready", "body": "Pick it up at Smith & Sons."}
    assert message["data"]["idempotency_key"] == "k1#push"
    assert all(isinstance(v, str) for v in message["data"].values())
    # A repeat of this send (the crash window) replaces the notification on the device instead of adding one.
    collapse = message["android"]["notification"]["tag"]
    assert len(collapse) == 32 and "k1" not in collapse
    assert message["android"]["collapse_key"] == message["apns"]["headers"]["apns-collapse-id"] == collapse
    assert message["webpush"]["headers"]["Topic"] == collapse


async def test_every_attempt_of_a_push_carries_the_same_collapse_id(rig: Rig, provider: FakeProvider) -> None:
    """FCM takes no idempotency key: when a send is retried after FCM took it, the device must show the repeat in
    place of the first notification, so the collapse id is the same on every attempt and differs between sends."""
    rig.customer(push_token="tok-abc")
    acts = rig.activities(push_provider="fcm", fcm_url=provider.url, fcm_project_id="p1", fcm_access_token="ya29")
    answers: Iterator[tuple[int, dict[str, str], dict[str, str]]] = iter(
        [(503, {}, {}), (200, {}, {"name": "projects/p1/messages/42"}), (200, {}, {"name": "m/43"})]
    )
    provider.answer = lambda r: next(answers)
    with pytest.raises(ApplicationError):
        await run(acts, send_input(["push"]))
    await run(acts, send_input(["push"]))  # the retry of the same send
    await run(acts, send_input(["push"], key="k2"))  # another send
    first, retry, other = (r.json()["message"]["android"]["notification"]["tag"] for r in provider.requests)
    assert first == retry != other


async def test_signed_webhook_carries_a_verifiable_hmac_and_the_key(rig: Rig, provider: FakeProvider) -> None:
    rig.customer()
    acts = rig.activities(webhook_provider="http", webhook_url=f"{provider.url}/hook", webhook_secret="s3cret")
    result = await run(acts, send_input(["webhook"]))
    assert result.delivered == ["webhook"]
    [request] = provider.requests
    assert request.path == "/hook" and request.headers["idempotency-key"] == "k1#webhook"
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature("s3cret", signature, request.body)
    assert not verify_signature("wrong", signature, request.body)
    assert not verify_signature("s3cret", signature, request.body + b" ")
    body = request.json()
    assert (body["customer_id"], body["journey"], body["content"]) == ("c1", "j", {"vars": {"store": "Smith & Sons"}})


async def test_503_with_retry_after_is_retried_after_that_delay_then_sent_once(
    rig: Rig, provider: FakeProvider
) -> None:
    rig.customer()
    answers = iter([(503, {"Retry-After": "7"}, {}), (200, {}, {"id": "re_ok"})])
    provider.answer = lambda r: next(answers)
    acts = rig.activities(email_provider="http", http_email_url=provider.url)
    with pytest.raises(ApplicationError) as caught:
        await run(acts, send_input(["email"]))
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay == timedelta(seconds=7)
    assert [r.status for r in rig.ledger()] == ["pending"]
    result = await run(acts, send_input(["email"]))
    assert result.delivered == ["email"]
    [row] = rig.ledger()
    assert (row.status, row.attempts, row.provider_message_id) == ("sent", 2, "re_ok")


async def test_timeout_is_retryable(rig: Rig, provider: FakeProvider) -> None:
    rig.customer()
    provider.delay_seconds = 1.0
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        acts = DeliveryActivities(
            rig.engine,
            rig.renderer,
            http=impatient,
            settings=DeliverySettings(email_provider="http", http_email_url=provider.url),
        )
        with pytest.raises(ApplicationError, match="timed out") as caught:
            await run(acts, send_input(["email"]))
    assert not caught.value.non_retryable


async def test_first_that_works_falls_back_on_a_permanent_rejection(rig: Rig, provider: FakeProvider) -> None:
    rig.customer(preferred_channels=["sms", "email"])
    provider.answer = lambda r: (400, {}, {"code": 21211, "message": "The 'To' number is not a valid phone number."})
    acts = rig.activities(
        sms_provider="twilio", twilio_url=provider.url, twilio_account_sid="AC1", twilio_from="+15555550999"
    )
    result = await run(acts, send_input(["email", "sms"], mode="first"))
    assert [(o.channel, o.status) for o in result.outcomes] == [("sms", "failed"), ("email", "sent")]
    assert "21211" in (result.outcomes[0].reason or "")
    assert {r.channel: r.status for r in rig.ledger()} == {"sms": "failed", "email": "sent"}
    # Retried or re-executed, the send is settled: neither channel is tried again.
    again = await run(acts, send_input(["email", "sms"], mode="first"))
    assert [(o.channel, o.status) for o in again.outcomes] == [("sms", "failed"), ("email", "sent")]
    assert len(provider.requests) == 1


async def test_first_that_works_skips_unreachable_and_unconsented_channels(rig: Rig, provider: FakeProvider) -> None:
    rig.customer(preferred_channels=["push", "sms", "email"])  # no device token
    set_consent(rig.engine, "c1", channel="sms", granted=False, source="sms_stop")
    acts = rig.activities(push_provider="fcm", fcm_url=provider.url, fcm_project_id="p")
    result = await run(acts, send_input(["email", "sms", "push"], mode="first"))
    assert [(o.channel, o.status, o.reason) for o in result.outcomes] == [
        ("push", "suppressed", "unreachable: no device token"),
        ("sms", "suppressed", "unconsented: sms/transactional revoked (sms_stop)"),
        ("email", "sent", None),
    ]
    assert provider.requests == []


async def test_an_sms_over_the_segment_limit_is_not_sent(rig: Rig) -> None:
    rig.customer()
    acts = rig.activities(sms_max_segments=3)
    result = await run(acts, send_input(["sms"], template="too_long"))
    [outcome] = result.outcomes
    assert outcome.status == "failed"
    assert outcome.reason == "sms too long: 4 segments (UCS-2), at most 3"


async def test_concurrent_attempts_of_one_send_deliver_once(rig: Rig, provider: FakeProvider) -> None:
    rig.customer()
    provider.delay_seconds = 0.3
    acts = rig.activities(email_provider="http", http_email_url=provider.url)
    results = await asyncio.gather(*(run(acts, send_input(["email"])) for _ in range(3)))
    assert all(r.delivered == ["email"] for r in results)
    assert len(provider.delivered) == 1
    assert {r.headers["idempotency-key"] for r in provider.requests} == {"k1#email"}


async def test_a_slow_send_heartbeats_when_the_workflow_asks_for_it(rig: Rig, provider: FakeProvider) -> None:
    """So a worker killed in a slow send is noticed after the heartbeat timeout, not the whole send timeout."""
    rig.customer()
    provider.delay_seconds = 0.5
    acts = rig.activities(email_provider="http", http_email_url=provider.url)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.3))
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    result = await env.run(acts.send_message, send_input(["email"]))
    assert result.delivered == ["email"]
    assert len(beats) >= 2


async def test_promotional_email_carries_one_click_unsubscribe_over_smtp_and_transactional_does_not(
    rig: Rig, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    # An id long enough that a random reference cannot hold it by chance (a 2-letter one did, 1 run in ~200).
    rig.customer("customer-0042")
    rig.links_mailto = "unsubscribe@brand.example"
    acts = rig.activities(email_provider="smtp", smtp_host="127.0.0.1", smtp_port=port)
    await run(acts, send_input(["email"], key="promo", category="promotional", customer_id="customer-0042"))
    await run(acts, send_input(["email"], key="refill", customer_id="customer-0042"))
    promo, refill = (email.message_from_bytes(m[2], policy=email.policy.default) for m in inbox.messages)
    https, mailto = (part.strip(" <>") for part in str(promo["List-Unsubscribe"]).split(","))
    assert https.startswith("https://prefs.example/unsubscribe/") and ".unsub-email-promotional." in https
    assert mailto.startswith("mailto:unsubscribe@brand.example?subject=unsubscribe%20")
    assert promo["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "ana@example.test" not in promo["List-Unsubscribe"] and "customer-0042" not in promo["List-Unsubscribe"]
    assert refill["List-Unsubscribe"] is None and refill["List-Unsubscribe-Post"] is None


async def test_promotional_email_carries_one_click_unsubscribe_over_the_http_provider(
    rig: Rig, provider: FakeProvider
) -> None:
    rig.customer()
    acts = rig.activities(email_provider="http", http_email_url=provider.url)
    await run(acts, send_input(["email"], key="promo", category="promotional"))
    await run(acts, send_input(["email"], key="refill"))
    promo, refill = (r.json() for r in provider.requests)
    assert promo["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert promo["headers"]["List-Unsubscribe"].startswith("<https://prefs.example/unsubscribe/")
    assert "headers" not in refill


async def test_a_push_token_reported_unregistered_is_dropped_from_the_profile(rig: Rig, provider: FakeProvider) -> None:
    rig.customer(push_token="tok-dead", device_tokens=["tok-dead", "tok-live"])
    with Session(rig.engine) as session:
        session.add(CustomerIdentity(kind="device_token", value="tok-dead", customer_id="c1"))
        session.commit()
    unregistered = {
        "error": {
            "code": 404,
            "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}],
        }
    }
    provider.answer = lambda r: (404, {}, unregistered)
    acts = rig.activities(push_provider="fcm", fcm_url=provider.url, fcm_project_id="p")
    result = await run(acts, send_input(["push"]))
    assert result.outcomes[0].status == "failed" and "unregistered" in (result.outcomes[0].reason or "")
    with Session(rig.engine) as session:
        customer = session.get(Customer, "c1")
        assert customer is not None
        assert "push_token" not in customer.traits and customer.traits["device_tokens"] == ["tok-live"]
        assert session.get(CustomerIdentity, ("device_token", "tok-dead")) is None
    # The next push goes to the token that still works.
    provider.answer = lambda r: (200, {}, {"name": "projects/p/messages/1"})
    await run(acts, send_input(["push"], key="k2"))
    assert provider.requests[-1].json()["message"]["token"] == "tok-live"
