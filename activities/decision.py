"""Whether one channel of a send goes now, waits, or does not go: the customer's terms as a function of data.

``decide`` reads no database, calls no provider and asks Temporal nothing. Its inputs are the send, the
customer's profile and consent words, what the ledger holds (this send's row from an earlier attempt, the
customer's promotional messages in the cap's window), the rendered message, the rules from the settings and the
clock; ``activities.ledger`` loads them and writes the verdict in one transaction, ``activities.delivery``
calls the provider. Each rule and their precedence is a table in ``tests/test_delivery_decision.py``.

Precedence, the first that applies wins:

1. the customer's word (consent), then the brand's (``promotional_paused``), then reachability (an address,
   a provider): ``Suppress``;
2. quiet hours in the customer's zone, for a send not yet begun: ``Defer`` until the window opens;
3. a message that cannot go as rendered (a template error, an SMS too long): ``Fail``;
4. the frequency cap, for a promotional send not yet begun: ``Capped`` (a ``Suppress``);
5. otherwise ``Send`` to the address.

With ``mode: first`` the channels are tried in ``channel_order`` and ``goes_on`` says when the search falls
back to the next one: after a channel that did not go (suppressed, or failed here or at the provider).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from activities import quiet_hours
from contracts.activities import SendMessageInput

if TYPE_CHECKING:
    from runtime.settings import DeliverySettings

#: What each channel needs to reach the customer, for the ``unreachable`` reason.
ADDRESS_NAMES = {"email": "email address", "sms": "phone number", "voice": "phone number", "push": "device token"}

PAUSED = "paused: promotional messages paused for this customer"
QUIET_HOURS = "quiet hours"


@dataclass(frozen=True)
class Profile:
    """The customer's traits as delivery reads them: addresses, time zone, locale, preferred channels."""

    customer_id: str
    traits: dict[str, Any] = field(default_factory=dict)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    locale: str | None = None

    @property
    def preferred_channels(self) -> list[str]:
        value = self.traits.get("preferred_channels")
        return [str(c) for c in value] if isinstance(value, list) else []

    def address(self, channel: str) -> str | None:
        """Where ``channel`` reaches this customer, or None (the send is then suppressed as unreachable)."""
        t = self.traits
        if channel == "email":
            found = t.get("email")
        elif channel in ("sms", "voice"):
            found = t.get("phone")
        elif channel == "push":
            tokens = t.get("device_tokens")
            found = (
                t.get("push_token")
                or t.get("device_token")
                or (tokens[0] if isinstance(tokens, list) and tokens else None)
            )
        elif channel == "webhook":
            found = self.customer_id
        else:
            found = None
        return str(found) if found else None

    def order(self, channels: list[str]) -> list[str]:
        """``channels`` in the customer's preferred order; the ones they did not rank keep the map's order."""
        ranked = [c for c in self.preferred_channels if c in channels]
        return ranked + [c for c in channels if c not in ranked]


@dataclass(frozen=True)
class ConsentWord:
    """One row of the customer's consent record (``storage.tables.Consent``)."""

    channel: str
    """A channel, or ``*`` for every one."""
    category: str
    """``transactional``, ``promotional``, or ``*`` for both."""
    granted: bool
    source: str
    at: datetime
    seq: int = 0
    """The row's id: of two words given at the same instant, the one written later wins."""
    until: datetime | None = None
    """A pause: the word holds only before this instant; after it, the customer's earlier word applies again."""


@dataclass(frozen=True)
class Rules:
    """The settings the decision reads (``runtime.settings.DeliverySettings``), parsed once per worker."""

    quiet_start: time
    quiet_end: time
    """Equal start and end: no quiet hours."""
    quiet_transactional: frozenset[str]
    """Channels whose transactional messages wait out quiet hours too (promotional ones always do)."""
    promotional_cap: int
    """Promotional messages per customer per window, across journeys; 0 or less: no cap."""
    promotional_cap_days: int
    promotional_requires_opt_in: bool
    outbox_requires_address: bool

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> Rules:
        """Raises ``ConfigurationError`` naming the variable when a time of day does not parse, so a worker
        with a wrong setting stops at its start rather than failing every send."""
        return cls(
            quiet_start=quiet_hours.parse_hhmm(settings.quiet_hours_start, name="JOURNEYS_QUIET_HOURS_START"),
            quiet_end=quiet_hours.parse_hhmm(settings.quiet_hours_end, name="JOURNEYS_QUIET_HOURS_END"),
            quiet_transactional=frozenset(
                c.strip() for c in settings.quiet_hours_transactional.split(",") if c.strip()
            ),
            promotional_cap=settings.promotional_cap,
            promotional_cap_days=settings.promotional_cap_days,
            promotional_requires_opt_in=settings.promotional_requires_opt_in,
            outbox_requires_address=settings.outbox_requires_address,
        )

    def cap_window_start(self, now: datetime) -> datetime:
        """The cap counts promotional messages sent (or begun) since this instant."""
        return now - timedelta(days=self.promotional_cap_days)


@dataclass(frozen=True)
class Rendered:
    """One channel's message parts, or why it cannot go as it is (a template error, an SMS too long)."""

    content: dict[str, str]
    problem: str | None = None


@dataclass(frozen=True)
class Send:
    """Hand the message to the channel's provider, addressed to ``address``."""

    channel: str
    address: str
    provider: str


