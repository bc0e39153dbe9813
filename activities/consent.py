"""The customer's terms as the delivery layer reads them: profile (addresses, time zone, locale, preferred
channels) and consent per channel and per category.

Profile traits read here: ``email``, ``phone`` (E.164), ``push_token`` (or ``device_token``, or the first of
``device_tokens``), ``timezone`` (IANA name), ``locale``, ``preferred_channels`` (e.g. ``["push", "email"]``).
Consent lives in the ``Consent`` table (latest word per scope wins) and is read at every send, so an unsubscribe
or an SMS STOP holds from the very next send on, including sends waiting out quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from storage.tables import Consent, Customer

#: What each channel needs to reach the customer, for the ``unreachable`` reason.
ADDRESS_NAMES = {"email": "email address", "sms": "phone number", "voice": "phone number", "push": "device token"}


@dataclass(frozen=True)
class Profile:
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


def zone_for(name: object, default: str) -> ZoneInfo:
    for candidate in (name, default):
        if isinstance(candidate, str) and candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def load_profile(session: Session, customer_id: str, *, default_timezone: str = "UTC") -> Profile:
    customer = session.get(Customer, customer_id)
    traits = dict(customer.traits) if customer else {}
    locale = traits.get("locale")
    return Profile(
        customer_id=customer_id,
        traits=traits,
        timezone=zone_for(traits.get("timezone"), default_timezone),
        locale=locale if isinstance(locale, str) else None,
    )


def consent_refusal(
    session: Session, customer_id: str, channel: str, category: str, *, promotional_requires_opt_in: bool
) -> str | None:
    """Why this customer may not get ``category`` on ``channel`` now, or None when they may."""
    latest = session.exec(
        select(Consent)
        .where(Consent.customer_id == customer_id)
        .where(or_(Consent.channel == channel, Consent.channel == "*"))
        .where(or_(Consent.category == category, Consent.category == "*"))
        .order_by(col(Consent.at).desc(), col(Consent.id).desc())
    ).first()
    if latest is not None:
        return None if latest.granted else f"unconsented: {channel}/{category} revoked ({latest.source})"
    if category == "promotional" and promotional_requires_opt_in:
        return f"unconsented: no opt-in for {channel}/promotional"
    return None


def set_consent(
    engine: Engine,
    customer_id: str,
    *,
    channel: str = "*",
    category: str = "*",
    granted: bool,
    source: str = "api",
    at: datetime | None = None,
) -> Consent:
    """Record a customer's word (unsubscribe, STOP, opt-in); it applies to the next send at once."""
    row = Consent(
        customer_id=customer_id,
        channel=channel,
        category=category,
        granted=granted,
        source=source,
        at=at or datetime.now(UTC),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row
