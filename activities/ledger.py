"""The delivery ledger behind one door: one transaction before a channel's provider call, one after it.

Before (:meth:`Ledger.begin`), in one transaction: the row ``<idempotency key>#<channel>`` is read (a row already
sent, suppressed or failed is the answer, and nothing is sent again); the customer's consent words and, for a
promotional send not yet begun, the promotional messages ahead of it in the cap's window are read; the pure
:func:`activities.decision.decide` rules; and the row is written ``suppressed`` or ``failed`` with the reason,
or ``pending`` with its content, ``attempts + 1`` and the provider. A deferred send writes nothing.

After (:meth:`Ledger.sent`, :meth:`Ledger.failed`, :meth:`Ledger.retrying`), one statement: ``sent`` with the
provider's message id, ``failed`` with the provider's reason, or a note that the attempt will be retried (the row
stays ``pending``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from activities import caps
from activities.consent import load_consents
from activities.decision import Capped, Defer, Profile, Rendered, Rules, Send, Suppress, decide
from contracts.activities import ChannelOutcome, ChannelStatus, SendMessageInput
from storage.tables import Delivery

FINAL = ("sent", "suppressed", "failed")

CAP_LOCK = 7_464_221
"""The first key of the PostgreSQL advisory locks that queue one customer's promotional sends (the second is
a hash of the customer id); any constant unique to this app."""


@dataclass(frozen=True)
class Draft:
    """One channel of a send, rendered, with what the decision needs besides the ledger's own rows."""

    send: SendMessageInput
    channel: str
    profile: Profile
    rendered: Rendered
    provider: str | None
    """The name of the channel's configured provider; None when it has none."""
    topic: str | None = None
    """The brand's topic the message belongs to (``journeys/brand/preferences.yaml``), if any."""

    @property
    def key(self) -> str:
        """The ledger row's unique ``delivery_key``, and the idempotency key the provider gets."""
        return f"{self.send.idempotency_key}#{self.channel}"


@dataclass(frozen=True)
class Ready:
    """A send that passed every check: its ``pending`` row, where it goes and what it says."""

    row_id: int
    key: str
    """The idempotency key the provider gets: ``<idempotency key>#<channel>``, the same for every attempt."""
    send: Send
    content: dict[str, str]


class Ledger:
    """The ``Delivery`` table as the delivery activity uses it; every method blocks (run it in a thread)."""

    def __init__(self, engine: Engine, rules: Rules) -> None:
        self._engine = engine
        self._rules = rules

    def begin(self, draft: Draft, now: datetime) -> ChannelOutcome | Ready:
        """The transaction before the provider call: the channel's outcome when it is settled or will not go
        now, or the committed ``pending`` row to send."""
        with Session(self._engine, expire_on_commit=False) as session:
            try:
                return self._begin(session, draft, now)
            except IntegrityError:
                # Another attempt of this very send wrote its row first: its state is the answer, or (pending)
                # this attempt goes on from it, as any later attempt would.
                session.rollback()
                return self._begin(session, draft, now)

    def sent(self, row_id: int, *, provider: str, message_id: str, now: datetime) -> None:
        self._update(
            row_id, now, status="sent", reason=None, provider=provider, provider_message_id=message_id, sent_at=now
        )

    def failed(self, row_id: int, reason: str, now: datetime) -> None:
        """The provider refused the message for good."""
        self._update(row_id, now, status="failed", reason=reason, provider_message_id=None)

    def retrying(self, row_id: int, reason: str, now: datetime) -> None:
        """A passing fault: the row stays ``pending`` and the next attempt sends it with the same key."""
        self._update(row_id, now, reason=f"retrying: {reason}")

    def _begin(self, session: Session, draft: Draft, now: datetime) -> ChannelOutcome | Ready:
        send, channel = draft.send, draft.channel
        row = session.exec(select(Delivery).where(Delivery.delivery_key == draft.key)).first()
        if row is not None and row.status in FINAL:
            return _outcome(row)
        pending = row is not None
        ahead = 0
        if row is None:
            row = _new_row(draft, now)
            if send.category == "promotional" and self._rules.promotional_cap > 0:
                ahead = self._reserve(session, row, now)
        verdict = decide(
            send,
            channel,
            profile=draft.profile,
            consents=load_consents(session, send.customer_id),
            provider=draft.provider,
            pending=pending,
            promotional_sent=ahead,
            rendered=draft.rendered,
            rules=self._rules,
            now=now,
            topic=draft.topic,
        )
        if isinstance(verdict, Defer):
            session.rollback()  # a send that waits writes nothing (a cap reservation is undone)
            return ChannelOutcome(channel=channel, status="deferred", reason=verdict.reason, retry_at=verdict.until)
        row.updated_at = now
        if not isinstance(verdict, Send):
            status: ChannelStatus = "suppressed" if isinstance(verdict, Suppress) else "failed"
            row.status, row.reason = status, verdict.reason
            if isinstance(verdict, Capped):
                row.content = draft.rendered.content  # the reservation keeps what would have gone
            session.add(row)
            session.commit()
            return ChannelOutcome(channel=channel, status=status, reason=verdict.reason)
        if not pending:
            row.content = draft.rendered.content
        row.attempts += 1
        row.provider = verdict.provider
        session.add(row)
        session.commit()
        assert row.id is not None
        return Ready(row.id, draft.key, verdict, dict(row.content))

    def _reserve(self, session: Session, row: Delivery, now: datetime) -> int:
        """Write ``row`` (``pending``) to take its place in the customer's promotional queue, and count the
        promotional messages ahead of it in the cap's window.

        Both in this transaction, so the count must not miss a send that is being decided at the same moment.
        On SQLite the insert takes the database's one write lock, held to the commit. On PostgreSQL a row is
        invisible to others until committed, so an advisory lock per customer, taken first and held to the
        commit, queues this customer's promotional sends (other customers' go on beside them).
        """
        if self._engine.dialect.name == "postgresql":
            digest = hashlib.blake2b(row.customer_id.encode(), digest_size=4).digest()
            session.connection().execute(
                sa_select(func.pg_advisory_xact_lock(CAP_LOCK, int.from_bytes(digest, "big", signed=True)))
            )
        session.add(row)
        session.flush()
        assert row.id is not None
        return caps.promotional_count(
            session, row.customer_id, before_id=row.id, since=self._rules.cap_window_start(now)
        )

    def _update(self, row_id: int, now: datetime, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(Delivery).where(col(Delivery.id) == row_id).values(updated_at=now, **values))


def _new_row(draft: Draft, now: datetime) -> Delivery:
    """A ``pending`` row for ``draft``, carrying the send's own fields (customer, journey, step, template...)."""
    carried = draft.send.model_dump(include=_CARRIED)
    return Delivery(
        **carried, channel=draft.channel, delivery_key=draft.key, status="pending", created_at=now, updated_at=now
    )


_CARRIED = {"idempotency_key", "customer_id", "journey", "step", "template", "category"}


def _outcome(row: Delivery) -> ChannelOutcome:
    """A settled row's outcome, as the attempt that settled it returned it."""
    return ChannelOutcome(
        channel=row.channel,
        status=row.status,
        reason=row.reason,
        provider_message_id=row.provider_message_id,
    )
