"""Scenario files and ``journeys test``: refused before anything runs when wrong, a clear diff when failing."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
import yaml

from journeymap import MapValidationError, load_map
from journeymap.scenario import parse_scenario
from starter.catalog import map_files
from starter.scenarios import CYCLE_YEARS, Clock, years_to_move
from testkit.harness import ROOT
from testkit.processes import journeys_env

PHARMACY = load_map(ROOT / "journeys" / "pharmacy_refill.yaml")
PHARMACY_ZONE = ZoneInfo("America/Los_Angeles")

BASE = """
journey: pharmacy_refill
customer: {id: maria, timezone: America/Chicago}
start: 2026-11-25 09:00
timeline:
  - after: 0s
    event: prescription_filled
    properties: {rx_id: rx-1, days_supply: 30, refills_remaining: 0, filled_at: 2026-11-25T09:00:00-06:00}
"""


def _errors(extra: str) -> list[str]:
    data: dict[str, Any] = yaml.safe_load(BASE)
    data.update(yaml.safe_load(extra) or {})
    try:
        parse_scenario(data, {PHARMACY.name: PHARMACY}, source="s.yaml")
    except MapValidationError as exc:
        return [str(e) for e in exc.errors]
    return []


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "timeline: [{after: 1d, event: refill_orderd}]",
            "timeline[0].event",
            "pharmacy_refill does not use event 'refill_orderd' (did you mean 'refill_ordered'?)",
        ),
        (
            "expect: {steps_reached: [await_pikcup]}",
            "expect.steps_reached[0]",
            "pharmacy_refill has no step 'await_pikcup' (did you mean 'await_pickup'?)",
        ),
        (
            "expect: {messages: [{template: refill_remider}]}",
            "expect.messages[0].template",
            "pharmacy_refill sends no template 'refill_remider' (did you mean 'refill_reminder'?)",
        ),
        (
            "expect: {messages: [{channel: sms}]}",
            "expect.messages[0].channel",
            "pharmacy_refill sends nothing by channel 'sms'; known: email, push, voice",
        ),
        (
            "expect: {messages: [{channel: fax}]}",
            "expect.messages[0].channel",
            "Input should be 'email', 'sms', 'push', 'voice' or 'webhook'",
        ),
        ("timeline: [{event: refill_ordered}]", "timeline[0]", "give either `at` (a local date-time)"),
        (
            "timeline: [{at: 2026-11-24 09:00, event: refill_ordered}]",
            "timeline[0].at",
            "is before the scenario's start",
        ),
        ("timeline: [{after: 3 days, event: refill_ordered}]", "timeline[0].after", "'3 days' is not a duration"),
        ("start: next tuesday", "start", "'next tuesday' is not a date-time"),
        ("customer: {timezone: Mars/Olympus}", "customer.timezone", "unknown time zone 'Mars/Olympus'"),
        ("journey: pharmacy", "journey", "no map named 'pharmacy' (did you mean 'pharmacy_refill'?)"),
        ("expect: {goal: true}", "expect.goal", "Extra inputs are not permitted"),
    ],
)
def test_a_scenario_naming_what_its_map_does_not_know_is_refused(extra: str, path: str, message: str) -> None:
    errors = _errors(extra)
    assert any(e.startswith(f"s.yaml: {path}: {message}") for e in errors), errors


def test_a_valid_scenario_is_accepted() -> None:
    assert _errors("expect: {messages: [{channel: push, template: refill_reminder, at: 2026-12-22 10:00}]}") == []


def test_a_story_before_the_servers_clock_moves_by_whole_calendar_cycles() -> None:
    clock = Clock(PHARMACY_ZONE, years_to_move(_at(2026, 3, 12), _at(2026, 12, 2)))
    assert clock.years == CYCLE_YEARS
    moved = clock.to_server(_at(2026, 3, 12).replace(tzinfo=None))
    # Same weekday, same local time of day across the daylight-saving change, and back again.
    assert (moved.year, moved.strftime("%a %H:%M")) == (2054, "Thu 10:00")
    assert clock.to_scenario(moved) == _at(2026, 3, 12)
    assert clock.data({"filled_at": "2026-03-01T08:30:00-08:00", "birthday": "1991-03-14", "rx": "rx-1"}) == {
        "filled_at": "2054-03-01T08:30:00-08:00",
        "birthday": "2019-03-14",
        "rx": "rx-1",
    }


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 10, 0, tzinfo=PHARMACY_ZONE)


def _journeys_test(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "test", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=journeys_env(PYTHONPATH=str(ROOT)),
    )


PASSING = """
name: ordered and confirmed
journey: order_updates
customer: {id: ola, timezone: Europe/London}
start: 2026-05-04 14:00
timeline:
  - {after: 0s, event: order_placed, properties: {order_id: o-1}}
