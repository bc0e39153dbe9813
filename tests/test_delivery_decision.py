"""The delivery decision as a table: each rule of the customer's terms and their precedence, with no database,
no provider and no Temporal (``activities.decision``)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest

from activities.decision import (
    PAUSED,
    Capped,
    ConsentWord,
    Defer,
    Fail,
    Profile,
    Rendered,
    Rules,
    Send,
    Suppress,
    Verdict,
    channel_order,
    decide,
    goes_on,
)
from contracts.activities import SendMessageInput
from contracts.errors import ConfigurationError
from runtime.settings import DeliverySettings

DAY = datetime(2026, 3, 8, 16, tzinfo=UTC)
"""11:00 in New York."""
NIGHT = datetime(2026, 3, 8, 6, tzinfo=UTC)
"""01:00 in New York, the night clocks spring forward: quiet hours end at 08:00 EDT, 12:00 UTC."""
MORNING = datetime(2026, 3, 8, 12, tzinfo=UTC)

RULES = Rules(
    quiet_start=time(21),
    quiet_end=time(8),
    quiet_transactional=frozenset({"voice"}),
    promotional_cap=3,
    promotional_cap_days=7,
    promotional_requires_opt_in=False,
    outbox_requires_address=False,
)
ADDRESSES = {"email": "ana@example.test", "phone": "+15555550100", "push_token": "tok-1"}


def word(
    channel: str,
    category: str,
    granted: bool,
    source: str = "api",
    *,
    hours_ago: float = 1,
    seq: int = 0,
    until: datetime | None = None,
) -> ConsentWord:
    return ConsentWord(channel, category, granted, source, DAY - timedelta(hours=hours_ago), seq, until)


@dataclass(frozen=True)
class Case:
    """One send of one channel; every field not named is an ordinary daytime transactional email."""

    channel: str = "email"
    category: Literal["transactional", "promotional"] = "transactional"
    traits: dict[str, Any] = field(default_factory=lambda: dict(ADDRESSES))
    consents: tuple[ConsentWord, ...] = ()
    provider: str | None = "http"
    pending: bool = False
    sent: int = 0
    """Promotional messages ahead of this one in the cap's window."""
    problem: str | None = None
    now: datetime = DAY
    rules: dict[str, Any] = field(default_factory=dict)
    topic: str | None = None

    def decide(self) -> Verdict:
        return decide(
            _send([self.channel], self.category),
            self.channel,
            profile=Profile("c1", self.traits, ZoneInfo("America/New_York")),
            consents=self.consents,
            provider=self.provider,
            pending=self.pending,
            promotional_sent=self.sent,
            rendered=Rendered({"text": "Hello"}, self.problem),
            rules=dataclasses.replace(RULES, **self.rules),
            now=self.now,
            topic=self.topic,
        )


def _send(
    channels: list[str], category: Literal["transactional", "promotional"], mode: Literal["all", "first"] = "all"
) -> SendMessageInput:
    return SendMessageInput(
        idempotency_key="k",
        journey="j",
        step="s",
        customer_id="c1",
        channels=channels,
        mode=mode,
        template="t",
        category=category,
    )


PROMO: Literal["promotional"] = "promotional"
TOO_LONG = "sms too long: 4 segments (UCS-2), at most 3"
EMAIL = Send("email", "ana@example.test", "http")

