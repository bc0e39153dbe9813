"""The report's figures as set-based queries: the database counts, sums and ranks; Python gets one row per group.

Every function takes an open connection and returns rows per journey, step, variant, stage or month, whose
number does not grow with events, deliveries, runs or customers, so the report's memory stays flat however
many there are. The statements are SQLAlchemy Core and run unchanged on SQLite and PostgreSQL: the few
expressions the two spell differently are in :mod:`analytics.sql`. Grouping is done over a subquery's
columns, never over an expression with bound parameters (PostgreSQL would not see two renderings of it as one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Subquery,
    Table,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    or_,
    select,
    union,
    union_all,
)
from sqlmodel import SQLModel

from analytics.sql import epoch_us, iso_epoch_us, json_number, json_scalar, json_text, month_index
from storage.tables import Customer, Delivery, Event, JourneyRun


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


_EVENTS = _table(Event)
EVENT, DELIVERY, CUSTOMER, RUN = (_table(model).c for model in (Event, Delivery, Customer, JourneyRun))
"""The tables' columns, for Core statements."""

ACTIVE = ("entering", "active", "waiting")
"""Statuses of a run still on its steps; `cooldown` runs have ended and only wait out their re-entry rule."""


@dataclass(frozen=True)
class Conventions:
    """The words the figures are counted in (from :class:`runtime.settings.ReportSettings`)."""

    purchase_events: Sequence[str]
    value_property: str
    stage_trait: str


# ------------------------------------------------------------------------------------------------ counts


def event_counts(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(EVENT.type, func.count()).group_by(EVENT.type))
    return {kind: count for kind, count in rows}


@dataclass
class RunCounts:
    """One journey's runs: entered or not, where the active ones rest, how the others ended."""

    entered: int = 0
    not_entered: int = 0
    goal_conversions: int = 0
    entered_customers: int = 0
    goal_customers: int = 0
    in_progress: dict[str, int] = field(default_factory=dict)
    ended: dict[tuple[str, str], int] = field(default_factory=dict)


def run_counts(connection: Connection) -> dict[str, RunCounts]:
    """Per journey: runs by status and step (active) or end reason (ended), and the distinct customers."""
    active = RUN.status.in_(ACTIVE)
    shaped = select(
        RUN.journey,
        RUN.status,
        case((active, func.coalesce(func.nullif(RUN.step, ""), "-")), else_=null()).label("step"),
        case((active, null()), else_=func.coalesce(RUN.end_reason, "")).label("reason"),
    ).subquery()
    grouped = select(shaped.c.journey, shaped.c.status, shaped.c.step, shaped.c.reason, func.count()).group_by(
        shaped.c.journey, shaped.c.status, shaped.c.step, shaped.c.reason
    )
    found: dict[str, RunCounts] = defaultdict(RunCounts)
    for journey, status, step, reason, count in connection.execute(grouped):
        runs = found[journey]
        if status == "not_entered":
            runs.not_entered += count
            continue
        runs.entered += count
        if status in ACTIVE:
            runs.in_progress[step] = runs.in_progress.get(step, 0) + count
        else:
            runs.ended[(status, reason)] = runs.ended.get((status, reason), 0) + count

    reached = RUN.goal_reached_at.is_not(None)
    customers = (
        select(
            RUN.journey,
            func.count(distinct(RUN.customer_id)),
            func.count(distinct(case((reached, RUN.customer_id)))),
            func.count(RUN.goal_reached_at),
        )
        .where(RUN.status != "not_entered")
        .group_by(RUN.journey)
    )
    for journey, entered, goal, conversions in connection.execute(customers):
        runs = found[journey]
        runs.entered_customers, runs.goal_customers, runs.goal_conversions = entered, goal, conversions
    return dict(found)


def send_counts(connection: Connection) -> dict[str, list[tuple[str, str, str, str | None, int]]]:
    """Per journey: ``(step, channel, status, reason, messages)``."""
    grouped = select(
        DELIVERY.journey, DELIVERY.step, DELIVERY.channel, DELIVERY.status, DELIVERY.reason, func.count()
    ).group_by(DELIVERY.journey, DELIVERY.step, DELIVERY.channel, DELIVERY.status, DELIVERY.reason)
    found: dict[str, list[tuple[str, str, str, str | None, int]]] = defaultdict(list)
    for journey, step, channel, status, reason, count in connection.execute(grouped):
        found[journey].append((step, channel, status, reason, count))
    return found


def sent_customers(connection: Connection) -> dict[tuple[str, str], int]:
    """``{(journey, step): customers sent that step's message}`` (on any channel)."""
    grouped = (
        select(DELIVERY.journey, DELIVERY.step, func.count(distinct(DELIVERY.customer_id)))
        .where(DELIVERY.status == "sent")
        .group_by(DELIVERY.journey, DELIVERY.step)
    )
    return {(journey, step): count for journey, step, count in connection.execute(grouped)}


