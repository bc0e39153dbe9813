"""The report: per journey and step what happened, per split whether it worked, per group what customers are worth.

Everything is read from the database: events (:class:`~storage.tables.Event`), the delivery ledger
(:class:`~storage.tables.Delivery`), profiles, and the journeys' last known states
(:class:`~storage.tables.JourneyRun`, refreshed by :func:`analytics.collect.refresh_runs`).

Definitions (also in docs/analytics.md):

- *Entered*: runs that passed their entry condition; *in progress*: runs waiting or acting, by step;
  *ended*: by status and reason.
- *Goal conversion*: the engine's own mark, a goal event within the map's window of entry.
- *Split conversion*: a goal event of the map within its window after the customer was assigned. The moment of
  assignment is the profile trait ``<split without _split>_assigned_at`` when the map writes it (the lifecycle
  does), else the entry. Each variant is compared with the holdout: absolute lift with Newcombe's interval,
  relative lift as a ratio.
- *Customer value*: from purchase events (``order_placed``, revenue in ``amount``): orders and revenue per
  customer, and the median days between a customer's consecutive purchases; by current lifecycle stage, and by
  split variant counting only purchases after assignment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from statistics import median
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from analytics.stats import newcombe_interval, wilson_interval
from journeymap import JourneyMap
from journeymap.steps.send import SendStep
from journeymap.steps.split import SplitStep
from storage.tables import Customer, Delivery, Event, JourneyRun

PURCHASE_EVENT = "order_placed"
REVENUE_PROPERTY = "amount"
ACTIVE = ("entering", "active", "waiting")
"""Statuses of a run still on its steps; `cooldown` runs have ended and only wait out their re-entry rule."""


class StepCount(BaseModel):
    step: str
    count: int


class EndCount(BaseModel):
    status: str
    reason: str
    count: int


class SendCount(BaseModel):
    step: str
    channel: str
    status: str
    reason: str | None
    count: int


class VariantResult(BaseModel):
    variant: str
    customers: int
    conversions: int
    rate: float
    rate_low: float
    rate_high: float
    lift: float | None = None
    """Rate minus the holdout's rate (absolute, in rate units)."""
    lift_low: float | None = None
    lift_high: float | None = None
    relative_lift: float | None = None
    """Rate over the holdout's rate, minus one; None when the holdout converted nobody."""


class SplitResult(BaseModel):
    step: str
    goal_events: list[str]
    window_days: float
    method: str = "Wilson score interval per rate; Newcombe hybrid score interval (method 10) for the lift"
    confidence: float
    variants: list[VariantResult]


class FunnelStage(BaseModel):
    label: str
    customers: int


class JourneyReport(BaseModel):
    name: str
    description: str
    entered: int
    not_entered: int
    in_progress: list[StepCount]
    ended: list[EndCount]
    goal_conversions: int
    goal_window_days: float | None
    sends: list[SendCount]
    funnel: list[FunnelStage]
    splits: list[SplitResult]


class ValueRow(BaseModel):
    group: str
    customers: int
    buyers: int
    orders: int
    revenue: float
    orders_per_customer: float
    revenue_per_customer: float
    median_days_between_purchases: float | None


class CohortSeries(BaseModel):
    cohort: str
    """The month customers first appeared (``2026-03``)."""
    customers: int
    revenue_per_customer: list[float]
    """Cumulative revenue per customer at the end of month 0, 1, 2, ... after the cohort's month."""


