"""Lead scores and customer value as SQL (SQLAlchemy Core, compiled for SQLite and PostgreSQL alike).

Nothing is stored: a score is computed when asked, so it has decayed to the moment it is read.

**Lead score** of a customer at ``now``::

    SELECT coalesce(sum(<points of the event> * power(0.5, <age in seconds> / <half-life in seconds>)), 0)
      FROM event WHERE customer_id = customer.id AND type IN (<the rules' events>) AND occurred_at <= :now
    + CASE WHEN <trait rule 1> THEN <points> ELSE 0 END + ...

where an event's points are the sum of the points of every rule it matches (its type, its properties). The age is
``julianday`` arithmetic on SQLite and ``EXTRACT(EPOCH ...)`` on PostgreSQL (:class:`seconds_before`); ``power``
is built into PostgreSQL and into SQLite's math functions (3.35+), and :mod:`storage.engine` registers it on a
SQLite built without them.

**Customer value**: ``max(occurred_at)``, ``count(*)`` and ``sum(<money property>)`` over the customer's purchase
events, each scored 1-5 by the definition's thresholds (``CASE``), and the group looked up in
:data:`audiences.scores.GROUPS`, all aggregate expressions: one ``GROUP BY customer_id`` gives everyone's
(the report), one ``HAVING`` decides one customer's (a segment condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, Table, and_, case, cast, exists, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel.sql.sqltypes import UTCDateTime

from audiences.jsonsql import json_number
from audiences.scores import GROUPS, CustomerValue, LeadScore, ScoreDefinition, group_of_cell
from contracts.errors import UsageError
from storage.tables import Customer, Event

CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]


class seconds_before(FunctionElement[float]):
    """``seconds_before(now, moment)``: how many seconds ``moment`` lies before ``now`` (both datetimes)."""

    type = Float()
    inherit_cache = True


@compiles(seconds_before, "sqlite")
def _seconds_sqlite(element: seconds_before, compiler: Any, **kw: Any) -> str:
    now, moment = (compiler.process(clause, **kw) for clause in element.clauses.clauses)
    return f"((julianday({now}) - julianday({moment})) * 86400.0)"


@compiles(seconds_before, "postgresql")
def _seconds_postgresql(element: seconds_before, compiler: Any, **kw: Any) -> str:
    now, moment = (compiler.process(clause, **kw) for clause in element.clauses.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({now} - {moment})) AS DOUBLE PRECISION)"


def _moment(value: datetime) -> ColumnElement[datetime]:
    return literal(value, UTCDateTime())


# ------------------------------------------------------------------------------------------------ lead score


def event_points(score: LeadScore, event: Table, now: datetime) -> ColumnElement[float]:
    """The points one event row is worth before decay: the sum of every rule it matches."""
    parts = [
        case(
            (
                and_(event.c.type == rule.event, *(p.sql(event.c.properties, p.property, now) for p in rule.where)),
                literal(rule.points, Float()),
            ),
            else_=literal(0.0, Float()),
        )
        for rule in score.events
    ]
    total: ColumnElement[float] = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def decay(score: LeadScore, event: Table, now: datetime) -> ColumnElement[float]:
    """What an event's points are multiplied by at ``now``: 0.5 ** (age / half-life), 1 without a half-life."""
    if score.half_life is None:
        return literal(1.0, Float())
    age = seconds_before(_moment(now), event.c.occurred_at)
    return cast(func.power(literal(0.5, Float()), age / literal(score.half_life.total_seconds(), Float())), Float())


def _event_filters(score: LeadScore, event: Table, now: datetime) -> list[ColumnElement[bool]]:
    return [event.c.type.in_(sorted(score.event_types())), event.c.occurred_at <= _moment(now)]


def trait_points(score: LeadScore, customer: Table, now: datetime) -> ColumnElement[float]:
    total: ColumnElement[float] = literal(0.0, Float())
    for rule in score.traits:
        matched = rule.sql(customer.c.traits, rule.trait, now)
        total = total + case((matched, literal(rule.points, Float())), else_=literal(0.0, Float()))
    return total


def lead_score_sql(score: LeadScore, customer: Table, now: datetime) -> ColumnElement[float]:
    """The customer row's score at ``now`` (a scalar expression about ``customer``)."""
    total = trait_points(score, customer, now)
    if score.events:
        event = EVENT.alias("scored")
        decayed = (
            select(func.coalesce(func.sum(event_points(score, event, now) * decay(score, event, now)), 0.0))
            .where(event.c.customer_id == customer.c.id, *_event_filters(score, event, now))
            .scalar_subquery()
        )
        total = cast(decayed, Float()) + total
    return total


# ------------------------------------------------------------------------------------------------ customer value