expect:
  messages: [{channel: email, template: order_confirmed, at: 2026-05-04 14:00}]
  nothing_else: true
"""

FAILING = """
name: expects an SMS at the wrong time
journey: order_updates
customer: {id: ola, timezone: Europe/London}
start: 2026-05-04 14:00
until: 2026-05-05 00:00
timeline:
  - {after: 0s, event: order_placed, properties: {order_id: o-1}}
  - {after: 2h, event: order_shipped, properties: {order_id: o-1}}
expect:
  messages:
    - {channel: email, template: order_confirmed, at: 2026-05-04 15:00}
  nothing_else: true
  ended: true
"""


def test_journeys_test_passes_fails_with_a_diff_and_writes_junit(tmp_path: Path) -> None:
    (tmp_path / "passing.yaml").write_text(PASSING)
    (tmp_path / "failing.yaml").write_text(FAILING)
    junit = tmp_path / "report" / "junit.xml"
    done = _journeys_test(
        ROOT / "journeys" / "order_updates.yaml", tmp_path / "passing.yaml", tmp_path / "failing.yaml", "--junit", junit
    )
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "order_updates: ordered and confirmed (" in out and "): ok in " in out
    # The timeline, in the customer's local time, then what was expected against what happened.
    assert "  Mon 2026-05-04 14:00  order_confirmed        order_confirmed          email" in out
    assert (
        "  expect.messages[0]:\n"
        "    expected: 1 x email order_confirmed at Mon 2026-05-04 15:00\n"
        "    actual:   0; such messages went out: email order_confirmed (order_confirmed) at Mon 2026-05-04 14:00"
    ) in out
    assert "  expect.nothing_else:\n    expected: no other message\n    actual:   email order_confirmed" in out
    assert "email shipment_confirmed (shipment_confirmed) at Mon 2026-05-04 16:00" in out
    assert "  expect.ended:\n    expected: True\n    actual:   False (waiting at await_delivery)" in out
    assert out.rstrip().endswith("1 passed, 1 failed")
    assert "WARN" not in out + done.stderr  # the SDK core's chatter about the test server stays out

    suite = ElementTree.parse(junit).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures")) == ("testsuite", "2", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"ordered and confirmed", "expects an SMS at the wrong time"}
    assert cases["ordered and confirmed"].find("failure") is None
    failure = cases["expects an SMS at the wrong time"].find("failure")
    assert failure is not None and failure.get("message") == "expect.messages[0]:"
    assert "expected: 1 x email order_confirmed at Mon 2026-05-04 15:00" in (failure.text or "")


def test_journeys_test_refuses_an_invalid_scenario_before_running_anything(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(PASSING.replace("order_placed", "order_plcaed"))
    done = _journeys_test(ROOT / "journeys" / "order_updates.yaml", tmp_path / "bad.yaml")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "bad.yaml: timeline[0].event: order_updates does not use event 'order_plcaed' (did you mean 'order_placed'?)"
    )
    assert done.stdout == ""


def test_every_built_in_map_has_scenarios_and_they_pass(tmp_path: Path) -> None:
    """The seeds' stories (journeys/scenarios/), all in one process, as CI runs them."""
    scenarios = [yaml.safe_load(p.read_text()) for p in (ROOT / "journeys" / "scenarios").glob("*.yaml")]
    maps = {p.stem for p in map_files(ROOT / "journeys")}
    assert maps <= {s["journey"] for s in scenarios}
    done = _journeys_test(ROOT / "journeys", "--quiet", "--junit", tmp_path / "junit.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith(f"{len(scenarios)} passed, 0 failed")
