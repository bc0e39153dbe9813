"""The customer's terms: quiet hours across time zones and DST, consent, unsubscribe and SMS STOP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.consent import set_consent
from activities.delivery import DeliveryActivities
from activities.quiet_hours import window_opens
from activities.receipts import (
    apply_inbound_sms,
    apply_receipt,
    parse_resend_event,
    parse_twilio_status,
    verify_twilio_signature,
)
from activities.rendering import TemplateRenderer
from contracts.activities import SendMessageInput, SendMessageResult
from journeymap.fields import Category
from runtime.settings import DeliverySettings
from storage import Customer, Delivery, make_engine
from storage.tables import CustomerIdentity

NIGHT, MORNING = time(21, 0), time(8, 0)
NEW_YORK, TOKYO, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "opens"),
    [
        # 01:00 EST, the night before the spring-forward night: the window opens at 08:00 EST = 13:00 UTC.
        (utc(2026, 3, 7, 6), NEW_YORK, utc(2026, 3, 7, 13)),
        # 01:00 EST on the night clocks jump to EDT at 02:00: 08:00 EDT = 12:00 UTC, an hour earlier in UTC.
        (utc(2026, 3, 8, 6), NEW_YORK, utc(2026, 3, 8, 12)),
        # The same instant is 15:00 in Tokyo (no DST): no quiet hours there.
        (utc(2026, 3, 8, 6), TOKYO, None),
        # 22:00 in Tokyo: tomorrow 08:00 JST = 23:00 UTC today.
        (utc(2026, 3, 8, 13), TOKYO, utc(2026, 3, 8, 23)),
        # 23:00 BST on the night London falls back: 08:00 GMT = 08:00 UTC (the night is an hour longer).
        (utc(2026, 10, 24, 22), LONDON, utc(2026, 10, 25, 8)),
        # 20:59 local is still day; 08:00 sharp is open again.
        (utc(2026, 7, 1, 0, 59), NEW_YORK, None),
        (utc(2026, 7, 1, 12), NEW_YORK, None),
    ],
)
def test_quiet_hours_open_at_eight_local_across_zones_and_dst(
    now: datetime, zone: ZoneInfo, opens: datetime | None
) -> None:
    assert window_opens(now, zone, NIGHT, MORNING) == opens


def test_a_daytime_window_and_no_window() -> None:
    noon = utc(2026, 1, 5, 12)
    assert window_opens(noon, ZoneInfo("UTC"), time(12), time(14)) == utc(2026, 1, 5, 14)
    assert window_opens(noon, ZoneInfo("UTC"), time(0), time(0)) is None


@pytest.fixture
def make_rig(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Rig]]:
    """Rigs on the test's database (SQLite, or PostgreSQL under scripts/test), their engines disposed after."""
    made: list[Rig] = []

    def make(**kwargs: Any) -> Rig:
        made.append(Rig(tmp_path, database_url, **kwargs))
        return made[-1]

    yield make
    for rig in made:
        rig.engine.dispose()


class Rig:
    def __init__(self, tmp_path: Path, database_url: str, *, now: datetime, **settings: Any) -> None:
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "m.yaml").write_text(
            "email: {subject: S, html: <p>H</p>, text: T}\n"
            "sms: {text: T}\nvoice: {text: V}\npush: {title: T, body: B}\n"
        )
        self.engine = make_engine(database_url)
        self.now = now
        self.acts = DeliveryActivities(
            self.engine,
            TemplateRenderer(tmp_path / "t"),
            settings=DeliverySettings(**settings),
            clock=lambda: self.now,
        )

    def customer(self, customer_id: str = "c1", **traits: Any) -> None:
        with Session(self.engine) as session:
            session.add(Customer(id=customer_id, traits={"email": "a@example.test", "phone": "+1 555 0100", **traits}))
            session.commit()

    async def send(
        self, channels: list[str], category: Category, key: str = "k", journey: str = "j"
    ) -> SendMessageResult:
        input = SendMessageInput(
            idempotency_key=key,
            journey=journey,
            step="s",
            customer_id="c1",
            channels=channels,
            template="m",
            category=category,
        )
        result: SendMessageResult = await ActivityEnvironment().run(self.acts.send_message, input)
        return result


async def test_at_night_promotional_and_voice_wait_while_transactional_email_goes(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 6))  # 01:00 in New York
    rig.customer(timezone="America/New_York")
    promo = await rig.send(["email", "sms"], "promotional", key="p")
    assert [(o.channel, o.status, o.retry_at) for o in promo.outcomes] == [
        ("email", "deferred", utc(2026, 3, 8, 12)),
        ("sms", "deferred", utc(2026, 3, 8, 12)),
    ]
    transactional = await rig.send(["email", "voice"], "transactional", key="t")
    assert [(o.channel, o.status) for o in transactional.outcomes] == [("email", "sent"), ("voice", "deferred")]
    # The journey sleeps until retry_at and asks again with the same key: the email is not sent twice.
    rig.now = utc(2026, 3, 8, 12)
    later = await rig.send(["email", "voice"], "transactional", key="t")
    assert [(o.channel, o.status) for o in later.outcomes] == [("email", "sent"), ("voice", "sent")]
    assert later.outcomes[0].provider_message_id == transactional.outcomes[0].provider_message_id


async def test_quiet_hours_are_configurable(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 6), quiet_hours_transactional="email,voice", quiet_hours_end="07:00")
    rig.customer(timezone="America/New_York")
    result = await rig.send(["email"], "transactional")
    assert [(o.status, o.retry_at) for o in result.outcomes] == [("deferred", utc(2026, 3, 8, 11))]


