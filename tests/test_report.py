"""``journeys report``: numbers from real journeys on the time-skipping server, and the page in a real browser."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from analytics import build_report, newcombe_interval, record_event, refresh_runs, render_html, wilson_interval
from analytics.api import ReportContext, report_router
from analytics.report import Report
from contracts.events import JourneyEvent
from starter import cli
from starter.catalog import load_catalog, load_plan
from storage import make_engine
from storage.tables import Event
from testkit.harness import ROOT, Journeys, running_journeys
from tests.browser import CHROMIUM_FLAGS, chromium
from tests.test_lifecycle import CONTACT, customer_for, daytime_zone

# ------------------------------------------------------------------------------------------------ statistics


def test_wilson_and_newcombe_match_newcombe_1998() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, table II, method 10, examples (a) and (h)."""
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = newcombe_interval(9, 10, 3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1705, 0.8090)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and round(high, 4) == 0.2775
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(3, 2)


# ------------------------------------------------------------------------------------------------ a small world


async def track(j: Journeys, env: WorkflowEnvironment, customer_id: str, type: str, **properties: Any) -> None:
    """What a backend's event does: recorded for analytics (at the server's time), then routed to journeys."""
    event = JourneyEvent(id=uuid.uuid4().hex, type=type, properties=properties)
    assert await asyncio.to_thread(record_event, j.engine, customer_id, event, at=await env.get_current_time())
    routed = await j.journeys.send_event(customer_id, event)
    # Left running on this test's task queue, they would hold the shared time-skipping clock in later tests.
    j.started |= {r.workflow_id for r in routed if r.workflow_id and r.action == "started_or_signalled"}


async def seed(j: Journeys, env: WorkflowEnvironment) -> dict[str, list[str]]:
    """Six sign-ups (two per welcome variant), one buyer per variant, one customer not opted in to alerts."""
    now = await env.get_current_time()
    people = {v: [customer_for("welcome_split", v) for _ in range(2)] for v in ("standard", "offer", "holdout")}
    for group in people.values():
        for c in group:
            j.add_customer(c, timezone=daytime_zone(now), **CONTACT)
            await track(j, env, c, "signed_up")
    j.add_customer("no-alerts", **CONTACT)
    await track(j, env, "no-alerts", "spending_limit_near", percent_used=91)
    for group in people.values():
        for c in group:
            await j.settled("lifecycle", c)
    await env.sleep(timedelta(days=10))
    await track(j, env, people["standard"][0], "order_placed", order_id="o1", amount=50)
    await track(j, env, people["holdout"][0], "order_placed", order_id="o2", amount=30)
    await track(j, env, people["offer"][0], "order_placed", order_id="o3", amount=20)
    await track(j, env, people["offer"][0], "order_placed", order_id="o4", amount=40)
    buyer = people["offer"][0]
    await j.settled("lifecycle", buyer, until=lambda s: s.vars.get("purchases") == 2 and s.status == "waiting")
    await env.sleep(timedelta(days=1))
    for group in people.values():
        for c in group:
            await j.settled("lifecycle", c)
    return people


