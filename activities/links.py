"""The links a message gives its customer: one-click unsubscribe and the preference center, signed.

The URL carries the customer's opaque link reference (a random ``LinkReference`` row, made on first use), never
the customer id or an address; ``runtime.links`` signs and checks the tokens. Erasure deletes the reference, so
links in old mail lead nowhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from runtime.links import LinkSigner, link_signer
from runtime.settings import Settings
from storage.tables import LinkReference

PREFERENCES_SCOPE = "prefs"


def unsubscribe_scope(channel: str, category: str) -> str:
    """``unsub-email-promotional``, ``unsub-email-offers``: what an unsubscribe link revokes."""
    return f"unsub-{channel}-{category}"


def parse_unsubscribe_scope(scope: str) -> tuple[str, str] | None:
    """``(channel, category or topic)`` of an unsubscribe scope, else None."""
    kind, _, rest = scope.partition("-")
    channel, _, category = rest.partition("-")
    return (channel, category) if kind == "unsub" and channel and category else None


def reference_for(session: Session, customer_id: str) -> str:
    """The customer's link reference, made (and committed) the first time."""
    found = session.exec(select(LinkReference).where(LinkReference.customer_id == customer_id)).first()
    if found is not None:
        return found.ref
    row = LinkReference(ref=secrets.token_urlsafe(15), customer_id=customer_id)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        # Two sends to one new customer at once: the other made it first.
        session.rollback()
        return session.exec(select(LinkReference).where(LinkReference.customer_id == customer_id)).one().ref
    return row.ref


def customer_of(engine: Engine, ref: str) -> str | None:
    """The customer a link reference stands for, or None (never made, or erased)."""
    with Session(engine) as session:
        row = session.get(LinkReference, ref)
        return row.customer_id if row is not None else None


@dataclass(frozen=True)
class CustomerLinks:
    """Builds a customer's signed URLs under ``base_url`` (the preference center as customers reach it)."""

    signer: LinkSigner
    base_url: str
    ttl: timedelta
    mailto: str | None = None

    def preferences_url(self, ref: str, *, now: datetime | None = None) -> str:
        return f"{self.base_url}/preferences/{self.signer.sign(ref, PREFERENCES_SCOPE, ttl=self.ttl, now=now)}"

    def unsubscribe_url(self, ref: str, channel: str, category: str, *, now: datetime | None = None) -> str:
        token = self.signer.sign(ref, unsubscribe_scope(channel, category), ttl=self.ttl, now=now)
        return f"{self.base_url}/unsubscribe/{token}"

    def unsubscribe_mailto(self, ref: str, channel: str, category: str, *, now: datetime | None = None) -> str | None:
        """``mailto:`` form of ``List-Unsubscribe``: the token in the subject, for a mailbox that processes it."""
        if not self.mailto:
            return None
        token = self.signer.sign(ref, unsubscribe_scope(channel, category), ttl=self.ttl, now=now)
        return f"mailto:{self.mailto}?subject=unsubscribe%20{token}"


def customer_links(settings: Settings) -> CustomerLinks:
    """The deployment's link builder (``JOURNEYS_LINK_KEYS``, ``JOURNEYS_LINKS_URL``...); the worker and the API
    build the same one, so the API verifies what the worker signed."""
    return CustomerLinks(
        signer=link_signer(settings.link_keys, settings.link_key_path),
        base_url=settings.link_base_url,
        ttl=timedelta(days=settings.link_ttl_days),
        mailto=settings.unsubscribe_mailto,
    )


def ephemeral_links() -> CustomerLinks:
    """Links signed with a random key of this process alone, for a delivery activity built without the
    deployment's (tests, tools): they render, but no API verifies them."""
    return CustomerLinks(LinkSigner([secrets.token_bytes(32)]), "http://127.0.0.1:8000", timedelta(days=400))