class Report(BaseModel):
    generated_at: datetime
    journeys: list[JourneyReport]
    value_by_stage: list[ValueRow]
    value_by_variant: list[ValueRow]
    cohorts: list[CohortSeries]
    events: dict[str, int] = Field(default_factory=dict)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _amount(properties: dict[str, Any]) -> float:
    value = properties.get(REVENUE_PROPERTY)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def build_report(engine: Engine, catalog: dict[str, JourneyMap], *, confidence: float = 0.95) -> Report:
    with Session(engine) as session:
        runs = list(session.exec(select(JourneyRun)))
        deliveries = list(session.exec(select(Delivery)))
        profiles = {c.id: dict(c.traits) for c in session.exec(select(Customer))}
        events = list(session.exec(select(Event).order_by(Event.occurred_at)))  # type: ignore[arg-type]

    events_by_customer: dict[str, list[tuple[datetime, str, dict[str, Any]]]] = defaultdict(list)
    for event in events:
        events_by_customer[event.customer_id].append((_aware(event.occurred_at), event.type, event.properties))

    journeys = [
        _journey_report(
            journey,
            [r for r in runs if r.journey == journey.name],
            [d for d in deliveries if d.journey == journey.name],
            profiles,
            events_by_customer,
            confidence,
        )
        for journey in sorted(catalog.values(), key=lambda j: j.name)
    ]
    purchases = {
        customer: [(at, _amount(props)) for at, kind, props in rows if kind == PURCHASE_EVENT]
        for customer, rows in events_by_customer.items()
    }
    customers = set(profiles) | set(events_by_customer)
    by_stage: dict[str, list[str]] = defaultdict(list)
    for customer in customers:
        stage = profiles.get(customer, {}).get("lifecycle_stage")
        by_stage[str(stage) if stage else "unknown"].append(customer)
    value_by_stage = [_value(stage, members, purchases, {}) for stage, members in sorted(by_stage.items())]

    value_by_variant = []
    for journey in journeys:
        for split in journey.splits:
            assigned = _assignments(journey.name, split.step, runs, profiles)
            groups: dict[str, list[str]] = defaultdict(list)
            for customer, (variant, _) in assigned.items():
                groups[variant].append(customer)
            since = {customer: at for customer, (_, at) in assigned.items()}
            for variant in sorted(groups, key=lambda v: (v == "holdout", v)):
                value_by_variant.append(
                    _value(f"{journey.name}.{split.step}: {variant}", groups[variant], purchases, since)
                )

    return Report(
        generated_at=datetime.now(UTC),
        journeys=journeys,
        value_by_stage=value_by_stage,
        value_by_variant=value_by_variant,
        cohorts=_cohorts(events_by_customer, purchases),
        events=dict(sorted(Counter(e.type for e in events).items())),
    )


def _assignments(
    journey: str, split_step: str, runs: list[JourneyRun], profiles: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, datetime | None]]:
    """``{customer: (variant, assigned at)}`` for one split step."""
    trait = f"{split_step.removesuffix('_split')}_assigned_at"
    found: dict[str, tuple[str, datetime | None]] = {}
    for run in runs:
        if run.journey != journey or split_step not in run.split_variants:
            continue
        at = _parse_time(profiles.get(run.customer_id, {}).get(trait))
        if at is None and run.entered_at is not None:
            at = _aware(run.entered_at)
        found[run.customer_id] = (run.split_variants[split_step], at)
    return found


def _journey_report(
    journey: JourneyMap,
    runs: list[JourneyRun],
    deliveries: list[Delivery],
    profiles: dict[str, dict[str, Any]],
    events: dict[str, list[tuple[datetime, str, dict[str, Any]]]],
    confidence: float,
) -> JourneyReport:
    entered = [r for r in runs if r.status != "not_entered"]
    in_progress = Counter(r.step or "-" for r in entered if r.status in ACTIVE)
    ended = Counter((r.status, r.end_reason or "") for r in entered if r.status not in ACTIVE)
    sends = Counter((d.step, d.channel, d.status, d.reason) for d in deliveries)
    step_order = {step.id: index for index, step in enumerate(journey.steps)}
    goal_conversions = sum(1 for r in entered if r.goal_reached_at is not None)

    sent_by_step: dict[str, set[str]] = defaultdict(set)
    for d in deliveries:
        if d.status == "sent":
            sent_by_step[d.step].add(d.customer_id)
    funnel = [FunnelStage(label="entered", customers=len({r.customer_id for r in entered}))]
    funnel += [
        FunnelStage(label=step.id, customers=len(sent_by_step[step.id]))
        for step in journey.steps
        if isinstance(step, SendStep)
    ]
    if journey.goal is not None:
        funnel.append(FunnelStage(label="goal", customers=len({r.customer_id for r in entered if r.goal_reached_at})))

    splits = []
    if journey.goal is not None:
        goal = journey.goal
        for step in journey.steps:
            if isinstance(step, SplitStep):
                assigned = _assignments(journey.name, step.id, runs, profiles)
                splits.append(_split_result(step, assigned, events, set(goal.events), goal.within, confidence))
    return JourneyReport(
        name=journey.name,
        description=journey.description,
        entered=len(entered),
        not_entered=len(runs) - len(entered),
        in_progress=[
            StepCount(step=s, count=n) for s, n in sorted(in_progress.items(), key=lambda i: step_order.get(i[0], -1))
        ],
        ended=[EndCount(status=s, reason=r, count=n) for (s, r), n in sorted(ended.items())],
        goal_conversions=goal_conversions,
        goal_window_days=journey.goal.within.total_seconds() / 86400 if journey.goal else None,
        sends=[
            SendCount(step=s, channel=c, status=st, reason=r, count=n)
            for (s, c, st, r), n in sorted(sends.items(), key=lambda i: (step_order.get(i[0][0], -1), str(i[0])))
        ],
        funnel=funnel,
        splits=splits,
    )


