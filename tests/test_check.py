"""``journeys check``: validate, scenarios and replay before a deploy, every part run, one exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from starter.cli import main

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"


def test_the_built_in_journeys_pass_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "journeys"), "--histories", str(HISTORIES)]) == 0
    out = capsys.readouterr().out
    assert "pharmacy_refill.yaml: ok" in out
    assert "pharmacy_refill: reminded, never ordered" in out and ", 0 failed\n" in out
    assert f"replayed {len(list(HISTORIES.glob('*.json')))} histories: 0 failed" in out
    assert out.endswith("check: ok\n")


def test_every_part_runs_and_each_failure_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys" / "templates", folder / "templates")
    (folder / "scenarios").mkdir()
    shutil.copy(ROOT / "journeys" / "spending_limit.yaml", folder)
    (folder / "broken.yaml").write_text("name: broken\nentry: {events: [x]}\nsteps:\n  - id: a\n    wait: {}\n")
    scenario = (ROOT / "journeys" / "scenarios" / "spending_limit.yaml").read_text()
    (folder / "scenarios" / "late.yaml").write_text(scenario.replace("at: 2026-06-11 13:00}", "at: 2026-06-11 15:00}"))
    # A history the code cannot follow: it ran an activity today's journey never calls there.
    history = json.loads((HISTORIES / "pharmacy_refill_cancelled_mid_wait.json").read_text())
    for event in history["events"]:
        scheduled = event.get("activityTaskScheduledEventAttributes")
        if scheduled:
            scheduled["activityType"]["name"] = "load_profile_from_elsewhere"
    (folder / "histories").mkdir()
    (folder / "histories" / "tampered.json").write_text(json.dumps(history))

    assert main(["check", str(folder)]) == 1  # histories/ beside the maps by default
    out = capsys.readouterr().out
    assert "broken.yaml: steps[0].wait" in out
    assert "spending_limit: opted in, two alerts a day apart" in out and "0 passed, 1 failed" in out
    assert "NON-DETERMINISTIC tampered" in out and "replayed 1 histories: 1 failed" in out
    assert out.endswith("check: FAILED (validate, scenarios, replay)\n")


def test_a_part_with_nothing_to_do_does_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys" / "templates", folder / "templates")
    shutil.copy(ROOT / "journeys" / "spending_limit.yaml", folder)
    assert main(["check", str(folder / "spending_limit.yaml")]) == 0
    out = capsys.readouterr().out
    assert "no scenario to play" in out and "no recorded history in" in out