def _money(spec: Any, event: Table) -> ColumnElement[float]:
    return json_number(event.c.properties, spec.value)


def purchase_filters(value: CustomerValue, event: Table, now: datetime) -> list[ColumnElement[bool]]:
    spec = value.rfm
    filters = [event.c.type == spec.purchase, event.c.occurred_at <= _moment(now)]
    if spec.within is not None:
        filters.append(event.c.occurred_at >= _moment(now - spec.within))
    return filters


@dataclass(frozen=True)
class RfmColumns:
    """Aggregate expressions over one customer's purchase rows (use with ``GROUP BY customer_id`` or one customer)."""

    last: ColumnElement[Any]
    purchases: ColumnElement[int]
    money: ColumnElement[float]
    recency: ColumnElement[int]
    frequency: ColumnElement[int]
    monetary: ColumnElement[int]
    group: ColumnElement[str]


def _int(value: int) -> ColumnElement[int]:
    return literal(value, Integer())


def _scored(pairs: list[tuple[ColumnElement[bool], int]]) -> ColumnElement[int]:
    return case(*((test, _int(points)) for test, points in pairs), else_=_int(1))


def rfm_columns(value: CustomerValue, event: Table, now: datetime) -> RfmColumns:
    spec = value.rfm
    last = func.max(event.c.occurred_at)
    purchases = func.count()
    money = func.coalesce(func.sum(_money(spec, event)), 0.0)
    recency = _scored([(last >= _moment(now - bound), 5 - i) for i, bound in enumerate(spec.recency)])
    frequency = _scored([(purchases >= bound, 5 - i) for i, bound in enumerate(reversed(spec.frequency))])
    monetary = _scored([(money >= literal(bound, Float()), 5 - i) for i, bound in enumerate(reversed(spec.monetary))])
    fm = cast((frequency + monetary + _int(1)) // _int(2), Integer())  # the mean, rounded half up: fm_score
    cells = {r * 10 + m: group_of_cell(r, m) for r in range(1, 6) for m in range(1, 6)}  # recency, fm
    group = case(cells, value=recency * _int(10) + fm)
    return RfmColumns(last, purchases, money, recency, frequency, monetary, group)


def rfm_group_in(value: CustomerValue, groups: list[str], customer: Table, now: datetime) -> ColumnElement[bool]:
    """Whether the customer row's RFM group is one of ``groups`` (no purchase: no group, never in)."""
    event = EVENT.alias("purchase")
    columns = rfm_columns(value, event, now)
    return exists(
        select(literal(1))
        .select_from(event)
        .where(event.c.customer_id == customer.c.id, *purchase_filters(value, event, now))
        # One group. SQLite refuses a HAVING without GROUP BY when the columns selected aggregate nothing.
        .group_by(event.c.customer_id)
        .having(and_(func.count() > 0, columns.group.in_(groups)))
    )


# ------------------------------------------------------------------------------------------------ one customer


@dataclass(frozen=True)
class ScoredEvent:
    event_id: str
    type: str
    occurred_at: datetime
    points: float
    decayed: float


@dataclass(frozen=True)
class TraitRule:
    trait: str
    rule: str
    points: float


@dataclass(frozen=True)
class LeadScoreExplained:
    name: str
    total: float
    events: list[ScoredEvent]
    traits: list[TraitRule]
    """The trait rules the customer meets now."""


@dataclass(frozen=True)
class Rfm:
    name: str
    last_purchase: datetime | None
    purchases: int
    money: float
    recency: int | None
    frequency: int | None
    monetary: int | None
    group: str | None

    def as_trait(self) -> dict[str, Any]:
        """What expressions and templates read as ``scores.<name>``."""
        return {
            "group": self.group,
            "recency": self.recency,
            "frequency": self.frequency,
            "monetary": self.monetary,
            "purchases": self.purchases,
            "value": round(self.money, 2),
            "last_purchase": self.last_purchase.isoformat() if self.last_purchase else None,
        }


def explain_lead_score(connection: Connection, score: LeadScore, customer_id: str, now: datetime) -> LeadScoreExplained:
    """Every event that earned points, its points before and after decay, the trait rules met, and the total
    (computed by the same SQL a segment uses, so the parts add up to what segments see)."""
    customer = CUSTOMER
    events: list[ScoredEvent] = []
    if score.events:
        event = EVENT.alias("scored")
        points = event_points(score, event, now)
        rows = connection.execute(
            select(event.c.event_id, event.c.type, event.c.occurred_at, points, points * decay(score, event, now))
            .where(event.c.customer_id == customer_id, *_event_filters(score, event, now), points != 0)
            .order_by(event.c.occurred_at, event.c.id)
        )
        events = [ScoredEvent(str(i), str(t), at, float(p), float(d)) for i, t, at, p, d in rows]
    traits: list[TraitRule] = []
    if score.traits:
        tests = [rule.sql(customer.c.traits, rule.trait, now) for rule in score.traits]
        found = connection.execute(select(*(case((t, 1), else_=0) for t in tests)).where(customer.c.id == customer_id))
        met = found.first()
        if met is not None:
            traits = [
                TraitRule(rule.trait, rule.describe(), rule.points)
                for rule, hit in zip(score.traits, met, strict=True)
                if hit
            ]
    query = select(lead_score_sql(score, customer, now)).where(customer.c.id == customer_id)
    total = connection.execute(query).scalar()
    if total is None:  # no profile row: only the events count
        total = sum(e.decayed for e in events)
    return LeadScoreExplained(score.name, float(total), events, traits)


def rfm_of(connection: Connection, value: CustomerValue, customer_id: str, now: datetime) -> Rfm:
    event = EVENT.alias("purchase")
    columns = rfm_columns(value, event, now)
    row = connection.execute(
        select(
            columns.last,
            columns.purchases,
            columns.money,
            columns.recency,
            columns.frequency,
            columns.monetary,
            columns.group,
        ).where(event.c.customer_id == customer_id, *purchase_filters(value, event, now))
    ).one()
    last, purchases, money, r, f, m, group = row
    if not purchases:
        return Rfm(value.name, None, 0, 0.0, None, None, None, None)
    return Rfm(value.name, last, int(purchases), float(money), int(r), int(f), int(m), str(group))


def computed_traits(
    connection: Connection, scores: dict[str, ScoreDefinition], customer_id: str, now: datetime
) -> dict[str, Any]:
    """``scores`` in expressions and templates: each lead score as a number (2 decimals), each customer value as
    its RFM values and group. One query per score, for one customer."""
    found: dict[str, Any] = {}
    for name, score in sorted(scores.items()):
        if isinstance(score, LeadScore):
            total = connection.execute(
                select(lead_score_sql(score, CUSTOMER, now)).where(CUSTOMER.c.id == customer_id)
            ).scalar()
            if total is None:
                total = explain_lead_score(connection, score, customer_id, now).total
            found[name] = round(float(total), 2)
        else:
            found[name] = rfm_of(connection, score, customer_id, now).as_trait()
    return found


def value_by_group(connection: Connection, value: CustomerValue, now: datetime) -> list[tuple[str, int, float]]:
    """(group, customers, money) for every group someone is in, in the order of :data:`GROUPS`: one query,
    grouped twice by the database."""
    event = EVENT.alias("purchase")
    columns = rfm_columns(value, event, now)
    per_customer = (
        select(columns.group.label("grp"), columns.money.label("money"))
        .where(*purchase_filters(value, event, now))
        .group_by(event.c.customer_id)
        .subquery()
    )
    rows = connection.execute(
        select(per_customer.c.grp, func.count(), func.coalesce(func.sum(per_customer.c.money), 0.0)).group_by(
            per_customer.c.grp
        )
    )
    found = {str(group): (int(count), float(money)) for group, count, money in rows}
    return [(g.name, *found[g.name]) for g in GROUPS if g.name in found]


def explain(
    connection: Connection, scores: dict[str, ScoreDefinition], customer_id: str, now: datetime
) -> list[LeadScoreExplained | Rfm]:
    """Every score of the customer at ``now``, by name: each lead score event by event, each customer value's RFM."""
    found: list[LeadScoreExplained | Rfm] = []
    for _, score in sorted(scores.items()):
        if isinstance(score, LeadScore):
            found.append(explain_lead_score(connection, score, customer_id, now))
        else:
            found.append(rfm_of(connection, score, customer_id, now))
    return found


class UnknownCustomer(UsageError):
    """Scores asked of a customer with no profile and no event: a typo, not a zero (the API answers 404)."""


def explain_customer(
    connection: Connection, scores: dict[str, ScoreDefinition], customer_id: str, now: datetime
) -> list[LeadScoreExplained | Rfm]:
    """:func:`explain`, for a customer who exists; raises :class:`UnknownCustomer` otherwise."""
    if not known_customer(connection, customer_id):
        raise UnknownCustomer(f"no customer {customer_id!r}: no profile and no event")
    return explain(connection, scores, customer_id, now)


def known_customer(connection: Connection, customer_id: str) -> bool:
    """Whether the customer has a profile or an event."""
    for table in (CUSTOMER, EVENT):
        column = table.c.id if table is CUSTOMER else table.c.customer_id
        if connection.execute(select(literal(1)).select_from(table).where(column == customer_id).limit(1)).first():
            return True
    return False