async def test_unsubscribe_and_sms_stop_hold_at_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 16), promotional_cap=0)
    rig.customer()
    assert (await rig.send(["email", "sms"], "promotional", key="1")).delivered == ["email", "sms"]
    set_consent(rig.engine, "c1", channel="email", category="promotional", granted=False, source="unsubscribe_link")
    stop = apply_inbound_sms(rig.engine, "+15550100", "  stop ", message_id="SM9")
    assert stop is not None and (stop.customer_id, stop.event.type) == ("c1", "sms_stop")
    second = await rig.send(["email", "sms"], "promotional", key="2")
    assert [(o.channel, o.status, o.reason) for o in second.outcomes] == [
        ("email", "suppressed", "unconsented: email/promotional revoked (unsubscribe_link)"),
        ("sms", "suppressed", "unconsented: sms/promotional revoked (sms_stop)"),
    ]
    # Unsubscribing from promotions leaves transactional email alone; STOP stops every SMS.
    third = await rig.send(["email", "sms"], "transactional", key="3")
    assert [(o.channel, o.status) for o in third.outcomes] == [("email", "sent"), ("sms", "suppressed")]
    start = apply_inbound_sms(rig.engine, "+1 (555) 0100", "START")
    assert start is not None and start.event.type == "sms_start"
    assert (await rig.send(["sms"], "transactional", key="4")).delivered == ["sms"]
    assert apply_inbound_sms(rig.engine, "+19999999999", "STOP") is None
    # A phone the event API linked to a customer (identity) is found without a profile trait.
    with Session(rig.engine) as session:
        session.add(CustomerIdentity(kind="phone", value="+15550199", customer_id="c9"))
        session.commit()
    linked = apply_inbound_sms(rig.engine, "+15550199", "Stop")
    assert linked is not None and linked.customer_id == "c9"


async def test_promotional_opt_in_can_be_required(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 16), promotional_requires_opt_in=True)
    rig.customer()
    first = await rig.send(["email"], "promotional", key="1")
    assert first.outcomes[0].reason == "unconsented: no opt-in for email/promotional"
    set_consent(rig.engine, "c1", category="promotional", granted=True, source="signup_form")
    assert (await rig.send(["email"], "promotional", key="2")).delivered == ["email"]


async def test_a_paused_customer_gets_no_promotions_but_still_transactional(make_rig: Callable[..., Rig]) -> None:
    """The lifecycle pauses promotions for a lost customer: suppressed with the reason, not silently dropped."""
    rig = make_rig(now=utc(2026, 3, 8, 16))
    rig.customer(promotional_paused=True)
    promo = await rig.send(["email"], "promotional", key="1")
    assert [(o.status, o.reason) for o in promo.outcomes] == [
        ("suppressed", "paused: promotional messages paused for this customer")
    ]
    assert (await rig.send(["email"], "transactional", key="2")).delivered == ["email"]


def test_twilio_status_callbacks_parse_and_verify() -> None:
    # The published example of Twilio's request validation (TwilioDevEd/api-snippets).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675310",
        "Digits": "1234",
        "From": "+14158675310",
        "To": "+18005551212",
    }
    assert verify_twilio_signature("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not verify_twilio_signature("12345", url, {**params, "Digits": "9"}, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    receipt = parse_twilio_status({"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert receipt is not None and (receipt.status, receipt.detail) == ("failed", "30003")
    assert parse_twilio_status({"MessageSid": "SM1", "MessageStatus": "sent"}) is None


async def test_a_hard_bounce_fails_the_message_and_stops_email(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 16))
    rig.customer()
    first = await rig.send(["email"], "transactional", key="1")
    message_id = first.outcomes[0].provider_message_id
    assert message_id is not None
    receipt = parse_resend_event({"type": "email.bounced", "data": {"email_id": message_id}})
    assert receipt is not None
    result = apply_receipt(rig.engine, receipt)
    assert result is not None and result.event.type == "email_bounced"
    with Session(rig.engine) as session:
        [row] = session.exec(select(Delivery)).all()
        assert (row.status, row.receipt, row.reason) == ("failed", "bounced", "bounced after sending")
    second = await rig.send(["email"], "transactional", key="2")
    assert second.outcomes[0].reason == "unconsented: email/transactional revoked (bounced)"
    assert parse_resend_event({"type": "email.sent", "data": {"email_id": message_id}}) is None


async def test_a_spam_complaint_stops_email_with_its_source(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 16))
    rig.customer()
    first = await rig.send(["email"], "promotional", key="1")
    receipt = parse_resend_event(
        {"type": "email.complained", "data": {"email_id": first.outcomes[0].provider_message_id}}
    )
    assert receipt is not None and apply_receipt(rig.engine, receipt) is not None
    second = await rig.send(["email", "sms"], "promotional", key="2")
    assert [(o.channel, o.status, o.reason) for o in second.outcomes] == [
        ("email", "suppressed", "unconsented: email/promotional revoked (complained)"),
        ("sms", "sent", None),
    ]


async def test_racing_promotions_from_two_journeys_respect_the_cap(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(now=utc(2026, 3, 8, 16), promotional_cap=2)
    rig.customer()
    results = await asyncio.gather(
        *(rig.send(["email"], "promotional", key=f"{j}-{i}", journey=j) for j in ("a", "b") for i in range(3))
    )
    statuses = sorted(r.outcomes[0].status for r in results)
    assert statuses == ["sent", "sent", "suppressed", "suppressed", "suppressed", "suppressed"]
    assert (await rig.send(["email"], "transactional", key="t")).delivered == ["email"]
    # A week and a minute after, the window has rolled past both: room again.
    rig.now = utc(2026, 3, 15, 16, 1)
    assert (await rig.send(["email"], "promotional", key="later", journey="a")).delivered == ["email"]
