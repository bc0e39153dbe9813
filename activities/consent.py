"""The customer's terms as the delivery layer loads them: the profile (addresses, time zone, locale, preferred
channels) and the consent words per channel and per category. ``activities.decision`` weighs them.

Profile traits read here: ``email``, ``phone`` (E.164), ``push_token`` (or ``device_token``, or the first of
``device_tokens``), ``timezone`` (IANA name), ``locale``, ``preferred_channels`` (e.g. ``["push", "email"]``).
Consent lives in the ``Consent`` table (latest word per scope wins) and is read at every send, so an unsubscribe
or an SMS STOP holds from the very next send on, including sends waiting out quiet hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.decision import ConsentWord, Profile, unconsented
from storage.tables import Consent, Customer, CustomerIdentity


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


ABSORBED = "customer_id"
"""The identity kind of a customer id merged into another (``starter.api.identities.ABSORBED``)."""


def person_ids(session: Session, customer_id: str) -> set[str]:
    """Every customer id of the person ``customer_id`` is: the survivor of a merge and the ids it absorbed,
    whose journeys still run under them. Their word is one: a "no" given under any of them holds for all."""
    survivor = session.get(CustomerIdentity, (ABSORBED, customer_id))
    root = survivor.customer_id if survivor is not None else customer_id
    absorbed = session.exec(
        select(CustomerIdentity.value).where(CustomerIdentity.kind == ABSORBED, CustomerIdentity.customer_id == root)
    )
    return {root, customer_id, *absorbed}


def load_consents(session: Session, customer_id: str) -> list[ConsentWord]:
    """Every word the customer has given, under this id or another of theirs (:func:`person_ids`), for
    :func:`activities.decision.unconsented` to weigh."""
    rows = session.exec(select(Consent).where(col(Consent.customer_id).in_(person_ids(session, customer_id))))
    return [ConsentWord(r.channel, r.category, r.granted, r.source, r.at, r.id or 0, r.until) for r in rows]


def consent_refusal(
    session: Session, customer_id: str, channel: str, category: str, *, promotional_requires_opt_in: bool
) -> str | None:
    """Why this customer may not get ``category`` on ``channel`` now, or None when they may."""
    return unconsented(
        load_consents(session, customer_id),
        channel,
        category,
        promotional_requires_opt_in=promotional_requires_opt_in,
        now=datetime.now(UTC),
    )


def set_consent(
    engine: Engine,
    customer_id: str,
    *,
    channel: str = "*",
    category: str = "*",
    granted: bool,
    source: str = "api",
    at: datetime | None = None,
    until: datetime | None = None,
) -> Consent:
    """Record a customer's word (unsubscribe, STOP, opt-in); it applies to the next send at once."""
    row = Consent(
        customer_id=customer_id,
        channel=channel,
        category=category,
        granted=granted,
        source=source,
        at=at or datetime.now(UTC),
        until=until,
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return row


def drop_address(engine: Engine, customer_id: str, channel: str, address: str) -> None:
    """Remove a dead push token from the profile (every trait that holds it) and from the identities."""
    if channel != "push":
        return
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        if customer is not None:
            traits = dict(customer.traits)
            for name in ("push_token", "device_token"):
                if traits.get(name) == address:
                    del traits[name]
            tokens = traits.get("device_tokens")
            if isinstance(tokens, list):
                traits["device_tokens"] = [t for t in tokens if t != address]
            customer.traits = traits
            customer.updated_at = datetime.now(UTC)
            session.add(customer)
        identity = session.get(CustomerIdentity, ("device_token", address))
        if identity is not None and identity.customer_id == customer_id:
            session.delete(identity)
        session.commit()