# ------------------------------------------------------------------------------------------------ splits


def assignments(journey: str, split_step: str, trait: str) -> Subquery:
    """Customers a split assigned: ``(customer_id, variant, at_us)``, one row per customer.

    ``at_us`` is the profile's ``trait`` when it holds an instant, else the run's entry (NULL when neither is
    known). A customer with several runs of the journey is counted by the one entered last.
    """
    variant = json_scalar(json_text, RUN.split_variants, split_step)
    runs = (
        select(
            RUN.customer_id,
            variant.label("variant"),
            json_scalar(json_text, CUSTOMER.traits, trait).label("assigned_at"),
            epoch_us(RUN.entered_at).label("entered_us"),
            func.row_number()
            .over(
                partition_by=RUN.customer_id,
                order_by=(RUN.entered_at.desc().nulls_last(), RUN.workflow_id.desc()),
            )
            .label("latest"),
        )
        .select_from(JourneyRun)
        .outerjoin(Customer, CUSTOMER.id == RUN.customer_id)
        .where(RUN.journey == journey, variant.is_not(None))
        .subquery()
    )
    return (
        select(
            runs.c.customer_id,
            runs.c.variant,
            func.coalesce(iso_epoch_us(runs.c.assigned_at), runs.c.entered_us).label("at_us"),
        )
        .where(runs.c.latest == 1)
        .subquery()
    )


def split_conversions(
    connection: Connection, assigned: Subquery, goal_events: Sequence[str], within_us: int
) -> dict[str, tuple[int, int]]:
    """``{variant: (customers, converted)}``: converted is a goal event in ``(at, at + within]``."""
    occurred = epoch_us(EVENT.occurred_at)
    window = and_(
        *_customer_events(assigned.c.customer_id, goal_events),
        occurred > assigned.c.at_us,
        occurred <= assigned.c.at_us + within_us,
    )
    per_customer = (
        select(assigned.c.variant, func.count(EVENT.id).label("goals"))
        .select_from(assigned)
        .outerjoin(_EVENTS, window)
        .group_by(assigned.c.customer_id, assigned.c.variant)
        .subquery()
    )
    grouped = select(per_customer.c.variant, func.count(), func.count(case((per_customer.c.goals > 0, 1)))).group_by(
        per_customer.c.variant
    )
    return {variant: (customers, converted) for variant, customers, converted in connection.execute(grouped)}


