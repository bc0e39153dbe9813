"""Events received by type, as the tracking plan sees them: declared, unknown, refused, quarantined.

Nothing is counted on the event API's hot path for an accepted event: the counts of accepted events are the
``event`` rows grouped by type (every accepted event is recorded once for analytics anyway), quarantined events
are the ``quarantinedevent`` rows, and refusals are the one counter table the API adds to per batch
(``refusedeventcount``), since a refused event is not stored. Whether a type is declared is the plan's answer
today, so an event type declared later stops counting as unknown. Plain ``GROUP BY`` queries: SQLite and
PostgreSQL answer them alike.
"""

from __future__ import annotations

from html import escape

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from journeymap.events import TrackingPlan
from storage.tables import Event, QuarantinedEvent, RefusedEventCount


class EventTypeCount(BaseModel):
    """One event type's counts since the database began."""

    type: str
    declared: bool
    accepted: int = 0
    """Accepted and given to the journeys (declared and valid, or of a type nobody declared: unknown)."""
    refused: int = 0
    quarantined: int = 0
    last_problem: str | None = None
    """The latest reason an event of this type was refused (without its value)."""


class EventCounts(BaseModel):
    """Every type seen or declared, declared ones first, then by name."""

    planned: bool
    """False when no events are declared: then nothing is checked and every type counts as unknown."""
    types: list[EventTypeCount]

    def totals(self) -> dict[str, int]:
        """``declared``, ``unknown``, ``refused``, ``quarantined``: events in each, over every type."""
        return {
            "declared": sum(t.accepted for t in self.types if t.declared),
            "unknown": sum(t.accepted for t in self.types if not t.declared),
            "refused": sum(t.refused for t in self.types),
            "quarantined": sum(t.quarantined for t in self.types),
        }


def event_counts(engine: Engine, plan: TrackingPlan | None) -> EventCounts:
    """The counts by type; declared types nobody sent yet are listed with zeros."""
    declared = set(plan.events) if plan is not None else set()
    found: dict[str, EventTypeCount] = {name: EventTypeCount(type=name, declared=True) for name in declared}

    def row(name: str) -> EventTypeCount:
        return found.setdefault(name, EventTypeCount(type=name, declared=name in declared))

    with Session(engine) as session:
        for name, count in session.exec(select(col(Event.type), func.count()).group_by(col(Event.type))):
            row(name).accepted = count
        quarantined = select(col(QuarantinedEvent.type), func.count()).group_by(col(QuarantinedEvent.type))
        for name, count in session.exec(quarantined):
            row(name).quarantined = count
        for refused in session.exec(select(RefusedEventCount)):
            counted = row(refused.type)
            counted.refused, counted.last_problem = refused.count, refused.last_problem or None
    ordered = sorted(found.values(), key=lambda t: (not t.declared, t.type))
    return EventCounts(planned=plan is not None, types=ordered)


def format_counts(counts: EventCounts) -> list[str]:
    """The counts as a plain-text table, for ``journeys events --stats`` and the report's text."""
    lines = [f"{'event':<28} {'declared':<9} {'accepted':>9} {'refused':>8} {'quarantined':>12}  last refusal"]
    for t in counts.types:
        lines.append(
            f"{t.type:<28} {'yes' if t.declared else 'no':<9} {t.accepted:>9} {t.refused:>8} {t.quarantined:>12}"
            f"  {t.last_problem or ''}".rstrip()
        )
    totals = counts.totals()
    lines.append(
        f"events: {totals['declared']} declared, {totals['unknown']} unknown, {totals['refused']} refused, "
        f"{totals['quarantined']} quarantined"
        + ("" if counts.planned else " (no events are declared: nothing is checked)")
    )
    return lines


def event_counts_html(counts: EventCounts | None) -> str:
    """The report's section: one row per event type (nothing when the report was built without the counts)."""
    if counts is None:
        return ""
    totals = counts.totals()
    rows = "".join(
        f"<tr><td>{escape(t.type)}</td><td>{'yes' if t.declared else 'no'}</td><td>{t.accepted:,}</td>"
        f"<td>{t.refused:,}</td><td>{t.quarantined:,}</td><td>{escape(t.last_problem or '')}</td></tr>"
        for t in counts.types
    )
    note = "" if counts.planned else " No events are declared: nothing is checked (docs/events.md)."
    return (
        "<h2>Events against the tracking plan</h2>"
        f"<p class='muted'>{totals['declared']:,} declared, {totals['unknown']:,} unknown, "
        f"{totals['refused']:,} refused, {totals['quarantined']:,} quarantined.{note}</p>"
        "<table><tr><th>event</th><th>declared</th><th>accepted</th><th>refused</th><th>quarantined</th>"
        f"<th>last refusal</th></tr>{rows}</table>"
    )
