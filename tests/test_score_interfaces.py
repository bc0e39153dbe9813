"""What people use to look at scores: ``journeys score CUSTOMER`` (event by event), ``journeys validate`` on score
files, ``GET /v1/customers/{id}/scores``, and the report's customer value by RFM group."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from temporalio.testing import WorkflowEnvironment

from analytics import build_report, render_html
from audiences.definitions import load_segments
from audiences.membership import Audiences
from audiences.scores import load_scores
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.client import JourneyClient
from storage import make_engine
from storage.tables import Customer, Event
from testkit.harness import ROOT

NOW = datetime.now(UTC).replace(microsecond=0)
AT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
SCORES = {
    "lead_score": "name: lead_score\nhalf_life: 10d\nevents:\n"
    "  - {event: demo_requested, points: 40}\n"
    "  - {event: pricing_viewed, points: 10}\n"
    "traits:\n  - {trait: company_size, at_least: 50, points: 20}\n",
    "customer_value": "name: customer_value\nrfm: {purchase: order_placed, value: amount}\n",
}
EVENTS = [
    ("ann", "demo_requested", 10, {}),
    ("ann", "pricing_viewed", 0, {}),
    ("ann", "order_placed", 1, {"amount": 30}),
    ("bob", "order_placed", 400, {"amount": 10}),
]


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Engine]]:
    folder = tmp_path / "journeys"
    (folder / "scores").mkdir(parents=True)
    (folder / "segments").mkdir()
    for name, text in SCORES.items():
        (folder / "scores" / f"{name}.yaml").write_text(text)
    (folder / "segments" / "hot.yaml").write_text("name: hot\nwhere: {score: lead_score, at_least: 50}\n")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [
                {"id": "ann", "traits": {"company_size": 80}, "updated_at": NOW},
                {"id": "bob", "traits": {}, "updated_at": NOW},
            ],
        )
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": f"e{i}",
                    "customer_id": who,
                    "type": kind,
                    "properties": properties,
                    "occurred_at": NOW - timedelta(days=days),
                    "recorded_at": NOW,
                }
                for i, (who, kind, days, properties) in enumerate(EVENTS)
            ],
        )
    try:
        yield folder, engine
    finally:
        engine.dispose()


def _journeys(folder: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYS_JOURNEYS_DIR": str(folder),
        "JOURNEYS_DATABASE_URL": database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args], capture_output=True, text=True, env=env, check=False
    )


def _stamp(days: int) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_journeys_score_explains_a_customer_event_by_event(deployment: tuple[Path, Engine], database_url: str) -> None:
    folder, _ = deployment
    done = _journeys(folder, database_url, "score", "ann", "--at", AT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ann at {AT} (computed in ")
    assert lines[1:] == [
        f"customer_value: new (recency 5, frequency 1, monetary 1; 1 purchases, 30.00 in all, the last {_stamp(1)})",
        "lead_score: 50.00 (halving every 10d)",
        "  when                  event             points       now",
        f"  {_stamp(10)}  demo_requested     40.00     20.00",
        f"  {_stamp(0)}  pricing_viewed     10.00     10.00",
        "  trait company_size at least 50.0: +20.00",
        "  total 50.00",
    ]
    only = _journeys(folder, database_url, "score", "bob", "--at", AT, "--score", "lead_score")
    assert only.stdout.splitlines()[1:] == [
        "lead_score: 0.00 (halving every 10d)",
        "  no event earned points",
        "  total 0.00",
    ]


def test_journeys_score_refuses_bad_input_in_one_line(
    deployment: tuple[Path, Engine], database_url: str, tmp_path: Path
) -> None:
    folder, _ = deployment
    nobody = _journeys(folder, database_url, "score", "zed")
    assert (nobody.returncode, nobody.stderr) == (2, "journeys score: no customer 'zed': no profile and no event\n")
    typo = _journeys(folder, database_url, "score", "ann", "--score", "lead_scor")
    assert (typo.returncode, typo.stderr) == (
        2,
        f"journeys score: no score 'lead_scor' in {folder / 'scores'} (did you mean 'lead_score'?)\n",
    )
    when = _journeys(folder, database_url, "score", "ann", "--at", "yesterday")
    assert when.returncode == 2 and "'yesterday' is not a date or date-time" in when.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _journeys(empty, database_url, "score", "ann")
    assert (none.returncode, none.stderr) == (
        2,
        f"journeys score: no scores defined in {empty / 'scores'} (docs/audiences.md: lead scores and customer "
        "value)\n",
    )


def test_journeys_validate_checks_score_files(deployment: tuple[Path, Engine], database_url: str) -> None:
    folder, _ = deployment
    good = _journeys(folder, database_url, "validate", *sorted(str(p) for p in (folder / "scores").glob("*.yaml")))
    assert good.returncode == 0, good.stderr
    assert good.stdout == (
        "customer_value.yaml: ok (customer value (RFM) of order_placed.amount)\n"
        "lead_score.yaml: ok (lead score: 2 event rules, 1 trait rules, halving every 10d)\n"
    )
    (folder / "scores" / "lead_score.yaml").write_text("name: lead_score\nhalf_life: 10d\nevents: [{evnt: x}]\n")
    bad = _journeys(folder, database_url, "validate", str(folder / "scores" / "lead_score.yaml"))
    assert bad.returncode == 1
    assert "lead_score.yaml: events[0].evnt: unknown field 'evnt' (did you mean 'event'?)" in bad.stderr.splitlines()
    # The segment reading the broken score is refused too: its score is unknown now.
    reader = _journeys(folder, database_url, "validate", str(folder / "segments" / "hot.yaml"))
    assert (reader.returncode, reader.stderr) == (1, "hot.yaml: where.score: unknown score 'lead_score'\n")


async def test_the_api_explains_a_customers_scores(
    deployment: tuple[Path, Engine], time_env: WorkflowEnvironment
) -> None:
    folder, engine = deployment
    scores = load_scores(folder / "scores")
    services = ApiServices(
        JourneyClient(time_env.client, {}),
        engine,
        audiences=Audiences(load_segments(folder / "segments", scores=scores)),
        scores=scores,
    )
    app = create_app(Settings(api_keys="k", journeys_dir=folder), services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        found = (await http.get("/v1/customers/ann/scores", auth=("k", ""))).json()
        assert found["customer_id"] == "ann"
        [lead] = found["lead_scores"]
        assert lead["name"] == "lead_score"
        assert lead["total"] == pytest.approx(50.0, rel=1e-3)  # a few milliseconds of decay since NOW
        earned = [(e["type"], e["points"]) for e in lead["events"]]
        assert earned == [("demo_requested", 40.0), ("pricing_viewed", 10.0)]
        assert lead["events"][0]["decayed"] == pytest.approx(20.0, rel=1e-3)
        assert lead["traits"] == [{"trait": "company_size", "rule": "at least 50.0", "points": 20.0}]
        [value] = found["customer_values"]
        assert {k: value[k] for k in ("name", "group", "recency", "frequency", "monetary", "purchases", "value")} == {
            "name": "customer_value",
            "group": "new",
            "recency": 5,
            "frequency": 1,
            "monetary": 1,
            "purchases": 1,
            "value": 30.0,
        }
        missing = await http.get("/v1/customers/zed/scores", auth=("k", ""))
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["message"] == "no customer 'zed': no profile and no event"
        assert (await http.get("/v1/customers/ann/scores")).status_code == 401


def test_the_report_shows_customer_value_by_rfm_group(deployment: tuple[Path, Engine]) -> None:
    folder, engine = deployment
    report = build_report(engine, {}, scores=load_scores(folder / "scores"))
    assert [(r.score, r.group, r.customers, r.share, r.revenue) for r in report.value_by_rfm] == [
        ("customer_value", "new", 1, 0.5, 30.0),
        ("customer_value", "lost", 1, 0.5, 10.0),
    ]
    page = render_html(report)
    assert "Customer value by RFM group (customer_value)" in page
