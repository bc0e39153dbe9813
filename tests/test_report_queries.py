"""The report's SQL at its edges, on SQLite and PostgreSQL: empty tables, a journey with no sends, one purchase,
values that are not numbers, instants to the microsecond, and conventions from the environment.

Rows are written straight into the tables (as the worker, the event API and ``refresh_runs`` write them), so
every case is exact and needs no Temporal server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from analytics import build_report
from analytics.report import Report
from runtime.settings import ReportSettings
from starter.catalog import load_catalog
from storage import make_engine
from storage.tables import Customer, Delivery, Event, JourneyRun
from testkit.harness import ROOT

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
CATALOG = load_catalog(ROOT / "journeys")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _rows(engine: Engine, model: type[SQLModel], *rows: dict[str, Any]) -> None:
    table: Table = model.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(insert(table), list(rows))


def event(customer: str, kind: str, at: datetime, properties: Any, number: list[int] = [0]) -> dict[str, Any]:  # noqa: B006
    number[0] += 1
    return {
        "event_id": f"e{number[0]}",
        "customer_id": customer,
        "type": kind,
        "properties": properties,
        "occurred_at": at,
        "recorded_at": at,
    }


def run(customer: str, status: str, **fields: Any) -> dict[str, Any]:
    journey = fields.pop("journey", "lifecycle")
    return {
        "workflow_id": f"journey/{journey}/{customer}",
        "journey": journey,
        "customer_id": customer,
        "status": status,
        "step": None,
        "end_reason": None,
        "entered_at": None,
        "goal_reached_at": None,
        "split_variants": {},
        "refreshed_at": T0,
        **fields,
    }


def send(customer: str, step: str, channel: str, status: str, reason: str | None = None) -> dict[str, Any]:
    key = f"lifecycle/{customer}/{step}"
    return {
        "idempotency_key": key,
        "channel": channel,
        "delivery_key": f"{key}#{channel}",
        "customer_id": customer,
        "journey": "lifecycle",
        "step": step,
        "template": step,
        "category": "transactional",
        "status": status,
        "reason": reason,
        "content": {},
    }


def welcome(variant: str) -> dict[str, str]:
    return {"welcome_split": variant}


def seed(engine: Engine) -> None:
    """Five customers in the lifecycle's welcome split, each at an edge of the conversion window or the value."""
    _rows(
        engine,
        Customer,
        {"id": "a", "traits": {"lifecycle_stage": "maintenance", "welcome_assigned_at": "2026-03-01T10:00:00.5+00:00"}},
        {"id": "b", "traits": {"lifecycle_stage": "", "welcome_assigned_at": "2026-03-01T12:00:00+02:00"}},
        {"id": "c", "traits": {"lifecycle_stage": "welcome", "welcome_assigned_at": "soon"}},
        {"id": "d", "traits": {"lifecycle_stage": "welcome"}},
        {"id": "e", "traits": {"lifecycle_stage": "welcome", "welcome_assigned_at": "2026-03-01T10:00:00"}},
        {"id": "profile-only", "traits": {"lifecycle_stage": "maintenance"}},
    )
    at_a = T0 + timedelta(seconds=0.5)
    _rows(
        engine,
        Event,
        event("a", "signed_up", T0, {}),
        event("a", "order_placed", at_a, {"amount": 30}),  # at the assignment: not after it
        event("a", "order_placed", at_a + timedelta(days=30), {"amount": 12.5}),  # the window's last microsecond
        event("b", "order_placed", T0 - timedelta(days=1), {"amount": 7}),  # before assignment
        event("b", "order_placed", T0 + timedelta(days=30) + US, {"amount": "12"}),  # a string is no value
        event("c", "order_placed", T0 + timedelta(days=1), {"amount": True}),  # nor is a boolean
        event("d", "order_placed", T0 + timedelta(days=40), {}),
        event("e", "order_placed", T0 + timedelta(days=1), {"amount": 5}),
        event("e", "app_opened", T0 + timedelta(days=62), {}),
    )
    _rows(
        engine,
        JourneyRun,
        run(
            "a",
            "waiting",
            step="welcome_holdout_wait",
            entered_at=T0,
            goal_reached_at=at_a,
            split_variants=welcome("standard"),
        ),
        run("b", "completed", entered_at=T0, split_variants=welcome("standard")),
        run("c", "exited", entered_at=T0, end_reason="exit event account_closed", split_variants=welcome("offer")),
        run("d", "waiting", step=None, split_variants=welcome("holdout")),
        run("e", "cooldown", entered_at=T0, split_variants=welcome("offer")),
        run("x", "not_entered"),
        run("a", "entering", journey="order_updates", step=""),
    )
    _rows(
        engine,
        Delivery,
        send("a", "welcome_message", "email", "sent"),
        send("b", "welcome_message", "email", "sent"),
        send("a", "welcome_app_invite", "sms", "suppressed", "consent"),
        send("c", "welcome_message", "email", "failed"),
    )


