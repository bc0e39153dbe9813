"""Broadcasts from the outside: ``journeys validate`` refuses a bad definition (file: path: message, did you
mean), and on a dev server the API starts an occurrence, reports its progress, refuses a second start of the same
occurrence and acting on one that is closed, while ``journeys broadcast`` lists, starts and shows status."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert
from temporalio.testing import WorkflowEnvironment

from contracts.broadcasts import BroadcastResult
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.testing import journey_system
from storage.tables import Customer, SegmentMembership
from testkit.harness import ROOT, write_journeys

MAP = """
name: news
entry:
  events: [broadcast.newsletter]
  key: broadcast
steps:
  - id: letter
    send: {channels: [email], template: news, category: transactional}
"""
NEWSLETTER = """
name: newsletter
journey: news
segment: readers
category: transactional
when: {weekly: monday, at: "09:30", time_zone: Europe/Paris}
"""


def _folder(tmp_path: Path) -> Path:
    folder = write_journeys(tmp_path, {"news": MAP}, {"news": "email:\n  subject: news\n  text: news\n"})
    (folder / "segments").mkdir()
    (folder / "segments" / "readers.yaml").write_text("name: readers\nwhere: {trait: reads, equals: true}\n")
    (folder / "broadcasts").mkdir()
    (folder / "broadcasts" / "newsletter.yaml").write_text(NEWSLETTER)
    return folder


def _journeys(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")} | {"PYTHONPATH": str(ROOT)} | env
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args], capture_output=True, text=True, env=full, check=False
    )


def test_validate_refuses_bad_broadcasts_with_where_and_what(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    bad = folder / "broadcasts"
    (bad / "typo.yaml").write_text(
        "name: typo\njourney: nws\nsegment: reader\nwhen: {weekly: mondy, at: '9:30', timezone: UTC}\n"
    )
    (bad / "twice.yaml").write_text("name: twice\njourney: news\nsegment: readers\nwhen: {at: '10:00'}\n")
    (bad / "unkeyed.yaml").write_text(
        "name: unkeyed\njourney: news\nsegment: readers\nwhen: {once: 2030-01-01, at: '10:00', time_zone: Mars/Base}\n"
    )
    done = _journeys({}, "validate", *(str(p) for p in sorted(bad.glob("*.yaml"))))
    assert done.returncode == 1
    assert (
        done.stdout
        == "newsletter.yaml: ok (broadcast newsletter: news to readers, every monday at 09:30 in Europe/Paris)\n"
    )
    assert done.stderr.splitlines() == [
        "twice.yaml: when: say when with exactly one of: once, weekly, monthly, yearly",
        "typo.yaml: when.weekly: 'mondy' is not a weekday (did you mean 'monday'?)",
        "typo.yaml: when.at: '9:30' is not a time of day: write HH:MM, such as '10:00'",
        "typo.yaml: when.timezone: unknown field 'timezone' (did you mean 'time_zone'?)",
        "unkeyed.yaml: when.time_zone: unknown time zone 'Mars/Base': 'customer' or an IANA name such as "
        "'Europe/Paris'",
    ]
    (bad / "twice.yaml").unlink()
    (bad / "unkeyed.yaml").unlink()
    (bad / "typo.yaml").write_text("name: typo\njourney: nws\nsegment: reader\nwhen: {weekly: monday, at: '09:30'}\n")
    (bad / "unkeyed.yaml").write_text(
        "name: unkeyed\njourney: news\nsegment: readers\nwhen: {monthly: 1, at: '10:00'}\n"
    )
    done = _journeys({}, "validate", str(bad / "typo.yaml"), str(bad / "unkeyed.yaml"))
    assert done.stderr.splitlines() == [
        "typo.yaml: segment: unknown segment 'reader' (did you mean 'readers'?)",
        "typo.yaml: journey: unknown map 'nws' (did you mean 'news'?)",
        "unkeyed.yaml: journey: map 'news' does not enter on 'broadcast.unkeyed': add it to the map's entry.events",
    ]


async def test_the_api_and_the_command_start_and_follow_an_occurrence(
    dev_env: WorkflowEnvironment, tmp_path: Path, database_url: str
) -> None:
    folder = _folder(tmp_path)
    queue = f"broadcast-{uuid.uuid4().hex[:8]}"
    settings = Settings(journeys_dir=folder, task_queue=queue, database_url=database_url, data_dir=tmp_path)
    env = {
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": queue,
        "JOURNEYS_JOURNEYS_DIR": str(folder),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_DATA_DIR": str(tmp_path),
    }
    async with journey_system(dev_env.client, settings) as (journeys, engine):
        now = datetime.now(UTC)
        readers = [f"r{i}" for i in range(5)]
        with engine.begin() as connection:
            connection.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [{"id": c, "traits": {"reads": True}, "updated_at": now} for c in readers],
            )
            connection.execute(
                insert(SegmentMembership.__table__),  # type: ignore[attr-defined]
                [{"segment": "readers", "customer_id": c, "entered_at": now} for c in readers],
            )
        app = create_app(settings.model_copy(update={"api_keys": "k"}), ApiServices(journeys, engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            listed = (await http.get("/v1/broadcasts", auth=("k", ""))).json()
            assert [b["name"] for b in listed["broadcasts"]] == ["newsletter"]
            started = await http.post("/v1/broadcasts/newsletter/start", json={"occurrence": "first"}, auth=("k", ""))
            assert started.status_code == 202
            occurrence = started.json()["occurrence"]
            assert occurrence == "broadcast/newsletter-first"
            done = await dev_env.client.get_workflow_handle(occurrence, result_type=BroadcastResult).result()
            assert done.progress.started == 5
            status = (await http.get("/v1/broadcasts/newsletter/status?occurrence=first", auth=("k", ""))).json()
            assert (status["status"], status["progress"]["started"], status["progress"]["state"]) == (
                "completed",
                5,
                "done",
            )
            again = await http.post("/v1/broadcasts/newsletter/start", json={"occurrence": "first"}, auth=("k", ""))
            assert again.status_code == 400 and "already started" in again.text
            paused = await http.post("/v1/broadcasts/newsletter/pause?occurrence=first", auth=("k", ""))
            assert paused.status_code == 400 and "is completed: nothing to pause" in paused.text
            unknown = await http.get("/v1/broadcasts/newsleter/status", auth=("k", ""))
            assert unknown.status_code == 400 and "did you mean 'newsletter'" in unknown.text

        shown = _journeys(env, "broadcast", "status", "newsletter", "--occurrence", "first")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[-1] == (
            "broadcast/newsletter-first: completed, done: 5 started, 0 skipped, 1 pages"
        )
        listed_cli = _journeys(env, "broadcast", "list")
        assert listed_cli.stdout.startswith("newsletter  news to readers, every monday at 09:30 in Europe/Paris; next ")
        refused = _journeys(env, "broadcast", "start", "newsleter")
        assert refused.returncode == 2
        assert "unknown broadcast 'newsleter' (did you mean 'newsletter'?)" in refused.stderr