TABLE: list[tuple[str, Case, Verdict]] = [
    ("an ordinary send goes", Case(), EMAIL),
    ("promotional by day goes", Case(category=PROMO), EMAIL),
    # The customer's word: the latest on a scope covering channel and category wins.
    (
        "a revoked channel and category",
        Case(category=PROMO, consents=(word("email", PROMO, False, "unsubscribe_link"),)),
        Suppress("unconsented: email/promotional revoked (unsubscribe_link)"),
    ),
    (
        "unsubscribing from promotions leaves transactional alone",
        Case(consents=(word("email", PROMO, False, "unsubscribe_link"),)),
        EMAIL,
    ),
    (
        "STOP revokes every category of the channel",
        Case(channel="sms", consents=(word("sms", "*", False, "sms_stop"),)),
        Suppress("unconsented: sms/transactional revoked (sms_stop)"),
    ),
    (
        "a later grant undoes a revocation",
        Case(channel="sms", consents=(word("sms", "*", False, "sms_stop", hours_ago=2), word("sms", "*", True))),
        Send("sms", "+15555550100", "http"),
    ),
    (
        "a later revocation undoes a grant",
        Case(consents=(word("*", "*", True, hours_ago=2), word("*", "*", False, "bounced"))),
        Suppress("unconsented: email/transactional revoked (bounced)"),
    ),
    (
        "of two words at one instant the later written wins",
        Case(consents=(word("email", "*", False, "a", seq=2), word("email", "*", True, "b", seq=1))),
        Suppress("unconsented: email/transactional revoked (a)"),
    ),
    ("another channel's word does not apply", Case(consents=(word("sms", "*", False, "sms_stop"),)), EMAIL),
    (
        "opt-in required and none given",
        Case(category=PROMO, rules={"promotional_requires_opt_in": True}),
        Suppress("unconsented: no opt-in for email/promotional"),
    ),
    (
        "opt-in required and given",
        Case(category=PROMO, rules={"promotional_requires_opt_in": True}, consents=(word("*", PROMO, True),)),
        EMAIL,
    ),
    ("opt-in rules promotional only", Case(rules={"promotional_requires_opt_in": True}), EMAIL),
    # The brand's word.
    ("paused promotions", Case(category=PROMO, traits={**ADDRESSES, "promotional_paused": True}), Suppress(PAUSED)),
    ("paused promotions still get transactional", Case(traits={**ADDRESSES, "promotional_paused": True}), EMAIL),
    (
        "the customer's word before the brand's",
        Case(category=PROMO, traits={**ADDRESSES, "promotional_paused": True}, consents=(word("*", "*", False),)),
        Suppress("unconsented: email/promotional revoked (api)"),
    ),
    # Reachability.
    ("no email address", Case(traits={}), Suppress("unreachable: no email address")),
    ("no phone for voice", Case(channel="voice", traits={}), Suppress("unreachable: no phone number")),
    ("no device token", Case(channel="push", traits={"email": "a@b.test"}), Suppress("unreachable: no device token")),
    (
        "a device token from the list",
        Case(channel="push", traits={"device_tokens": ["tok-9", "tok-8"]}),
        Send("push", "tok-9", "http"),
    ),
    ("a webhook reaches the customer id", Case(channel="webhook", traits={}), Send("webhook", "c1", "http")),
    (
        "the outbox records a newcomer's message under the customer id",
        Case(traits={}, provider="outbox"),
        Send("email", "customer:c1", "outbox"),
    ),
    (
        "unless the outbox must have an address",
        Case(traits={}, provider="outbox", rules={"outbox_requires_address": True}),
        Suppress("unreachable: no email address"),
    ),
    ("no provider", Case(provider=None), Suppress("unreachable: no provider for email")),
    ("no address before no provider", Case(traits={}, provider=None), Suppress("unreachable: no email address")),
    (
        "consent before reachability",
        Case(traits={}, consents=(word("*", "*", False, "api"),)),
        Suppress("unconsented: email/transactional revoked (api)"),
    ),
    # Quiet hours, in the customer's zone.
    ("promotional waits for morning", Case(category=PROMO, now=NIGHT), Defer(MORNING)),
    ("transactional email goes at night", Case(now=NIGHT), EMAIL),
    ("no calls at night", Case(channel="voice", now=NIGHT), Defer(MORNING)),
    (
        "transactional channels that wait are configurable",
        Case(now=NIGHT, rules={"quiet_transactional": frozenset({"email"})}),
        Defer(MORNING),
    ),
    ("no quiet hours when start is end", Case(category=PROMO, now=NIGHT, rules={"quiet_end": time(21)}), EMAIL),
    ("a send already begun is not deferred", Case(category=PROMO, now=NIGHT, pending=True), EMAIL),
    (
        "a revocation holds while a send waits",
        Case(category=PROMO, now=NIGHT, consents=(word("email", PROMO, False, "unsubscribe_link"),)),
        Suppress("unconsented: email/promotional revoked (unsubscribe_link)"),
    ),
    (
        "unreachable before quiet hours",
        Case(category=PROMO, now=NIGHT, traits={}),
        Suppress("unreachable: no email address"),
    ),
    # The rendered message.
    ("a message that cannot go as rendered", Case(channel="sms", problem=TOO_LONG), Fail(TOO_LONG)),
    ("quiet hours before the rendering's problem", Case(category=PROMO, now=NIGHT, problem=TOO_LONG), Defer(MORNING)),
    ("a send already begun still fails on its rendering", Case(pending=True, problem=TOO_LONG), Fail(TOO_LONG)),
    # The frequency cap: promotional messages ahead of this one in the window.
    ("below the cap", Case(category=PROMO, sent=2), EMAIL),
    (
        "at the cap",
        Case(category=PROMO, sent=3),
        Capped("frequency cap: 3 promotional in 7 days (cap 3)"),
    ),
    (
        "the cap's window and size are configurable",
        Case(category=PROMO, sent=1, rules={"promotional_cap": 1, "promotional_cap_days": 2}),
        Capped("frequency cap: 1 promotional in 2 days (cap 1)"),
    ),
    ("no cap", Case(category=PROMO, sent=50, rules={"promotional_cap": 0}), EMAIL),
    ("transactional messages are exempt", Case(sent=50), EMAIL),
    ("a send already begun was counted when it began", Case(category=PROMO, sent=50, pending=True), EMAIL),
    ("quiet hours before the cap", Case(category=PROMO, sent=3, now=NIGHT), Defer(MORNING)),
    ("the rendering's problem before the cap", Case(category=PROMO, sent=3, problem=TOO_LONG), Fail(TOO_LONG)),
    # Topics a brand declares narrow a category; pauses hold until their day (issue 16).
    (
        "a topic's revocation covers that topic's messages",
        Case(category=PROMO, topic="offers", consents=(word("email", "offers", False, "preference_center"),)),
        Suppress("unconsented: email/offers revoked (preference_center)"),
    ),
    (
        "and no other topic's",
        Case(category=PROMO, topic="news", consents=(word("email", "offers", False),)),
        EMAIL,
    ),
    (
        "a later yes to a topic wins over an earlier no to its category",
        Case(
            category=PROMO,
            topic="offers",
            consents=(word("*", PROMO, False, hours_ago=2), word("email", "offers", True)),
        ),
        EMAIL,
    ),
    (
        "a later no to the category wins over an earlier yes to a topic",
        Case(
            category=PROMO,
            topic="offers",
            consents=(word("email", "offers", True, hours_ago=2), word("*", PROMO, False)),
        ),
        Suppress("unconsented: email/offers revoked (api)"),
    ),
    (
        "a pause holds until its day",
        Case(category=PROMO, consents=(word("*", PROMO, False, "preference_center", until=DAY + timedelta(days=1)),)),
        Suppress("paused: promotional paused until 2026-03-09 (preference_center)"),
    ),
    (
        "after it, the earlier word applies again",
        Case(
            category=PROMO,
            consents=(
                word("email", PROMO, True, "signup", hours_ago=48),
                word("*", PROMO, False, "preference_center", until=DAY - timedelta(minutes=1)),
            ),
            rules={"promotional_requires_opt_in": True},
        ),
        EMAIL,
    ),
    (
        "a pause does not touch transactional messages",
        Case(consents=(word("*", PROMO, False, until=DAY + timedelta(days=1)),)),
        EMAIL,
    ),
    (
        "paused before the cap",
        Case(category=PROMO, sent=3, traits={**ADDRESSES, "promotional_paused": True}),
        Suppress(PAUSED),
    ),
]


