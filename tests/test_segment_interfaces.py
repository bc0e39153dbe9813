"""What people use to look at audiences: ``journeys segments list | preview | members | import`` and the API's
segment sizes and a customer's segments. Each answer gives counts, a sample and how long the database took."""

from __future__ import annotations

import os
import re
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

from audiences.definitions import load_segments
from audiences.membership import Audiences
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.client import JourneyClient
from storage import make_engine
from storage.tables import Customer, Event
from testkit.harness import ROOT

SEGMENTS = {
    "buyers": "name: buyers\ndescription: ordered at least once\nwhere: {performed: order_placed}\n",
    "vips": "name: vips\nwhere: {in_list: vip}\n",
}
NOW = datetime.now(UTC)


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Engine]]:
    """A journeys folder with two segments, and a database with five customers, three of whom ordered."""
    folder = tmp_path / "journeys"
    (folder / "segments").mkdir(parents=True)
    for name, text in SEGMENTS.items():
        (folder / "segments" / f"{name}.yaml").write_text(text)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": f"c{i}", "traits": {}, "updated_at": NOW} for i in range(5)],
        )
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": f"o{i}",
                    "customer_id": f"c{i}",
                    "type": "order_placed",
                    "properties": {},
                    "occurred_at": NOW - timedelta(days=1),
                    "recorded_at": NOW,
                }
                for i in range(3)
            ],
        )
        Audiences(load_segments(folder / "segments")).refresh(connection, ["buyers"], now=NOW)
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
        [sys.executable, "-m", "starter.cli", "segments", *args], capture_output=True, text=True, env=env, check=False
    )


def _timeless(text: str) -> str:
    return re.sub(r"\d+\.\d ms", "T ms", re.sub(r"since \S+", "since T", text))


def test_the_command_lists_previews_and_pages_through_members(
    deployment: tuple[Path, Engine], database_url: str, tmp_path: Path
) -> None:
    folder, _ = deployment
    listed = _journeys(folder, database_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert _timeless(listed.stdout) == (
        "buyers          3  events           ordered at least once\n"
        "vips            0  schedule\n"
        "(2 segments; sizes read in T ms)\n"
    )
    previewed = _journeys(folder, database_url, "preview", "buyers", "--sample", "2")
    assert _timeless(previewed.stdout) == "buyers: 3 customers now (computed in T ms)\n  c0\n  c1\n  ... and 1 more\n"
    paged = _journeys(folder, database_url, "members", "buyers", "--limit", "2")
    assert _timeless(paged.stdout) == (
        "buyers: 3 members (read in T ms)\n  c0  since T\n  c1  since T\n  next page: --after c1\n"
    )
    rest = _journeys(folder, database_url, "members", "buyers", "--limit", "2", "--after", "c1")
    assert _timeless(rest.stdout) == "buyers: 3 members (read in T ms)\n  c2  since T\n"

    draft = tmp_path / "draft" / "segments" / "new.yaml"
    draft.parent.mkdir(parents=True)
    draft.write_text("name: new\nwhere: {not: {performed: order_placed}}\n")
    assert _timeless(_journeys(folder, database_url, "preview", str(draft)).stdout).startswith(
        "new: 2 customers now (computed in T ms)\n  c3\n  c4\n"
    )

    wrong = _journeys(folder, database_url, "members", "buyer")
    assert (wrong.returncode, wrong.stderr) == (
        2,
        f"journeys segments: no segment 'buyer' in {folder / 'segments'} (did you mean 'buyers'?)\n",
    )


def test_a_list_is_imported_from_csv(deployment: tuple[Path, Engine], database_url: str, tmp_path: Path) -> None:
    folder, _ = deployment
    csv = tmp_path / "vip.csv"
    csv.write_text("customer_id,name\nc3,Dee\nc4,Eve\n\nc3,Dee again\n")
    done = _journeys(folder, database_url, "import", "vip", str(csv))
    assert done.stdout == (
        "list vip: 2 customers (from 2 customer_id values in vip.csv)\n"
        "segments reading it (vips) are refreshed by the Schedule's next run\n"
    )
    previewed = _journeys(folder, database_url, "preview", "vips")
    assert _timeless(previewed.stdout) == "vips: 2 customers now (computed in T ms)\n  c3\n  c4\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nDee\n")
    refused = _journeys(folder, database_url, "import", "vip", str(bad))
    assert (refused.returncode, refused.stderr) == (
        1,
        "journeys segments: bad.csv: line 1: the header needs one of customer_id, user_id, email (found: name)\n",
    )


async def test_the_api_gives_segment_sizes_and_a_customers_segments(
    deployment: tuple[Path, Engine], time_env: WorkflowEnvironment
) -> None:
    folder, engine = deployment
    services = ApiServices(
        JourneyClient(time_env.client, {}), engine, audiences=Audiences(load_segments(folder / "segments"))
    )
    app = create_app(Settings(api_keys="k", journeys_dir=folder), services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        sized = await http.get("/v1/segments", auth=("k", ""))
        assert sized.json() == {
            "segments": [
                {"name": "buyers", "description": "ordered at least once", "size": 3},
                {"name": "vips", "description": "", "size": 0},
            ]
        }
        mine = await http.get("/v1/customers/c1/segments", auth=("k", ""))
        assert mine.json()["segments"] == [{"name": "buyers", "entered_at": NOW.isoformat().replace("+00:00", "Z")}]
        assert (await http.get("/v1/customers/c4/segments", auth=("k", ""))).json() == {
            "customer_id": "c4",
            "segments": [],
        }
        assert (await http.get("/v1/segments")).status_code == 401