def _split_result(
    step: SplitStep,
    assigned: dict[str, tuple[str, datetime | None]],
    events: dict[str, list[tuple[datetime, str, dict[str, Any]]]],
    goal_events: set[str],
    within: timedelta,
    confidence: float,
) -> SplitResult:
    names = [v.name for v in step.split.variants] + (["holdout"] if step.split.holdout else [])
    counts = {name: [0, 0] for name in names}
    for customer, (variant, at) in assigned.items():
        if variant not in counts:
            continue
        counts[variant][0] += 1
        if at is not None and any(
            kind in goal_events and at < when <= at + within for when, kind, _ in events.get(customer, [])
        ):
            counts[variant][1] += 1
    holdout = counts.get("holdout")
    results = []
    for name in names:
        n, converted = counts[name]
        low, high = wilson_interval(converted, n, confidence)
        result = VariantResult(
            variant=name,
            customers=n,
            conversions=converted,
            rate=converted / n if n else 0.0,
            rate_low=low,
            rate_high=high,
        )
        if holdout is not None and name != "holdout" and n and holdout[0]:
            base = holdout[1] / holdout[0]
            result.lift = result.rate - base
            result.lift_low, result.lift_high = newcombe_interval(converted, n, holdout[1], holdout[0], confidence)
            result.relative_lift = result.rate / base - 1 if base else None
        results.append(result)
    return SplitResult(
        step=step.id,
        goal_events=sorted(goal_events),
        window_days=within.total_seconds() / 86400,
        confidence=confidence,
        variants=results,
    )


def _value(
    group: str,
    members: list[str],
    purchases: dict[str, list[tuple[datetime, float]]],
    since: dict[str, datetime | None],
) -> ValueRow:
    orders = revenue = 0.0
    buyers = 0
    gaps: list[float] = []
    for customer in members:
        start = since.get(customer)
        mine = [(at, amount) for at, amount in purchases.get(customer, []) if start is None or at > start]
        if mine:
            buyers += 1
        orders += len(mine)
        revenue += sum(amount for _, amount in mine)
        times = sorted(at for at, _ in mine)
        gaps += [(b - a).total_seconds() / 86400 for a, b in pairwise(times)]
    n = len(members)
    return ValueRow(
        group=group,
        customers=n,
        buyers=buyers,
        orders=int(orders),
        revenue=round(revenue, 2),
        orders_per_customer=orders / n if n else 0.0,
        revenue_per_customer=revenue / n if n else 0.0,
        median_days_between_purchases=median(gaps) if gaps else None,
    )


def _month(moment: datetime) -> tuple[int, int]:
    return moment.year, moment.month


def _cohorts(
    events: dict[str, list[tuple[datetime, str, dict[str, Any]]]],
    purchases: dict[str, list[tuple[datetime, float]]],
) -> list[CohortSeries]:
    """Customers grouped by the month of their first event; cumulative revenue per customer by month since."""
    members: dict[tuple[int, int], list[str]] = defaultdict(list)
    for customer, rows in events.items():
        if rows:
            members[_month(rows[0][0])].append(customer)
    if not members:
        return []
    last = max(_month(rows[-1][0]) for rows in events.values() if rows)
    series = []
    for (year, month), customers in sorted(members.items()):
        span = (last[0] - year) * 12 + last[1] - month + 1
        totals = [0.0] * span
        for customer in customers:
            for at, amount in purchases.get(customer, []):
                index = (at.year - year) * 12 + at.month - month
                if 0 <= index < span:
                    totals[index] += amount
        cumulative, running = [], 0.0
        for total in totals:
            running += total
            cumulative.append(round(running / len(customers), 2))
        series.append(
            CohortSeries(cohort=f"{year}-{month:02d}", customers=len(customers), revenue_per_customer=cumulative)
        )
    return series