@dataclass(frozen=True)
class Defer:
    """Not now: ask again at ``until`` (the workflow sleeps durably and calls with the same key)."""

    until: datetime
    reason: str = QUIET_HOURS


@dataclass(frozen=True)
class Suppress:
    """Not at all, for ``reason``: the customer's word, the brand's, or no way to reach them."""

    reason: str


@dataclass(frozen=True)
class Capped(Suppress):
    """Suppressed by the frequency cap: the message was ready, and its ledger row keeps what would have gone."""


@dataclass(frozen=True)
class Fail:
    """The message cannot go as rendered (a template error, an SMS over the segment limit)."""

    reason: str


Verdict = Send | Defer | Suppress | Fail


def decide(
    send: SendMessageInput,
    channel: str,
    *,
    profile: Profile,
    consents: Sequence[ConsentWord],
    provider: str | None,
    pending: bool,
    promotional_sent: int,
    rendered: Rendered,
    rules: Rules,
    now: datetime,
    topic: str | None = None,
) -> Verdict:
    """What to do with ``channel`` of ``send`` at ``now``.

    Args:
        provider: the name of the channel's configured provider; None when the channel has none.
        pending: an earlier attempt of this send wrote its ledger row and may have reached the provider. It goes
            on whatever the clock says, and it was counted against the cap when it began; the customer's word
            and reachability still hold.
        promotional_sent: the customer's promotional messages sent or begun within the cap's window ahead of
            this one (``activities.caps.promotional_count``); read only for a promotional send not yet begun.
        topic: the brand's topic the message belongs to (``journeys/brand/preferences.yaml``), if any: the
            customer's word on it counts with their word on the category.
    """
    refusal = unconsented(
        consents,
        channel,
        send.category,
        promotional_requires_opt_in=rules.promotional_requires_opt_in,
        topic=topic,
        now=now,
    )
    if refusal is None and send.category == "promotional" and profile.traits.get("promotional_paused"):
        # The brand's own word (the lifecycle pauses promotions for a lost customer), not the customer's.
        refusal = PAUSED
    if refusal is not None:
        return Suppress(refusal)
    address = profile.address(channel)
    if address is None and provider == "outbox" and not rules.outbox_requires_address:
        # The embedded outbox records what would go even to a newcomer with no address, addressed to the id.
        address = f"customer:{send.customer_id}"
    if address is None:
        return Suppress(f"unreachable: no {ADDRESS_NAMES.get(channel, 'address')}")
    if provider is None:
        return Suppress(f"unreachable: no provider for {channel}")
    if not pending and quiet_hours.applies(channel, send.category, rules.quiet_transactional):
        opens = quiet_hours.window_opens(now, profile.timezone, rules.quiet_start, rules.quiet_end)
        if opens is not None:
            return Defer(opens)
    if rendered.problem is not None:
        return Fail(rendered.problem)
    if not pending and send.category == "promotional":
        capped = cap_refusal(promotional_sent, rules)
        if capped is not None:
            return Capped(capped)
    return Send(channel, address, provider)


def unconsented(
    consents: Collection[ConsentWord],
    channel: str,
    category: str,
    *,
    promotional_requires_opt_in: bool,
    topic: str | None = None,
    now: datetime | None = None,
    include_pauses: bool = True,
) -> str | None:
    """Why the customer's word forbids ``category`` (of ``topic``) on ``channel``, or None when it allows it.

    Their latest word on a scope that covers the send wins: its channel or ``*``, its category, its topic or
    ``*``; so an unsubscribe holds until a later grant, and a topic's word narrows its category's. A pause (a
    word with ``until``) covers the send only before ``until`` (``include_pauses=False`` leaves pauses out).
    With no word at all, transactional may go, and promotional too unless an opt-in is required.
    """
    scopes = (category, "*", topic) if topic else (category, "*")
    covering = [
        w
        for w in consents
        if w.channel in (channel, "*")
        and w.category in scopes
        and (w.until is None or (include_pauses and now is not None and now < w.until))
    ]
    if covering:
        latest = max(covering, key=lambda w: (w.at, w.seq))
        if latest.granted:
            return None
        if latest.until is not None:
            return f"paused: {latest.category} paused until {latest.until:%Y-%m-%d} ({latest.source})"
        return f"unconsented: {channel}/{topic or category} revoked ({latest.source})"
    if category == "promotional" and promotional_requires_opt_in:
        return f"unconsented: no opt-in for {channel}/promotional"
    return None


def cap_refusal(promotional_sent: int, rules: Rules) -> str | None:
    """The frequency cap's reason when ``promotional_sent`` messages ahead of this one already fill it."""
    if rules.promotional_cap <= 0 or promotional_sent < rules.promotional_cap:
        return None
    return (
        f"frequency cap: {promotional_sent} promotional in {rules.promotional_cap_days} days"
        f" (cap {rules.promotional_cap})"
    )


def channel_order(send: SendMessageInput, profile: Profile) -> list[str]:
    """The channels to try, in turn: for ``mode: first`` in the customer's preferred order, then the map's."""
    return profile.order(send.channels) if send.mode == "first" else list(send.channels)


def goes_on(mode: str, status: str) -> bool:
    """Whether the next channel is tried after one that ended ``status``.

    Always with ``mode: all``. With ``first`` only after a channel that did not go (suppressed, failed): a
    sent message ends the search, and so does a deferred one, so the customer's preferred channel waits for
    morning rather than the message falling back to another channel at night.
    """
    return mode != "first" or status in ("suppressed", "failed")
