"""The report: per journey and step what happened, per split whether it worked, per group what customers are worth.

Everything is read from the database: events (:class:`~storage.tables.Event`), the delivery ledger
(:class:`~storage.tables.Delivery`), profiles, and the journeys' last known states
(:class:`~storage.tables.JourneyRun`, refreshed by :func:`analytics.collect.refresh_runs`). The database does
the counting (:mod:`analytics.aggregates`); what comes back is one row per journey, step, variant, stage or
month, so the report needs the same memory for a thousand events as for millions.

Definitions (also in docs/analytics.md):

- *Entered*: runs that passed their entry condition; *in progress*: runs waiting or acting, by step;
  *ended*: by status and reason.
- *Goal conversion*: the engine's own mark, a goal event within the map's window of entry.
- *Split conversion*: a goal event of the map within its window after the customer was assigned. The moment of
  assignment is the profile trait named by ``JOURNEYS_REPORT_ASSIGNMENT_TRAIT`` (default
  ``<split without _split>_assigned_at``) when the map writes it (the lifecycle does), else the entry. Each
  variant is compared with the holdout: absolute lift with Newcombe's interval, relative lift as a ratio.
- *Customer value*: from purchase events (``JOURNEYS_REPORT_PURCHASE_EVENTS``, default ``order_placed``; value
  in ``JOURNEYS_REPORT_VALUE_PROPERTY``, default ``amount``): orders and revenue per customer, and the median
  days between a customer's consecutive purchases; by current lifecycle stage (the trait
  ``JOURNEYS_REPORT_STAGE_TRAIT``, default ``lifecycle_stage``), and by split variant counting only purchases
  after assignment.
- *Customer value by RFM group*: for each customer value defined in ``journeys/scores/`` (``audiences.scores``),
  the customers in each RFM group (champions ... lost) now, their revenue and revenue per customer, and their
  share of all customers with a purchase; grouped twice by the database (``audiences.scoring.value_by_group``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Subquery
from sqlalchemy.engine import Engine

from analytics import aggregates
from analytics.aggregates import Cohorts, Conventions, RunCounts, Value
from analytics.event_counts import EventCounts
from analytics.stats import newcombe_interval, wilson_interval
from audiences.scores import CustomerValue, ScoreDefinition
from audiences.scoring import value_by_group
from journeymap import JourneyMap
from journeymap.steps.send import SendStep
from journeymap.steps.split import SplitStep
from runtime.settings import ReportSettings


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


class RfmGroupRow(BaseModel):
    score: str
    """The customer value definition (``journeys/scores/<name>.yaml``)."""
    group: str
    customers: int
    share: float
    """Of the customers with a purchase (counted by this definition)."""
    revenue: float
    revenue_per_customer: float


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
    value_by_rfm: list[RfmGroupRow] = Field(default_factory=list)
    events: dict[str, int] = Field(default_factory=dict)
    event_contract: EventCounts | None = None
    """Events received by type against the tracking plan (``analytics.event_counts``), when the caller adds it."""


def conventions_from(settings: ReportSettings) -> Conventions:
    return Conventions(
        purchase_events=settings.purchase_event_types(),
        value_property=settings.value_property,
        stage_trait=settings.stage_trait,
    )


def build_report(
    engine: Engine,
    catalog: dict[str, JourneyMap],
    *,
    confidence: float = 0.95,
    settings: ReportSettings | None = None,
    scores: Mapping[str, ScoreDefinition] | None = None,
) -> Report:
    """The whole report, counted by the database; ``settings`` default to the ``JOURNEYS_REPORT_*`` variables;
    each customer value among ``scores`` adds its RFM groups."""
    settings = settings or ReportSettings()
    conventions = conventions_from(settings)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for every figure, and naive instants (stored, or in profiles) read as UTC.
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        report = _build(connection, catalog, confidence, settings, conventions)
        values = [s for _, s in sorted((scores or {}).items()) if isinstance(s, CustomerValue)]
        rows = [row for value in values for row in _rfm_rows(connection, value, report.generated_at)]
        return report.model_copy(update={"value_by_rfm": rows})


def _rfm_rows(connection: Connection, value: CustomerValue, now: datetime) -> list[RfmGroupRow]:
    found = value_by_group(connection, value, now)
    everyone = sum(customers for _, customers, _ in found)
    return [
        RfmGroupRow(
            score=value.name,
            group=group,
            customers=customers,
            share=customers / everyone,
            revenue=round(money, 2),
            revenue_per_customer=round(money / customers, 2),
        )
        for group, customers, money in found
    ]


def _build(
    connection: Connection,
    catalog: dict[str, JourneyMap],
    confidence: float,
    settings: ReportSettings,
    conventions: Conventions,
) -> Report:
    runs = aggregates.run_counts(connection)
    sends = aggregates.send_counts(connection)
    sent = aggregates.sent_customers(connection)
    journeys: list[JourneyReport] = []
    variant_groups = []
    for journey in sorted(catalog.values(), key=lambda j: j.name):
        splits = []
        for step in _split_steps(journey) if journey.goal is not None else []:
            assigned = aggregates.assignments(journey.name, step.id, settings.assignment_trait_of(step.id))
            splits.append(_split_result(connection, journey, step, assigned, confidence))
            variant_groups.append((f"{journey.name}.{step.id}: ", assigned))
        journeys.append(_journey_report(journey, runs.get(journey.name, RunCounts()), sends, sent, splits))

    by_stage = aggregates.value_by_group(connection, aggregates.stage_members(conventions), conventions)
    value_by_variant = []
    members = aggregates.variant_members(variant_groups)
    if members is not None:
        by_variant = aggregates.value_by_group(connection, members, conventions)
        for prefix, _ in variant_groups:
            mine = sorted(
                (group.removeprefix(prefix) for group in by_variant if group.startswith(prefix)),
                key=lambda v: (v == "holdout", v),
            )
            value_by_variant += [_value_row(prefix + variant, by_variant[prefix + variant]) for variant in mine]
    return Report(
        generated_at=datetime.now(UTC),
        journeys=journeys,
        value_by_stage=[_value_row(stage, value) for stage, value in sorted(by_stage.items())],
        value_by_variant=value_by_variant,
        cohorts=_cohort_series(aggregates.cohorts(connection, conventions)),
        events=dict(sorted(aggregates.event_counts(connection).items())),
    )


def _split_steps(journey: JourneyMap) -> list[SplitStep]:
    return [step for step in journey.steps if isinstance(step, SplitStep)]


def _journey_report(
    journey: JourneyMap,
    runs: RunCounts,
    sends: dict[str, list[tuple[str, str, str, str | None, int]]],
    sent: dict[tuple[str, str], int],
    splits: list[SplitResult],
) -> JourneyReport:
    step_order = {step.id: index for index, step in enumerate(journey.steps)}
    funnel = [FunnelStage(label="entered", customers=runs.entered_customers)]
    funnel += [
        FunnelStage(label=step.id, customers=sent.get((journey.name, step.id), 0))
        for step in journey.steps
        if isinstance(step, SendStep)
    ]
    if journey.goal is not None:
        funnel.append(FunnelStage(label="goal", customers=runs.goal_customers))
    return JourneyReport(
        name=journey.name,
        description=journey.description,
        entered=runs.entered,
        not_entered=runs.not_entered,
        in_progress=[
            StepCount(step=s, count=n)
            for s, n in sorted(runs.in_progress.items(), key=lambda i: (step_order.get(i[0], -1), i[0]))
        ],
        ended=[EndCount(status=s, reason=r, count=n) for (s, r), n in sorted(runs.ended.items())],
        goal_conversions=runs.goal_conversions,
        goal_window_days=journey.goal.within.total_seconds() / 86400 if journey.goal else None,
        sends=[
            SendCount(step=s, channel=c, status=st, reason=r, count=n)
            for s, c, st, r, n in sorted(
                sends.get(journey.name, []), key=lambda i: (step_order.get(i[0], -1), str(i[:4]))
            )
        ],
        funnel=funnel,
        splits=splits,
    )


def _split_result(
    connection: Connection,
    journey: JourneyMap,
    step: SplitStep,
    assigned: Subquery,
    confidence: float,
) -> SplitResult:
    assert journey.goal is not None
    goal_events, within = sorted(set(journey.goal.events)), journey.goal.within
    names = [v.name for v in step.split.variants] + (["holdout"] if step.split.holdout else [])
    found = aggregates.split_conversions(connection, assigned, goal_events, within // timedelta(microseconds=1))
    counts = {name: found.get(name, (0, 0)) for name in names}
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
        goal_events=goal_events,
        window_days=within.total_seconds() / 86400,
        confidence=confidence,
        variants=results,
    )


def _value_row(group: str, value: Value) -> ValueRow:
    n = value.customers
    return ValueRow(
        group=group,
        customers=n,
        buyers=value.buyers,
        orders=value.orders,
        revenue=round(value.revenue, 2),
        orders_per_customer=value.orders / n if n else 0.0,
        revenue_per_customer=value.revenue / n if n else 0.0,
        median_days_between_purchases=value.median_days_between_purchases,
    )


def _cohort_series(cohorts: Cohorts) -> list[CohortSeries]:
    """Customers grouped by the month of their first event; cumulative revenue per customer by month since."""
    if cohorts.last_month is None:
        return []
    series = []
    for month, customers in sorted(cohorts.sizes.items()):
        running, cumulative = 0.0, []
        for since in range(cohorts.last_month - month + 1):
            running += cohorts.revenue.get((month, since), 0.0)
            cumulative.append(round(running / customers, 2))
        year, index = divmod(month, 12)
        series.append(
            CohortSeries(cohort=f"{year}-{index + 1:02d}", customers=customers, revenue_per_customer=cumulative)
        )
    return series