def test_empty_tables_make_an_empty_report(engine: Engine) -> None:
    report = build_report(engine, CATALOG)
    assert (report.events, report.value_by_stage, report.value_by_variant, report.cohorts) == ({}, [], [], [])
    lifecycle = next(j for j in report.journeys if j.name == "lifecycle")
    assert (lifecycle.entered, lifecycle.not_entered, lifecycle.goal_conversions, lifecycle.sends) == (0, 0, 0, [])
    assert {f.label: f.customers for f in lifecycle.funnel}["entered"] == 0
    welcome_split = lifecycle.splits[0]
    assert [(v.variant, v.customers, v.lift) for v in welcome_split.variants] == [
        ("standard", 0, None),
        ("offer", 0, None),
        ("holdout", 0, None),
    ]


def test_runs_sends_and_splits_at_their_edges(engine: Engine) -> None:
    seed(engine)
    report = build_report(engine, CATALOG)
    journeys = {j.name: j for j in report.journeys}
    lifecycle = journeys["lifecycle"]
    assert (lifecycle.entered, lifecycle.not_entered, lifecycle.goal_conversions) == (5, 1, 1)
    assert [(s.step, s.count) for s in lifecycle.in_progress] == [("-", 1), ("welcome_holdout_wait", 1)]
    assert [(e.status, e.reason, e.count) for e in lifecycle.ended] == [
        ("completed", "", 1),
        ("cooldown", "", 1),
        ("exited", "exit event account_closed", 1),
    ]
    assert [(s.step, s.channel, s.status, s.reason, s.count) for s in lifecycle.sends] == [
        ("welcome_message", "email", "failed", None, 1),
        ("welcome_message", "email", "sent", None, 2),
        ("welcome_app_invite", "sms", "suppressed", "consent", 1),
    ]
    funnel = {f.label: f.customers for f in lifecycle.funnel}
    assert (funnel["entered"], funnel["welcome_message"], funnel["welcome_app_invite"], funnel["goal"]) == (5, 2, 0, 1)

    # A journey with runs and no sends: its send steps show zero, it is not left out.
    orders = journeys["order_updates"]
    assert [(s.step, s.count) for s in orders.in_progress] == [("-", 1)]
    assert orders.sends == [] and all(f.customers == 0 for f in orders.funnel if f.label != "entered")

    # a: an order at the assignment instant is not after it; one at exactly the window's end is in it.
    # b: assigned at 10:00 UTC (+02:00 read), its order a microsecond past the window. c: no instant in the
    # profile, so from entry. d: no instant at all: counted, never converted. e: a naive instant is UTC.
    split = {v.variant: (v.customers, v.conversions) for v in lifecycle.splits[0].variants}
    assert split == {"standard": (2, 1), "offer": (2, 2), "holdout": (1, 0)}


