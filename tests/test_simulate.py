"""``journeys simulate``: a small population over two months, through the real journeys, into the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from temporalio.testing import WorkflowEnvironment

from analytics import build_report, refresh_runs
from starter.cli import main
from starter.simulation import SimulationConfig, simulate
from storage.tables import Customer, Delivery, Event
from testkit.harness import running_journeys


async def test_simulated_population_runs_the_journeys_and_fills_the_report(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    config = SimulationConfig(customers=30, days=75, seed=3)
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        result = await simulate(time_env, j.journeys, j.engine, config)
        j.started |= result.workflow_ids  # ended with the test, as the harness does with its own
        await refresh_runs(j.client, j.engine, j.catalog)
        report = build_report(j.engine, j.catalog)
        with Session(j.engine) as session:
            assert session.exec(select(func.count()).select_from(Customer)).one() == 30
            events = session.exec(select(func.count()).select_from(Event)).one()
            signups = session.exec(select(func.count()).select_from(Event).where(Event.type == "signed_up")).one()
            sent = session.exec(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")).one()

    assert result.customers == 30 and result.events == events and result.orders > 0
    assert 0 < signups <= 30  # sign-ups spread over the first three quarters of the period
    assert 0 < sent <= result.messages  # the rest suppressed (caps, consent) or failed
    journeys = {r.name: r for r in report.journeys}
    lifecycle = journeys["lifecycle"]
    assert lifecycle.entered == signups
    assert sum(s.count for s in lifecycle.in_progress) == lifecycle.entered  # a lifecycle never ends by itself
    assert journeys["order_updates"].entered == result.orders
    welcome = next(s for s in lifecycle.splits if s.step == "welcome_split")
    assert sum(v.customers for v in welcome.variants) == signups
    stages = {row.group for row in report.value_by_stage}
    assert stages <= {"welcome", "maintenance", "rescue", "lost", "welcome_back", "unknown"}
    assert sum(row.orders for row in report.value_by_stage) == result.orders
    assert report.cohorts and all(c.customers > 0 for c in report.cohorts)


def test_simulate_rejects_a_bad_population_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--customers", "0", "--days", "10"]) == 2
    assert capsys.readouterr().err.startswith("journeys simulate: --customers: ")
