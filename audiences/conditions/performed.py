"""``performed``: the customer's event history. How many times an event happened (optionally only those whose
properties match), ever, within a window, or since a date::

    {performed: order_placed}                                   at least once, ever
    {performed: order_placed, within: 60d, at_most: 0}          no order in 60 days (lapsed)
    {performed: order_placed, at_least: 3, where: [{property: total, at_least: 50}]}

Counted from the ``event`` table (every event the API recorded). Re-checked for a customer when such an event
arrives; a window (``within``) also on the schedule, since it moves with the clock.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator
from sqlalchemy import and_, exists, func, not_, select, true
from sqlalchemy.sql.elements import ColumnElement

from audiences.comparison import KEY, Comparison, Moment
from audiences.conditions.base import ConditionKind, ConditionModel, Query, register
from journeymap.durations import format_duration
from journeymap.fields import EventType, FrozenModel, PositiveDuration
from storage.tables import Event


class PropertyCondition(Comparison):
    property: str = Field(pattern=KEY, max_length=128)


class PerformedCondition(ConditionModel):
    performed: EventType
    where: list[PropertyCondition] = Field(default_factory=list)
    at_least: int | None = Field(default=None, ge=0)
    at_most: int | None = Field(default=None, ge=0)
    within: PositiveDuration | None = None
    """Only events in this last stretch of time count."""
    since: Moment | None = None
    """Only events from this date on count (a duration here means that long ago, like ``within``)."""

    @model_validator(mode="after")
    def _bounds(self) -> PerformedCondition:
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least ({self.at_least}) is more than at_most ({self.at_most}): nobody matches")
        if self.within is not None and self.since is not None:
            raise ValueError("give `within` or `since`, not both")
        return self

    @property
    def bounds(self) -> tuple[int, int | None]:
        """(at least, at most) times: at least once when neither is given."""
        low = self.at_least if self.at_least is not None else (1 if self.at_most is None else 0)
        return low, self.at_most


class Performed(ConditionKind[PerformedCondition]):
    name = "performed"
    model = PerformedCondition
    summary = "the customer's events: how many, when, with which properties"

    def events(self, condition: PerformedCondition) -> set[str]:
        return {condition.performed}

    def changes_with_time(self, condition: PerformedCondition) -> bool:
        return (
            condition.within is not None
            or (condition.since is not None and not isinstance(condition.since, datetime))
            or any(p.changes_with_time() for p in condition.where)
        )

    def describe(self, condition: PerformedCondition) -> str:
        low, high = condition.bounds
        times = f"at least {low}" if high is None else f"{low}-{high}" if low != high else f"exactly {low}"
        when = f" in the last {format_duration(condition.within)}" if condition.within else ""
        return f"performed {condition.performed} {times} times{when}"

    def sql(self, condition: PerformedCondition, query: Query) -> ColumnElement[bool]:
        event = Event.__table__.alias("performed")  # type: ignore[attr-defined]
        since = condition.since if condition.within is None else condition.within
        # ``type || ''`` keeps the ``type`` index out: SQLite's planner, with no statistics (a deployment never runs
        # ANALYZE), took it for every customer, scanning everyone's events of that type per customer (quadratic:
        # bench/segments.py). A customer's own events come through the ``customer_id`` index and are few.
        filters = [event.c.customer_id == query.customer.c.id, event.c.type.concat("") == condition.performed]
        if since is not None:
            filters.append(event.c.occurred_at >= (since if isinstance(since, datetime) else query.now - since))
        filters += [p.sql(event.c.properties, p.property, query.now) for p in condition.where]
        low, high = condition.bounds
        if high is None and low <= 0:
            return true()
        if high is None and low == 1:
            return exists(select(1).select_from(event).where(*filters))
        if high == 0:
            return not_(exists(select(1).select_from(event).where(*filters)))
        count = select(func.count()).select_from(event).where(*filters).scalar_subquery()
        return and_(count >= low, count <= high) if high is not None else count >= low


register(Performed())


__all__ = ["FrozenModel", "PerformedCondition", "PropertyCondition"]