@pytest.mark.parametrize(("case", "expected"), [(c, v) for _, c, v in TABLE], ids=[name for name, _, _ in TABLE])
def test_decide(case: Case, expected: Verdict) -> None:
    assert case.decide() == expected


def test_a_capped_message_is_suppressed() -> None:
    """So ``mode: first`` falls back past it and the ledger records it ``suppressed``."""
    assert isinstance(Case(category=PROMO, sent=3).decide(), Suppress)


@pytest.mark.parametrize(
    ("preferred", "mode", "order"),
    [
        (["push", "sms"], "first", ["push", "sms", "email"]),
        (["voice", "sms"], "first", ["sms", "email", "push"]),
        ([], "first", ["email", "sms", "push"]),
        (["push", "sms"], "all", ["email", "sms", "push"]),
    ],
)
def test_channel_order(preferred: list[str], mode: Literal["all", "first"], order: list[str]) -> None:
    profile = Profile("c1", {"preferred_channels": preferred})
    assert channel_order(_send(["email", "sms", "push"], "transactional", mode), profile) == order


@pytest.mark.parametrize(
    ("mode", "status", "on"),
    [
        ("first", "suppressed", True),
        ("first", "failed", True),
        ("first", "sent", False),
        ("first", "deferred", False),
        ("all", "sent", True),
        ("all", "deferred", True),
    ],
)
def test_when_the_search_goes_on(mode: str, status: str, on: bool) -> None:
    assert goes_on(mode, status) is on