def _customer_events(customer_id: ColumnElement[Any], types: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
    """Join conditions for a customer's events of ``types``, found through the ``customer_id`` index.

    ``type || ''`` keeps the ``type`` index out of the join: SQLite's planner has no statistics to choose between
    the two indexes and, depending on the order they were created in, may take ``type``, scanning every purchase
    of everyone for each customer (quadratic). A customer's own events are few; PostgreSQL plans with statistics
    and loses nothing.
    """
    return EVENT.customer_id == customer_id, EVENT.type.concat("").in_(types)


# ------------------------------------------------------------------------------------------------ customer value


@dataclass(frozen=True)
class Value:
    """One group's purchases."""

    customers: int
    buyers: int
    orders: int
    revenue: float
    median_days_between_purchases: float | None
    """Over all members' gaps between their consecutive purchases."""


def stage_members(conventions: Conventions) -> Select[Any]:
    """``(grp, customer_id, since_us)``: every customer (profile or events) by the profile's stage trait."""
    people = union(select(CUSTOMER.id.label("customer_id")), select(EVENT.customer_id)).subquery()
    stage = func.nullif(json_scalar(json_text, CUSTOMER.traits, conventions.stage_trait), "")
    return (
        select(
            func.coalesce(stage, "unknown").label("grp"),
            people.c.customer_id,
            cast(null(), BigInteger).label("since_us"),
        )
        .select_from(people)
        .outerjoin(Customer, CUSTOMER.id == people.c.customer_id)
    )


def variant_members(groups: Sequence[tuple[str, Subquery]]) -> Select[Any] | None:
    """``(grp, customer_id, since_us)``: each split's assigned customers, the group named ``<prefix><variant>``."""
    parts = [
        select(
            (literal(prefix) + assigned.c.variant).label("grp"),
            assigned.c.customer_id,
            assigned.c.at_us.label("since_us"),
        )
        for prefix, assigned in groups
    ]
    if not parts:
        return None
    return select(union_all(*parts).subquery())


def purchase_value(properties: Any, conventions: Conventions) -> ColumnElement[Any]:
    """A purchase's value: its value property when that is a JSON number, else 0."""
    return func.coalesce(json_scalar(json_number, properties, conventions.value_property), 0.0)


def value_by_group(connection: Connection, members_query: Select[Any], conventions: Conventions) -> dict[str, Value]:
    """Per group of ``members_query`` ``(grp, customer_id, since_us)``: its members' purchases after ``since``."""
    members = members_query.subquery()
    occurred = epoch_us(EVENT.occurred_at)
    theirs = and_(
        *_customer_events(members.c.customer_id, conventions.purchase_events),
        or_(members.c.since_us.is_(None), occurred > members.c.since_us),
    )
    per_member = (
        select(
            members.c.grp,
            func.count(EVENT.id).label("orders"),
            func.sum(purchase_value(EVENT.properties, conventions)).label("revenue"),
        )
        .select_from(members)
        .outerjoin(_EVENTS, theirs)
        .group_by(members.c.grp, members.c.customer_id)
        .subquery()
    )
    totals = select(
        per_member.c.grp,
        func.count(),
        func.count(case((per_member.c.orders > 0, 1))),
        func.coalesce(func.sum(per_member.c.orders), 0),
        func.coalesce(func.sum(per_member.c.revenue), 0.0),
    ).group_by(per_member.c.grp)
    bought = (
        select(members.c.grp, members.c.customer_id, occurred.label("at_us"))
        .select_from(members)
        .join(_EVENTS, theirs)
        .subquery()
    )
    medians = _median_gaps(connection, bought)
    return {
        grp: Value(customers, buyers, int(orders), float(revenue), medians.get(grp))
        for grp, customers, buyers, orders, revenue in connection.execute(totals)
    }


def _median_gaps(connection: Connection, mine: Subquery) -> dict[str, float]:
    """Per group, the median of the gaps between each member's consecutive purchases, in days.

    Neither database has a median both spell alike, so the gaps are ranked per group and the one or two in
    the middle are read back.
    """
    previous = func.lag(mine.c.at_us).over(partition_by=(mine.c.grp, mine.c.customer_id), order_by=mine.c.at_us)
    gaps = select(mine.c.grp, (mine.c.at_us - previous).label("gap")).subquery()
    ranked = (
        select(
            gaps.c.grp,
            gaps.c.gap,
            func.row_number().over(partition_by=gaps.c.grp, order_by=gaps.c.gap).label("position"),
            func.count().over(partition_by=gaps.c.grp).label("gaps"),
        )
        .where(gaps.c.gap.is_not(None))
        .subquery()
    )
    middle = select(ranked.c.grp, ranked.c.gap).where(
        ranked.c.position.in_([(ranked.c.gaps + 1) // 2, (ranked.c.gaps + 2) // 2])
    )
    found: dict[str, list[int]] = defaultdict(list)
    for grp, gap in connection.execute(middle):
        found[grp].append(int(gap))
    # As statistics.median over timedelta.total_seconds() / 86400 has it: each gap in days, then the middle one
    # or the mean of the two middle ones.
    return {grp: sum(gap / 1_000_000 / 86_400 for gap in pair) / len(pair) for grp, pair in found.items()}


# ------------------------------------------------------------------------------------------------ cohorts


@dataclass(frozen=True)
class Cohorts:
    sizes: dict[int, int]
    """Customers by the month index of their first event."""
    revenue: dict[tuple[int, int], float]
    """Purchase value by (cohort month, months since)."""
    last_month: int | None
    """The month index of the latest event."""


def cohorts(connection: Connection, conventions: Conventions) -> Cohorts:
    first = (
        select(EVENT.customer_id, month_index(func.min(EVENT.occurred_at)).label("cohort"))
        .group_by(EVENT.customer_id)
        .subquery()
    )
    sizes = select(first.c.cohort, func.count()).group_by(first.c.cohort)
    bought = (
        select(first.c.cohort, (month_index(EVENT.occurred_at) - first.c.cohort).label("since"), EVENT.properties)
        .join(first, first.c.customer_id == EVENT.customer_id)
        .where(EVENT.type.in_(conventions.purchase_events))
        .subquery()
    )
    amount = purchase_value(bought.c.properties, conventions)
    revenue = select(bought.c.cohort, bought.c.since, func.sum(amount)).group_by(bought.c.cohort, bought.c.since)
    last: datetime | None = connection.execute(select(func.max(EVENT.occurred_at))).scalar()
    return Cohorts(
        sizes={cohort: count for cohort, count in connection.execute(sizes)},
        revenue={(cohort, since): float(total) for cohort, since, total in connection.execute(revenue)},
        last_month=None if last is None else last.year * 12 + last.month - 1,
    )
