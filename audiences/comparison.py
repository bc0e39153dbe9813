"""A comparison of one JSON value (a profile trait, an event property) with what a segment asks of it.

Shared by the ``trait`` condition and the property conditions of ``performed``: one model, one piece of SQL.
Exactly one operator is given::

    equals / not_equals      a text, a number or true/false
    one_of                   a list of texts or numbers
    greater_than / less_than / at_least / at_most    a number
    exists                   true (the key is there, not null) or false
    before / after           a date (``2026-09-01``) or a duration meaning that long ago (``60d``)
    within                   a duration: the date lies in that last stretch of time (``30d``)

Dates are compared as ISO 8601 text in UTC (``2026-09-01`` or ``2026-09-01T10:00:00Z``), which is how traits
and properties carry them; a value of another type never matches (it is not an error).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from sqlalchemy import and_, false, func, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from audiences.jsonsql import json_is, json_number, json_present, json_text
from journeymap.durations import format_duration, parse_duration
from journeymap.fields import FrozenModel, PositiveDuration

Scalar = str | bool | int | float
OPERATORS = (
    "equals",
    "not_equals",
    "one_of",
    "greater_than",
    "less_than",
    "at_least",
    "at_most",
    "exists",
    "before",
    "after",
    "within",
)
KEY = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A trait or property name: a key of the JSON object (nested keys are not read)."""


def _moment(value: Any) -> Any:
    """``60d`` -> a duration (that long ago); ``2026-09-01`` -> a UTC datetime."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is neither a date (2026-09-01) nor a duration (60d)") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "isoformat") and not isinstance(value, timedelta):  # a date YAML parsed itself
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


Moment = Annotated[datetime | timedelta, BeforeValidator(_moment)]


class Comparison(FrozenModel):
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    one_of: list[str | int | float] | None = Field(default=None, min_length=1)
    greater_than: float | None = None
    less_than: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    exists: bool | None = None
    before: Moment | None = None
    after: Moment | None = None
    within: PositiveDuration | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Comparison:
        given = self.operators()
        if len(given) != 1:
            listed = ", ".join(OPERATORS)
            raise ValueError(f"give exactly one of {listed}" + (f" (given: {', '.join(given)})" if given else ""))
        return self

    def operators(self) -> list[str]:
        return [name for name in OPERATORS if getattr(self, name) is not None]

    @property
    def operator(self) -> str:
        return self.operators()[0]

    def changes_with_time(self) -> bool:
        """Relative dates move with the clock."""
        return self.within is not None or isinstance(self.before, timedelta) or isinstance(self.after, timedelta)

    def describe(self) -> str:
        value = getattr(self, self.operator)
        shown = f"{format_duration(value)} ago" if isinstance(value, timedelta) else value
        if self.operator == "within":
            shown = f"the last {format_duration(value)}"
        return f"{self.operator.replace('_', ' ')} {shown}"

    def sql(self, column: ColumnElement[Any], key: str, now: datetime) -> ColumnElement[bool]:
        """The comparison of ``column[key]`` (a JSON column) as a SQL predicate; ``now`` anchors relative dates."""
        op = self.operator
        value = getattr(self, op)
        if op == "exists":
            present = json_present(column, key)
            return present if value else not_(present)
        if op in ("equals", "not_equals"):
            same = _equals(column, key, value)
            return same if op == "equals" else not_(func.coalesce(same, false()))
        if op == "one_of":
            texts = [v for v in value if isinstance(v, str)]
            numbers = [v for v in value if not isinstance(v, str)]
            parts = []
            if texts:
                parts.append(json_text(column, key).in_(texts))
            if numbers:
                parts.append(json_number(column, key).in_(numbers))
            return or_(*parts)
        number = json_number(column, key)
        if op in ("greater_than", "less_than", "at_least", "at_most"):
            bound: float = value
            if op == "greater_than":
                return number > bound
            if op == "less_than":
                return number < bound
            return number >= bound if op == "at_least" else number <= bound
        text = json_text(column, key)
        if op == "within":
            return and_(text >= _iso(now - value), text <= _iso(now))
        moment = now - value if isinstance(value, timedelta) else value
        return text < _iso(moment) if op == "before" else text > _iso(moment)


def _equals(column: ColumnElement[Any], key: str, value: Scalar) -> ColumnElement[bool]:
    if isinstance(value, bool):
        return json_is(column, key, value)
    if isinstance(value, str):
        return json_text(column, key) == value
    return json_number(column, key) == value


def _iso(moment: datetime) -> str:
    """``moment`` as the ISO text dates are compared as (UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
