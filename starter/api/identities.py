"""Identity resolution: every identity a customer shows (user id, anonymous id, email, phone, device token)
leads to one customer id, under which their journeys run.

- A new anonymous visitor gets a customer of their own (``anon-<digest>``), so their events reach journeys
  before they sign up.
- When they sign up (``identify`` with a ``userId`` and their ``anonymousId``), the user id is linked to that
  same customer: what was recorded before is kept.
- When both identities already belong to different customers, the user's customer absorbs the other: its
  identities are relinked and its traits filled in (the user's own traits win). Journeys already running under
  the absorbed id keep running under it (their workflow ids, idempotency keys and sends carry it), and the
  absorbed id itself becomes an identity of the survivor (kind ``customer_id``, so a later merge of the
  survivor carries it along): routing reads those (:func:`absorbed_ids`) and signals the same instance under
  each, so events for either id reach them (``journeymap.routing``).

Blocking database code: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.tables import Customer, CustomerIdentity

TRAIT_IDENTITIES = {
    "email": "email",
    "phone": "phone",
    "device_token": "device_token",
    "deviceToken": "device_token",
}
"""Traits that identify a customer, by the identity kind they become."""

ABSORBED = "customer_id"
"""The identity kind of a customer id merged into another: ``(customer_id, <absorbed>) -> <survivor>``."""


def _anonymous_customer_id(anonymous_id: str) -> str:
    return "anon-" + hashlib.sha256(anonymous_id.encode()).hexdigest()[:16]


def _identities(user_id: str | None, anonymous_id: str | None, traits: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if user_id is not None:
        found.append(("user_id", user_id))
    if anonymous_id is not None:
        found.append(("anonymous_id", anonymous_id))
    for trait, kind in TRAIT_IDENTITIES.items():
        value = traits.get(trait)
        if isinstance(value, str) and value:
            found.append((kind, value.strip().lower() if kind == "email" else value.strip()))
    return found


def resolve_customer(
    engine: Engine, *, user_id: str | None, anonymous_id: str | None, traits: dict[str, Any] | None = None
) -> str:
    """The customer these identities belong to, linking any new ones (and merging traits when given)."""
    for attempt in range(3):
        try:
            return _resolve(engine, user_id, anonymous_id, traits)
        except IntegrityError:
            # Another request linked one of these identities at the same moment: resolve again, now it exists.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _resolve(engine: Engine, user_id: str | None, anonymous_id: str | None, traits: dict[str, Any] | None) -> str:
    wanted = _identities(user_id, anonymous_id, traits or {})
    with Session(engine) as session:
        linked: dict[tuple[str, str], CustomerIdentity] = {}
        for kind, value in wanted:
            row = session.get(CustomerIdentity, (kind, value))
            if row is not None:
                linked[(kind, value)] = row
        by_kind = {kind: row.customer_id for (kind, _), row in linked.items()}
        customer_id = (
            by_kind.get("user_id")
            or by_kind.get("anonymous_id")
            or next(iter(by_kind.values()), None)
            or user_id
            or _anonymous_customer_id(anonymous_id or "")
        )
        absorbed = {row.customer_id for row in linked.values()} - {customer_id}
        customer = session.get(Customer, customer_id) or Customer(id=customer_id, traits={})
        merged: dict[str, Any] = {}
        for other_id in sorted(absorbed):
            other = session.get(Customer, other_id)
            if other is not None:
                merged |= other.traits
            # Its identities, the ids it had absorbed before among them, now lead to the survivor.
            for row in session.exec(select(CustomerIdentity).where(col(CustomerIdentity.customer_id) == other_id)):
                row.customer_id = customer_id
                session.add(row)
        now = datetime.now(UTC)
        for other_id in sorted(absorbed):
            alias = session.get(CustomerIdentity, (ABSORBED, other_id))
            if alias is None:
                session.add(CustomerIdentity(kind=ABSORBED, value=other_id, customer_id=customer_id, linked_at=now))
            else:
                alias.customer_id = customer_id
                session.add(alias)
        for kind, value in wanted:
            row = linked.get((kind, value))
            if row is None:
                session.add(CustomerIdentity(kind=kind, value=value, customer_id=customer_id, linked_at=now))
            elif row.customer_id != customer_id:
                row.customer_id = customer_id
                session.add(row)
        if merged or traits or customer.traits is None:
            customer.traits = {**merged, **(customer.traits or {}), **(traits or {})}
            customer.updated_at = now
        session.add(customer)
        session.commit()
        return customer_id


def identities_of(engine: Engine, customer_id: str) -> list[tuple[str, str]]:
    """Every identity linked to ``customer_id`` as ``(kind, value)``, for ``journeys identify --show``."""
    with Session(engine) as session:
        rows = session.exec(select(CustomerIdentity).where(col(CustomerIdentity.customer_id) == customer_id))
        return sorted((row.kind, row.value) for row in rows)


def merged_customer(engine: Engine, customer_id: str) -> tuple[str, list[str]]:
    """The customer ``customer_id`` stands for now (itself, unless identify merged it into another) and the ids
    merged into that one, whose running journeys hear its events: for callers that hold a customer id, not an
    identity (``journeys track``, delivery receipts). Two reads by index."""
    with Session(engine) as session:
        merged = session.get(CustomerIdentity, (ABSORBED, customer_id))
        survivor = merged.customer_id if merged is not None else customer_id
        return survivor, absorbed_ids(session, [survivor]).get(survivor, [])


def absorbed_ids(session: Session, customer_ids: list[str]) -> dict[str, list[str]]:
    """The ids merged into each of ``customer_ids`` (those with none are absent): one read by index."""
    found: dict[str, list[str]] = {}
    rows = session.exec(
        select(col(CustomerIdentity.customer_id), col(CustomerIdentity.value)).where(
            col(CustomerIdentity.kind) == ABSORBED, col(CustomerIdentity.customer_id).in_(customer_ids)
        )
    )
    for survivor, absorbed in rows:
        found.setdefault(survivor, []).append(absorbed)
    return {survivor: sorted(absorbed) for survivor, absorbed in found.items()}
