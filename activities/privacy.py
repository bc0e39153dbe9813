"""A customer's data-subject requests, in the database: export everything we hold, or forget them.

Forgetting keeps what stops us from wronging the customer again:

- the ledger rows (key, channel, journey, step, template, status, times): a journey retried or a backend
  replaying an event finds the send already made and sends nothing twice; their ``content`` (the rendered
  message, with names and addresses) is replaced by a redaction marker;
- the consent rows (scope, source, time; no contents): a "no" must be honoured and provable after erasure.

Removed: the profile, every identity, the link reference (old links stop working); event properties are
emptied (their type and time stay for aggregate reports). Ending the customer's journeys is the caller's part
(``starter.privacy``): this module is the database's. All statements are set-based.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, Executable, delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.consent import person_ids
from storage.tables import Consent, Customer, CustomerIdentity, Delivery, Event, JourneyRun, LinkReference

REDACTED = "redacted"


def export_customer(engine: Engine, customer_id: str) -> dict[str, Any]:
    """Everything the database holds about ``customer_id`` (and the ids merged into it), as JSON-ready data."""
    with Session(engine) as session:
        ids = person_ids(session, customer_id)
        customer = session.get(Customer, customer_id)
        identities = session.exec(select(CustomerIdentity).where(col(CustomerIdentity.customer_id).in_(ids)))
        consents = session.exec(
            select(Consent).where(col(Consent.customer_id).in_(ids)).order_by(col(Consent.at), col(Consent.id))
        )
        events = session.exec(
            select(Event).where(col(Event.customer_id).in_(ids)).order_by(col(Event.occurred_at), col(Event.id))
        )
        messages = session.exec(
            select(Delivery).where(col(Delivery.customer_id).in_(ids)).order_by(col(Delivery.created_at))
        )
        runs = session.exec(select(JourneyRun).where(col(JourneyRun.customer_id).in_(ids)))
        return {
            "customer_id": customer_id,
            "merged_ids": sorted(ids - {customer_id}),
            "exported_at": _iso(datetime.now(UTC)),
            "profile": dict(customer.traits) if customer else None,
            "identities": sorted(
                ({"kind": i.kind, "value": i.value, "linked_at": _iso(i.linked_at)} for i in identities),
                key=lambda i: (i["kind"], i["value"]),
            ),
            "consents": [consent_record(c) for c in consents],
            "events": [
                {"id": e.event_id, "type": e.type, "properties": e.properties, "occurred_at": _iso(e.occurred_at)}
                for e in events
            ],
            "messages": [
                {
                    "journey": m.journey,
                    "step": m.step,
                    "template": m.template,
                    "channel": m.channel,
                    "category": m.category,
                    "status": m.status,
                    "reason": m.reason,
                    "created_at": _iso(m.created_at),
                    "sent_at": _iso(m.sent_at),
                    "receipt": m.receipt,
                    "content": m.content,
                }
                for m in messages
            ],
            "journeys": [
                {
                    "workflow_id": r.workflow_id,
                    "journey": r.journey,
                    "status": r.status,
                    "step": r.step,
                    "entered_at": _iso(r.entered_at),
                    "end_reason": r.end_reason,
                }
                for r in runs
            ],
        }


def consent_record(row: Consent) -> dict[str, Any]:
    """One line of the consent audit trail."""
    return {
        "customer_id": row.customer_id,
        "channel": row.channel,
        "category": row.category,
        "granted": row.granted,
        "source": row.source,
        "at": _iso(row.at),
        "until": _iso(row.until),
    }


def ids_of(engine: Engine, customer_id: str) -> set[str]:
    """``customer_id`` and the customer ids merged into it (``activities.consent.person_ids``)."""
    with Session(engine) as session:
        return person_ids(session, customer_id)


def journey_ids_of(engine: Engine, customer_ids: set[str]) -> set[str]:
    """The journey workflows the database knows for these customer ids: from the ledger's keys (a key begins
    with its workflow id, ``contracts.ids.idempotency_key``) and from the report's journey runs."""
    with Session(engine) as session:
        keys = session.exec(
            select(Delivery.idempotency_key).where(col(Delivery.customer_id).in_(customer_ids)).distinct()
        ).all()
        runs = session.exec(select(JourneyRun.workflow_id).where(col(JourneyRun.customer_id).in_(customer_ids)))
        return {key.rsplit("/", 3)[0] for key in keys} | set(runs.all())


def forget_customer(engine: Engine, customer_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Erase ``customer_id`` (and the ids merged into it) from the database in one transaction; how many rows
    of each kind were touched."""
    at = now or datetime.now(UTC)
    marker = {REDACTED: f"erased at {_iso(at)}"}
    with Session(engine) as session:
        ids = person_ids(session, customer_id)

        def run(statement: Executable) -> int:
            result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
            return result.rowcount

        counts = {
            "messages_redacted": run(
                update(Delivery).where(col(Delivery.customer_id).in_(ids)).values(content=marker, updated_at=at)
            ),
            "events_redacted": run(update(Event).where(col(Event.customer_id).in_(ids)).values(properties={})),
            "identities_removed": run(delete(CustomerIdentity).where(col(CustomerIdentity.customer_id).in_(ids))),
            "links_revoked": run(delete(LinkReference).where(col(LinkReference.customer_id).in_(ids))),
            "profiles_removed": run(delete(Customer).where(col(Customer.id).in_(ids))),
        }
        session.commit()
    return counts


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