def _first_that_goes(
    traits: dict[str, Any], consents: tuple[ConsentWord, ...], now: datetime
) -> list[tuple[str, Verdict]]:
    """``mode: first`` as the activity runs it, every provider taking the message."""
    send = _send(["email", "sms", "push"], "promotional", "first")
    profile = Profile("c1", traits, ZoneInfo("America/New_York"))
    tried = []
    for channel in channel_order(send, profile):
        verdict = decide(
            send,
            channel,
            profile=profile,
            consents=consents,
            provider="http",
            pending=False,
            promotional_sent=0,
            rendered=Rendered({"text": "Hello"}),
            rules=RULES,
            now=now,
        )
        tried.append((channel, verdict))
        status = "sent" if isinstance(verdict, Send) else "deferred" if isinstance(verdict, Defer) else "suppressed"
        if not goes_on(send.mode, status):
            break
    return tried


def test_first_falls_back_in_the_customers_order_past_channels_that_cannot_go() -> None:
    traits = {"email": "ana@example.test", "phone": "+15555550100", "preferred_channels": ["push", "sms", "email"]}
    assert _first_that_goes(traits, (word("sms", "*", False, "sms_stop"),), DAY) == [
        ("push", Suppress("unreachable: no device token")),
        ("sms", Suppress("unconsented: sms/promotional revoked (sms_stop)")),
        ("email", EMAIL),
    ]


def test_first_waits_for_morning_on_the_preferred_channel_rather_than_falling_back() -> None:
    traits = {**ADDRESSES, "preferred_channels": ["sms"]}
    assert _first_that_goes(traits, (), NIGHT) == [("sms", Defer(MORNING))]


def test_rules_from_settings() -> None:
    rules = Rules.from_settings(
        DeliverySettings(
            quiet_hours_start="22:30",
            quiet_hours_end="07:15",
            quiet_hours_transactional=" voice, sms ,",
            promotional_cap=5,
            promotional_cap_days=14,
            promotional_requires_opt_in=True,
            outbox_requires_address=True,
        )
    )
    assert rules == Rules(time(22, 30), time(7, 15), frozenset({"voice", "sms"}), 5, 14, True, True)
    assert rules.cap_window_start(DAY) == DAY - timedelta(days=14)
    with pytest.raises(ConfigurationError, match=r"^JOURNEYS_QUIET_HOURS_END: '8pm' is not a time of day like 21:00$"):
        Rules.from_settings(DeliverySettings(quiet_hours_end="8pm"))


def test_the_decision_loads_no_database_or_network_library() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, activities.decision; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    heavy = ("sqlalchemy", "sqlmodel", "psycopg", "sqlite3", "httpx", "storage", "temporalio.worker")
    assert [m for m in loaded if m.split(".")[0] in heavy or m in heavy] == []