async def test_report_counts_entries_steps_sends_splits_and_value(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        people = await seed(j, time_env)
        # A retried event is recorded once, as it has effect once.
        with Session(j.engine) as session:
            first = session.exec(select(Event)).first()
            assert first is not None
        again = JourneyEvent(id=first.event_id, type=first.type, properties=first.properties)
        assert not record_event(j.engine, first.customer_id, again)

        assert await refresh_runs(j.client, j.engine, j.catalog) >= 6 + 6 + 4 + 1
        report = build_report(j.engine, j.catalog)

    by_name = {r.name: r for r in report.journeys}
    lifecycle = by_name["lifecycle"]
    assert (lifecycle.entered, lifecycle.not_entered, lifecycle.goal_conversions) == (6, 0, 3)
    assert {s.step: s.count for s in lifecycle.in_progress} == {
        "welcome_holdout_wait": 1,
        "welcome_wait_onboarding_offer": 2,
        "maintenance_after_purchase": 3,
    }
    funnel = {f.label: f.customers for f in lifecycle.funnel}
    assert (funnel["entered"], funnel["welcome_message"], funnel["welcome_app_invite"], funnel["goal"]) == (6, 6, 4, 3)
    assert (funnel["welcome_onboarding_tips"], funnel["welcome_onboarding_offer"]) == (4, 0)  # day 7, not yet day 14
    sends = {(s.step, s.channel, s.status): s.count for s in lifecycle.sends}
    assert sends[("welcome_message", "email", "sent")] == 6
    assert sends[("welcome_app_invite", "sms", "sent")] == 4

    splits = {s.step: s for s in lifecycle.splits}
    assert [v.customers for v in splits["rescue_split"].variants] == [0, 0, 0]  # nobody is at risk yet
    split = splits["welcome_split"]
    variants = {v.variant: v for v in split.variants}
    assert {k: (v.customers, v.conversions) for k, v in variants.items()} == {
        "standard": (2, 1),
        "offer": (2, 1),
        "holdout": (2, 1),
    }
    offer = variants["offer"]
    assert offer.rate == 0.5 and offer.lift == 0.0 and offer.relative_lift == 0.0
    assert (offer.lift_low, offer.lift_high) == newcombe_interval(1, 2, 1, 2)
    assert (offer.rate_low, offer.rate_high) == wilson_interval(1, 2)
    assert variants["holdout"].lift is None

    spending = by_name["spending_limit"]
    assert (spending.entered, spending.not_entered) == (0, 1)
    orders = by_name["order_updates"]
    assert orders.entered == 4
    assert {s.step: s.count for s in orders.in_progress} == {"await_shipment": 4}

    stages = {v.group: v for v in report.value_by_stage}
    assert (stages["maintenance"].customers, stages["maintenance"].orders, stages["maintenance"].revenue) == (3, 4, 140)
    assert stages["maintenance"].median_days_between_purchases == pytest.approx(0, abs=0.01)
    assert (stages["welcome"].customers, stages["welcome"].orders) == (3, 0)
    variants_value = {v.group: v for v in report.value_by_variant}
    offer_value = variants_value["lifecycle.welcome_split: offer"]
    assert (offer_value.customers, offer_value.buyers, offer_value.revenue_per_customer) == (2, 1, 30)
    assert variants_value["lifecycle.welcome_split: holdout"].revenue == 30
    (cohort,) = report.cohorts
    assert cohort.customers == 7 and cohort.revenue_per_customer[-1] == round(140 / 7, 2)
    assert report.events["order_placed"] == 4
    assert set(people) == {"standard", "offer", "holdout"}


# ------------------------------------------------------------------------------------------------ the page in a browser


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def test_report_page_renders_funnels_and_cohorts_in_chromium(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    chromium()  # fail first, with the install line, when the browser is missing
    async with running_journeys(time_env.client, tmp_path / "db", task_queue, database_url=database_url) as j:
        await seed(j, time_env)
        await refresh_runs(j.client, j.engine, j.catalog)
        report = build_report(j.engine, j.catalog)
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    Report.model_validate_json(report.model_dump_json())  # the API's JSON is the same model

    dom = (await asyncio.to_thread(browse, page, tmp_path / "profile", "--dump-dom")).stdout
    assert "<title>Journeys report</title>" in dom
    funnels = re.findall(r'<svg class="funnel" data-journey="([a-z_]+)"', dom)
    assert set(funnels) == {j_.name for j_ in report.journeys}
    lifecycle = dom[dom.index('data-journey="lifecycle"') :]
    assert re.search(r'data-stage="entered" data-count="6"', lifecycle)
    assert re.search(r'data-stage="goal" data-count="3"', lifecycle)
    assert len(re.findall(r'<polyline class="cohort"', dom)) == len(report.cohorts) == 1
    assert "Newcombe" in dom and "lift vs holdout" in dom

    shot = tmp_path / "report.png"
    await asyncio.to_thread(
        browse, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars"
    )
    width, height = png_size(shot.read_bytes())
    assert (width, height) == (1200, 2400)
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    (tmp_path / "report.json").write_text(json.dumps(report.model_dump(mode="json")), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ the command


def test_report_command_writes_the_page_and_prints_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_DATA_DIR", str(tmp_path))
    engine = make_engine(database_url)
    for number, amount in enumerate((12.5, 7.5)):
        event = JourneyEvent(
            id=f"e{number}", type="order_placed", properties={"order_id": f"o{number}", "amount": amount}
        )
        record_event(engine, "c1", event)
    engine.dispose()

    assert cli.main(["report", "--no-refresh", "--json"]) == 0
    out = capsys.readouterr()
    report = Report.model_validate_json(out.out)
    assert report.events == {"order_placed": 2}
    (unknown,) = report.value_by_stage
    assert (unknown.group, unknown.orders, unknown.revenue) == ("unknown", 2, 20.0)
    assert "report written to" in out.err
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")


async def test_report_router_serves_json_and_the_page(database_url: str) -> None:
    engine = make_engine(database_url)
    record_event(engine, "c1", JourneyEvent(id="e1", type="signed_up"))
    app = FastAPI()
    catalog = load_catalog(ROOT / "journeys")
    context = ReportContext(engine, catalog, plan=load_plan(ROOT / "journeys", catalog))
    app.include_router(report_router(lambda: context))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://journeys") as http:
        data = (await http.get("/v1/report")).json()
        page = await http.get("/v1/report.html")
    engine.dispose()
    assert data["events"] == {"signed_up": 1}
    counted = {t["type"]: t for t in data["event_contract"]["types"]}
    assert (counted["signed_up"]["declared"], counted["signed_up"]["accepted"]) == (True, 1)
    assert {j["name"] for j in data["journeys"]} >= {"lifecycle", "order_updates"}
    assert page.headers["content-type"].startswith("text/html") and 'class="funnel"' in page.text
