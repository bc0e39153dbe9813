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


def test_the_segments_are_checked_against_each_other_the_plan_and_the_maps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys" / "templates", folder / "templates")
    shutil.copy(ROOT / "journeys" / "events.yaml", folder)
    (folder / "winback.yaml").write_text(
        "name: winback\nentry: {events: [segment_entered.lapsd]}\nexit_on: [segment_exited.lapsed]\n"
        "steps:\n  - id: offer\n    send: {channels: [email], template: lifecycle_winback, category: promotional}\n"
    )
    segments = folder / "segments"
    segments.mkdir()
    (segments / "lapsed.yaml").write_text(
        "name: lapsed\nwhere:\n  all:\n    - performed: ordr_placed\n"
        "    - {performed: order_placed, where: [{property: amont, at_least: 50}]}\n"
    )
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    segment_part = out[out.index("== segments") : out.index("== scenarios")]
    assert segment_part.splitlines()[1:] == [
        "lapsed.yaml: where.all[0]: event 'ordr_placed' is not in the tracking plan (events.yaml, maps' events:)"
        " (did you mean 'order_placed'?)",
        "lapsed.yaml: where.all[1].where[0].property: event 'order_placed' declares no property 'amont'"
        " (did you mean 'amount'?)",
        "winback.yaml: entry.events[0]: unknown segment 'lapsd' in 'segment_entered.lapsd' (did you mean 'lapsed'?)",
    ]
    assert out.endswith("check: FAILED (segments)\n")

    # Segments reading each other in a cycle are refused as the worker would refuse them.
    (segments / "lapsed.yaml").write_text("name: lapsed\nwhere: {in_segment: vip}\n")
    (segments / "vip.yaml").write_text("name: vip\nwhere: {not: {in_segment: lapsed}}\n")
    (folder / "winback.yaml").write_text((folder / "winback.yaml").read_text().replace("lapsd", "lapsed"))
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "lapsed.yaml: where: segments read each other in a cycle: lapsed -> vip -> lapsed" in out
    assert out.endswith("check: FAILED (segments)\n")

    (segments / "vip.yaml").write_text("name: vip\nwhere: {performed: order_placed, at_least: 10}\n")
    assert main(["check", str(folder)]) == 0
    assert "journeys/segments: ok (2 segments: lapsed, vip)" in capsys.readouterr().out
