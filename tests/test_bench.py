"""The benchmarks still run: each in its ``--quick`` mode, checked for a well-formed report, never for speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.harness import ROOT

EXPECTED = {
    "broadcast": {"path", "journeys_per_s", "ratio_to_raw"},
    "ingest": {"path", "events_per_s", "ratio_to_raw", "cpu_ms_per_event"},
    "latency": {"p50_ms", "p95_ms", "p99_ms", "sent"},
    "cost": {"journey"},
    "memory": {"max_cached_workflows", "worker_max_cached_workflows", "rss_mib", "journeys_waiting", "cached"},
    "replay": {"histories_per_s", "failures"},
    "report": {"events", "report_s", "peak_rss_mib", "report_orders", "orders"},
    "segments": {"customers", "events", "first_refresh_s", "again_s", "peak_rss_mib", "entered", "members"},
    "simulate": {"seconds", "events", "messages", "skip_s", "route_s", "respond_s"},
    "wakeup": {"journeys", "max_cached_workflows", "waiting_at_moment", "woken_per_s", "worker_cpu_ms_per_journey"},
    "soak": {"channel", "messages_expected", "sent_once", "sent_twice", "lost"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_runs_in_quick_mode(name: str, tmp_path: Path) -> None:
    # SQLite only, no database_url: the benchmarks measure and tune the embedded default (SQLite pragmas).
    out = tmp_path / f"{name}.json"
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "JOURNEYS_TEST_DATABASE_URL"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] and report["results"]
    assert all(EXPECTED[name] <= set(row) for row in report["results"] if "note" not in row)
    if name == "replay":
        assert report["results"][0]["failures"] == 0
    if name == "report":
        # The report counted every order the fill made, at each size.
        assert all(row["report_orders"] == row["orders"] > 0 for row in report["results"])
    if name == "memory":
        # Each row measured the cache size it prints: the one the worker reported running with, not a default.
        assert [row["max_cached_workflows"] for row in report["results"]] == [10, 1000]
        assert all(row["worker_max_cached_workflows"] == row["max_cached_workflows"] for row in report["results"])
    if name == "wakeup":
        # Every journey was waiting when the moment came, and every one completed after it.
        [row] = report["results"]
        assert row["waiting_at_moment"] == row["journeys"] and row["all_done_after_s"] > 0
    if name == "soak":
        # Whatever was killed, every journey finished and no message was lost; email, whose provider takes the
        # idempotency key, arrived once each. (Push may arrive twice: FCM takes no key, docs/delivery.md.)
        rows = {row["channel"]: row for row in report["results"]}
        assert rows["all"]["journeys_completed"] == rows["all"]["journeys"] > 0
        assert all(row["lost"] == row["not_yet"] == row["unexpected"] == 0 for row in rows.values())
        assert rows["email"]["sent_twice"] == rows["email"]["sent_more"] == 0
        assert report["settings"]["workers_killed"] > 0
    if name == "segments":
        # Everyone who belongs entered on the first refresh, and the second, at the same moment, moved nobody.
        for row in report["results"]:
            assert row["entered"] == sum(row["members"].values()) > 0 and row["again_changes"] == 0, row
    if name == "latency":
        assert report["results"][0]["sent"] == report["results"][0]["events"]
    if name == "ingest":
        # The API's CPU, split by thread, adds up to the process's whole (which counts 10 ms clock ticks).
        for row in (r for r in report["results"] if r["path"].startswith("api")):
            split = [row[f"api_{kind}_ms"] for kind in ("loop", "threads", "sdk")]
            assert all(isinstance(ms, float) and ms >= 0 for ms in split), row
            assert abs(sum(split) - row["cpu_ms_per_event"]) < 1.0, row


def test_cost_leaves_out_the_updates_the_scenarios_pace_themselves_with() -> None:
    from bench.cost import without_pacing

    entered = ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_EXECUTION_SIGNALED"]
    entered += ["WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_SCHEDULED"]
    task = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
    accepted, completed = "WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_UPDATE_COMPLETED"
    loaded = ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"]
    rests = ["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "TIMER_STARTED"]
    # As the time-skipping server recorded it: an update taken alone (its own task), one answered by the task
    # that came to rest, and one more taken alone at rest.
    recorded = [*entered, *task, accepted, *loaded, *task, *rests, completed, *task, accepted, completed]
    assert without_pacing(recorded) == [*entered, *loaded, *task, *rests]