def test_customer_value_counts_numbers_only_and_one_purchase_has_no_gap(engine: Engine) -> None:
    seed(engine)
    report = build_report(engine, CATALOG)
    stages = {v.group: v for v in report.value_by_stage}
    assert set(stages) == {"maintenance", "unknown", "welcome"}
    maintenance = stages["maintenance"]  # a (two orders, 30 days apart) and a profile with no events
    assert (maintenance.customers, maintenance.buyers, maintenance.orders, maintenance.revenue) == (2, 1, 2, 42.5)
    assert maintenance.median_days_between_purchases == pytest.approx(30.0, abs=1e-9)
    unknown = stages["unknown"]  # b: an empty stage; "12" counts as an order worth nothing
    assert (unknown.customers, unknown.orders, unknown.revenue) == (1, 2, 7.0)
    assert unknown.median_days_between_purchases == pytest.approx(31 + 1 / 86_400e6, abs=1e-12)  # to the µs
    welcome = stages["welcome"]  # c (true: no value), d (no amount), e (5): one purchase each, so no gap
    assert (welcome.customers, welcome.buyers, welcome.orders, welcome.revenue) == (3, 3, 3, 5.0)
    assert welcome.median_days_between_purchases is None

    variants = {v.group.removeprefix("lifecycle.welcome_split: "): v for v in report.value_by_variant}
    assert list(variants) == ["offer", "standard", "holdout"]
    # After assignment only: a's order at the assignment instant is not, b's order of the day before is not;
    # d has no assignment instant, so all its purchases count.
    assert (variants["standard"].orders, variants["standard"].revenue) == (2, 12.5)
    assert (variants["offer"].orders, variants["offer"].revenue, variants["offer"].buyers) == (2, 5.0, 2)
    assert (variants["holdout"].orders, variants["holdout"].buyers) == (1, 1)

    # By the month of each customer's first event (b's in February, d's in April), up to the last event's (May).
    assert {c.cohort: (c.customers, c.revenue_per_customer) for c in report.cohorts} == {
        "2026-02": (1, [7.0, 7.0, 7.0, 7.0]),
        "2026-03": (3, [15.83, 15.83, 15.83]),
        "2026-04": (1, [0.0, 0.0]),
    }
    assert report.events == {"app_opened": 1, "order_placed": 7, "signed_up": 1}


def test_json_null_properties_count_as_an_order_of_no_value(engine: Engine) -> None:
    _rows(engine, Event, event("n", "order_placed", T0, None))
    report = build_report(engine, CATALOG)
    (unknown,) = report.value_by_stage
    assert (unknown.customers, unknown.buyers, unknown.orders, unknown.revenue) == (1, 1, 1, 0.0)
    assert unknown.median_days_between_purchases is None


def test_purchase_events_value_and_stage_come_from_settings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _rows(
        engine,
        Customer,
        {"id": "s", "traits": {"tier": "gold", "lifecycle_stage": "welcome"}},
    )
    _rows(
        engine,
        Event,
        event("s", "order_placed", T0, {"amount": 100}),
        event("s", "checkout_completed", T0 + timedelta(days=2), {"total": 20, "amount": 1}),
        event("s", "subscription_renewed", T0 + timedelta(days=6), {"total": 5}),
    )
    monkeypatch.setenv("JOURNEYS_REPORT_PURCHASE_EVENTS", "checkout_completed, subscription_renewed")
    monkeypatch.setenv("JOURNEYS_REPORT_VALUE_PROPERTY", "total")
    monkeypatch.setenv("JOURNEYS_REPORT_STAGE_TRAIT", "tier")
    report: Report = build_report(engine, CATALOG)
    (gold,) = report.value_by_stage
    assert (gold.group, gold.orders, gold.revenue, gold.median_days_between_purchases) == ("gold", 2, 25.0, 4.0)

    explicit = ReportSettings(purchase_events="order_placed", value_property="amount", stage_trait="lifecycle_stage")
    explicit_report = build_report(engine, CATALOG, settings=explicit)
    (welcome,) = explicit_report.value_by_stage
    assert (welcome.group, welcome.orders, welcome.revenue) == ("welcome", 1, 100.0)


def test_report_settings_refuse_what_they_cannot_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_REPORT_PURCHASE_EVENTS", " , ")
    with pytest.raises(ValueError, match="JOURNEYS_REPORT_PURCHASE_EVENTS: name at least one event type"):
        ReportSettings()
    monkeypatch.delenv("JOURNEYS_REPORT_PURCHASE_EVENTS")
    monkeypatch.setenv("JOURNEYS_REPORT_VALUE_PROPERTY", 'amount"); drop table event; --')
    with pytest.raises(ValueError, match=r"JOURNEYS_REPORT_VALUE_PROPERTY: .* is not a name"):
        ReportSettings()
    monkeypatch.delenv("JOURNEYS_REPORT_VALUE_PROPERTY")
    assert ReportSettings(assignment_trait="{split}_since").assignment_trait_of("rescue_split") == "rescue_since"
