"""Recording events for analytics: once per event id, at the time the event happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from contracts.events import JourneyEvent
from storage.tables import Event


def event_values(customer_id: str, event: JourneyEvent, *, at: datetime | None = None) -> dict[str, Any]:
    """The ``Event`` row of ``event``: one definition for the ORM path here and the event API's bulk insert."""
    return {
        "event_id": event.id,
        "customer_id": customer_id,
        "type": event.type,
        "properties": dict(event.properties),
        "occurred_at": at or event.timestamp or datetime.now(UTC),
    }


def record_event(engine: Engine, customer_id: str, event: JourneyEvent, *, at: datetime | None = None) -> bool:
    """Record ``event`` of ``customer_id``; False when its id was recorded already (a retried delivery).

    Blocking database I/O: from async code call it with ``asyncio.to_thread``. ``at`` overrides when the event
    happened (default: the event's own ``timestamp``, else now), which a simulation on a time-skipping server
    needs because its clock is not the wall clock.
    """
    row = Event(**event_values(customer_id, event, at=at))
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            # Unique event_id: the same event twice counts once, as it has effect once in the journeys.
            session.rollback()
            return False
    return True


def record_events(engine: Engine, events: list[tuple[str, JourneyEvent, datetime]]) -> int:
    """Record many ``(customer_id, event, occurred_at)`` in one transaction (new ids only); returns how many.

    For bulk feeds (the simulation, a backfill): duplicates of already recorded ids are skipped up front.
    """
    if not events:
        return 0
    ids = [event.id for _, event, _ in events]
    with Session(engine) as session:
        known = set(session.exec(select(Event.event_id).where(Event.event_id.in_(ids))))  # type: ignore[attr-defined]
        fresh = {}
        for customer_id, event, at in events:
            if event.id not in known and event.id not in fresh:
                fresh[event.id] = Event(
                    event_id=event.id,
                    customer_id=customer_id,
                    type=event.type,
                    properties=dict(event.properties),
                    occurred_at=at,
                )
        session.add_all(fresh.values())
        session.commit()
    return len(fresh)
