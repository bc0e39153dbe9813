"""A customer's choices as the preference center and the consent API show and change them.

Reading goes through the same :func:`activities.decision.unconsented` a send uses, so what a customer sees is
what the next send will do. A change writes one ``Consent`` row per choice that differs from what is in force
(never a row for an unchanged box), with its source and time: the audit trail is the table itself, and
:func:`consent_history` reads it for export.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.consent import load_consents
from activities.decision import unconsented
from journeymap.preferences import PreferenceCatalog
from storage.tables import Consent

CATEGORIES = ("transactional", "promotional")


@dataclass(frozen=True)
class Choice:
    """One box on the page: ``channel`` for ``scope`` (a category or a topic) and whether it is allowed now."""

    channel: str
    scope: str
    category: str
    topic: str | None
    allowed: bool
    reason: str | None


@dataclass(frozen=True)
class Pause:
    """A promotional pause in force."""

    until: datetime
    source: str


def choices(
    engine: Engine,
    customer_id: str,
    catalog: PreferenceCatalog,
    *,
    promotional_requires_opt_in: bool,
    now: datetime | None = None,
) -> list[Choice]:
    """Every (channel, category or topic) box, with what a send would do now (ignoring a pause)."""
    at = now or datetime.now(UTC)
    rows: list[tuple[str, str, str | None]] = [(c, c, None) for c in CATEGORIES]
    rows += [(name, topic.category, name) for name, topic in catalog.topics.items()]
    with Session(engine) as session:
        words = load_consents(session, customer_id)  # one read; every box is weighed as a send would weigh it
    out: list[Choice] = []
    for scope, category, topic in rows:
        for channel in catalog.channels:
            reason = unconsented(
                words,
                channel,
                category,
                topic=topic,
                promotional_requires_opt_in=promotional_requires_opt_in,
                now=at,
                include_pauses=False,
            )
            out.append(Choice(channel, scope, category, topic, reason is None, reason))
    return out


def pause_in_force(engine: Engine, customer_id: str, *, now: datetime | None = None) -> Pause | None:
    """The promotional pause that holds now, if any."""
    at = now or datetime.now(UTC)
    with Session(engine) as session:
        row = session.exec(
            select(Consent)
            .where(Consent.customer_id == customer_id)
            .where(col(Consent.until).is_not(None))
            .where(col(Consent.until) > at)
            .order_by(col(Consent.at).desc(), col(Consent.id).desc())
        ).first()
    return Pause(row.until, row.source) if row is not None and row.until is not None else None


def apply_choices(
    engine: Engine,
    customer_id: str,
    wanted: Mapping[tuple[str, str], bool],
    current: list[Choice],
    *,
    source: str,
    pause_days: int | None = None,
    resume: bool = False,
    now: datetime | None = None,
) -> list[Consent]:
    """Record the boxes of ``wanted`` (``(channel, scope) -> allowed``) that differ from ``current``, then a
    pause of promotions for ``pause_days`` (or the end of one, ``resume``). Categories are written before
    topics, in one transaction at one time, so a topic's narrower word is the later row and wins."""
    at = now or datetime.now(UTC)
    rows: list[Consent] = []
    for choice in sorted(current, key=lambda c: c.topic is not None):
        want = wanted.get((choice.channel, choice.scope))
        if want is not None and want != choice.allowed:
            rows.append(
                Consent(
                    customer_id=customer_id,
                    channel=choice.channel,
                    category=choice.scope,
                    granted=want,
                    source=source,
                    at=at,
                )
            )
    if pause_days:
        until = at + timedelta(days=pause_days)
        rows.append(
            Consent(customer_id=customer_id, category="promotional", granted=False, source=source, at=at, until=until)
        )
    with Session(engine) as session:
        if resume:
            # Ending a pause shortens it to now, and a row that was never in force (granted, until now) records who
            # ended it and when; a grant in force would override the customer's earlier word on promotions.
            session.add(
                Consent(customer_id=customer_id, category="promotional", granted=True, source=source, at=at, until=at)
            )
            for paused in session.exec(
                select(Consent)
                .where(Consent.customer_id == customer_id)
                .where(col(Consent.until).is_not(None))
                .where(col(Consent.until) > at)
            ):
                paused.until = at
                session.add(paused)
        for row in rows:
            session.add(row)
        session.commit()
        for row in rows:
            session.refresh(row)
    return rows


def consent_history(engine: Engine, *, customer_id: str | None = None, since: datetime | None = None) -> list[Consent]:
    """The audit trail, oldest first: every word, its scope, source and time (a customer's, or everyone's)."""
    query = select(Consent)
    if customer_id is not None:
        query = query.where(Consent.customer_id == customer_id)
    if since is not None:
        query = query.where(Consent.at >= since)
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(Consent.at), col(Consent.id))))


CONSENT_TRAIT = "consent"
"""The identify trait a backend passes consent in (Segment-style): ``{"email": {"promotional": false},
"sms": true}``. It becomes consent rows (source ``identify``), never a profile trait."""

_CHANNELS = ("*", "email", "sms", "push", "voice", "webhook")
_SCOPE = r"^(\*|[a-z][a-z0-9_]{0,47})$"


def consent_from_traits(value: object) -> list[tuple[str, str, bool]]:
    """``(channel, category or topic, granted)`` for each word in a ``consent`` trait; ``ValueError`` naming
    the first malformed entry. A channel maps to a yes/no for all its categories, or to categories' yes/no."""
    if not isinstance(value, Mapping):
        raise ValueError("consent: an object of channel -> true/false or {category: true/false}")
    words: list[tuple[str, str, bool]] = []
    for channel, given in value.items():
        if channel not in _CHANNELS:
            raise ValueError(f"consent.{channel}: not a channel ({', '.join(_CHANNELS)})")
        if isinstance(given, bool):
            words.append((channel, "*", given))
            continue
        if not isinstance(given, Mapping):
            raise ValueError(f"consent.{channel}: true, false, or {{category: true/false}}")
        for scope, granted in given.items():
            if not isinstance(granted, bool) or not re.match(_SCOPE, str(scope)):
                raise ValueError(f"consent.{channel}.{scope}: a category or topic name, with true or false")
            words.append((channel, str(scope), granted))
    return words


def record_words(engine: Engine, customer_id: str, words: list[tuple[str, str, bool]], *, source: str) -> None:
    """Record several words at one time, in the order given (a later one wins over an earlier broader one)."""
    at = datetime.now(UTC)
    with Session(engine) as session:
        for channel, scope, granted in words:
            session.add(
                Consent(customer_id=customer_id, channel=channel, category=scope, granted=granted, source=source, at=at)
            )
        session.commit()
