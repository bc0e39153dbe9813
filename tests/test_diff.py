"""``journeys diff``: what an edit of a map changes, and how many journeys in flight rest on what it changes."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from journeymap import load_map
from journeymap.diff import diff_maps
from starter.cli import main
from testkit.harness import running_journeys

ROOT = Path(__file__).resolve().parent.parent
PHARMACY = ROOT / "journeys" / "pharmacy_refill.yaml"


def _edit(tmp_path: Path, name: str = "pharmacy_refill", **changes: object) -> Path:
    """A copy of the pharmacy map (with its templates) in ``tmp_path``, renamed and edited by ``changes``."""
    folder = tmp_path / f"edited-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "journeys" / "templates", folder / "templates")
    data = yaml.safe_load(PHARMACY.read_text())
    data["name"] = name
    steps = {step["id"]: step for step in data["steps"]}
    for step_id, change in changes.items():
        if change is None:
            data["steps"].remove(steps[step_id])
        elif step_id in steps:
            steps[step_id].clear()
            steps[step_id].update({"id": step_id, **change})  # type: ignore[dict-item]
        else:  # a new step, after the first
            data["steps"].insert(1, {"id": step_id, **change})  # type: ignore[dict-item]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_steps_added_removed_and_changed_say_what_changed(tmp_path: Path) -> None:
    old = load_map(PHARMACY)
    reminder = old.steps[0].model_dump(mode="json", exclude={"id"})
    reminder["wait"]["at"] = "09:00"
    new = load_map(
        _edit(
            tmp_path,
            wait_for_reminder=reminder,
            notify_ready={"send": {"channel": "push", "template": "refill_reminder", "category": "transactional"}},
            await_late_pickup={"wait": {"duration": "2d"}},
            note_store=None,
            courtesy_note={"wait": {"duration": "1h"}},
        )
    )
    diff = diff_maps(old, new)
    assert diff.added == ("courtesy_note",)
    assert diff.removed == ("note_store",)
    changed = {change.step: change.differences for change in diff.changed}
    assert changed["wait_for_reminder"] == ("wait.at: 10:00 -> 09:00", "then: remind_refill -> courtesy_note")
    assert changed["notify_ready"] == ("send.template: refill_ready -> refill_reminder",)
    assert changed["await_late_pickup"] == ("kind: wait_for -> wait",)
    assert changed["await_ready"] == ("then: note_store -> notify_ready",)  # its next step is gone
    assert set(diff.affected) == {"note_store", "wait_for_reminder", "notify_ready", "await_late_pickup", "await_ready"}
    assert not diff_maps(old, load_map(PHARMACY)).changed


def test_the_command_prints_the_diff_and_checks_an_old_map_against_the_new_ones_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNEYS_TEMPORAL_ADDRESS", raising=False)
    old = tmp_path / "old.yaml"  # as `git show HEAD:journeys/pharmacy_refill.yaml > old.yaml` leaves it
    old.write_text(PHARMACY.read_text())
    new = _edit(tmp_path, note_store=None)
    assert main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "pharmacy_refill: 0 added, 1 removed, 1 changed"
    assert "- note_store" in out and "~ await_ready\n    then: note_store -> notify_ready" in out
    assert main(["diff", str(PHARMACY), str(PHARMACY), "--temporal", "127.0.0.1:1"]) == 0  # nobody to count
    assert capsys.readouterr().out == "pharmacy_refill: no change\n"


def test_an_invalid_map_is_refused_naming_file_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = _edit(tmp_path, notify_ready={"send": {"channel": "pigeon", "template": "refill_ready"}})
    assert main(["diff", str(PHARMACY), str(new)]) != 0
    assert "pharmacy_refill.yaml: steps[5].send.channel" in capsys.readouterr().err


@pytest.mark.parametrize("search_by_step", [False, True], ids=["from-histories", "by-search-attribute"])
async def test_with_temporal_it_counts_the_journeys_resting_on_removed_or_changed_steps(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    search_by_step: bool,
) -> None:
    """By default each running journey's pending timer names its step (no billable action); a deployment that
    upserts the step (``JOURNEYS_SEARCH_BY_STEP``) is counted with one visibility query per step."""
    name = f"pharmacy_{uuid.uuid4().hex[:8]}"  # a journey of this test's own: the server is the session's
    old = _edit(tmp_path, name=name)
    monkeypatch.setenv("JOURNEYS_SEARCH_BY_STEP", "true" if search_by_step else "false")
    setting = {"search_by_step": search_by_step}
    async with running_journeys(
        dev_env.client, tmp_path, task_queue, old.parent, database_url=database_url, settings_overrides=setting
    ) as j:
        filled = datetime.now(UTC)
        for customer, days_ago in (("d1", 1), ("d2", 1), ("d3", 60)):  # d3's supply ran out: awaits the order
            await j.send(
                customer,
                "prescription_filled",
                rx_id=f"rx-{customer}",
                days_supply=30,
                refills_remaining=1,
                filled_at=(filled - timedelta(days=days_ago)).isoformat(),
            )
        for customer, step in (("d1", "wait_for_reminder"), ("d2", "wait_for_reminder"), ("d3", "await_order")):
            assert (await j.settled(name, customer, f"rx-{customer}")).step == step
        query = f"JourneyName = '{name}' AND ExecutionStatus = 'Running'"
        if search_by_step:
            query += " AND JourneyStatus = 'waiting'"
        for _ in range(200):  # visibility is eventually consistent, and the server says nothing when it catches up
            if (await dev_env.client.count_workflows(query)).count == 3:
                break
            await asyncio.sleep(0.1)
        reminder = load_map(old).steps[0].model_dump(mode="json", exclude={"id"})
        reminder["wait"]["offset"] = "-2d"
        new = _edit(tmp_path, name=name, wait_for_reminder=reminder, note_store=None)
        monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", "nowhere:1")  # --temporal ADDRESS wins
        address = dev_env.client.service_client.config.target_host
        assert await asyncio.to_thread(main, ["diff", str(old), str(new), "--temporal", address]) == 0
    out = capsys.readouterr().out
    assert f"in flight ({address}): 2 running journeys rest on a removed or changed step" in out
    assert "  wait_for_reminder: 2\n" in out
    assert "  note_store: 0\n" in out and "  await_ready: 0\n" in out
    assert "await_order:" not in out  # unchanged: d3 is not stranded
    read = "(read from the histories of 3 running journeys; 0 rested without a timer"
    assert (read in out) is not search_by_step
