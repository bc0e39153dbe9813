"""Segment definitions are validated before anything runs: one line per problem, ``file: path: message``, with
the nearest known name when one is misspelt; a set of segments that names a missing one or reads itself is
refused; ``journeys validate`` checks segment files beside the maps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audiences.definitions import dependencies, load_segments
from audiences.membership import Audiences
from journeymap import MapValidationError
from testkit.harness import ROOT

SEGMENTS = ROOT / "journeys" / "segments"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def _problems(folder: Path) -> list[str]:
    with pytest.raises(MapValidationError) as caught:
        load_segments(folder)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a\nwhere: {perfomed: order_placed}\n",
            "a.yaml: where: a condition needs exactly one of: trait, performed, consent, in_segment, in_list, score, "
            "all, any, not; unknown 'perfomed' (did you mean 'performed'?)",
        ),
        (
            "name: a\nwhere: {all: [{trait: plan, equal: gold}]}\n",
            "a.yaml: where.all[0].equal: unknown field 'equal' (did you mean 'equals'?)",
        ),
        (
            "name: a\nwhere: {any: [{performed: x, within: 3x}]}\n",
            "a.yaml: where.any[0].within: '3x' is not a duration; write e.g. '3d', '2h30m', '1w', '90s' or "
            "ISO 8601 'P3DT4H'",
        ),
        (
            "name: a\nwhere: {not: {trait: plan}}\n",
            "a.yaml: where.not: give exactly one of equals, not_equals, one_of, greater_than, less_than, at_least, "
            "at_most, exists, before, after, within",
        ),
        (
            "name: a\nwhere: {performed: x, at_least: 3, at_most: 1}\n",
            "a.yaml: where: at_least (3) is more than at_most (1): nobody matches",
        ),
        (
            "name: a\nwhere: {consent: {channel: emial}}\n",
            "a.yaml: where.consent.channel: Input should be 'email', 'sms', 'push', 'voice' or 'webhook'",
        ),
        (
            "name: a\nwhere: {trait: signed_up, before: someday}\n",
            "a.yaml: where.before: 'someday' is neither a date (2026-09-01) nor a duration (60d)",
        ),
        ("- a list\n", "a.yaml: a segment is a YAML mapping (name, description, where)"),
        ("name: a\nwhere: {in_segment: lapsd}\n", "a.yaml: where.in_segment: unknown segment 'lapsd'"),
    ],
)
def test_a_bad_definition_is_refused_with_where_and_why(tmp_path: Path, text: str, expected: str) -> None:
    _write(tmp_path, "a", text)
    assert _problems(tmp_path) == [expected]


def test_a_misspelt_segment_name_gets_the_nearest(tmp_path: Path) -> None:
    _write(tmp_path, "lapsed", "name: lapsed\nwhere: {performed: order_placed}\n")
    _write(tmp_path, "b", "name: b\nwhere: {in_segment: lapsd}\n")
    assert _problems(tmp_path) == ["b.yaml: where.in_segment: unknown segment 'lapsd' (did you mean 'lapsed'?)"]


def test_segments_reading_each_other_in_a_cycle_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a", "name: a\nwhere: {all: [{in_segment: b}]}\n")
    _write(tmp_path, "b", "name: b\nwhere: {not: {in_segment: a}}\n")
    _write(tmp_path, "c", "name: c\nwhere: {in_segment: c}\n")
    assert _problems(tmp_path) == [
        "a.yaml: where: segments read each other in a cycle: a -> b -> a",
        "c.yaml: where: segments read each other in a cycle: c -> c",
    ]


def test_two_segments_of_one_name_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a", "name: same\nwhere: {performed: x}\n")
    _write(tmp_path, "b", "name: same\nwhere: {performed: y}\n")
    assert _problems(tmp_path) == ["b.yaml: name: segment name 'same' is used by a.yaml"]


def test_the_shipped_segments_are_valid_and_say_what_they_depend_on() -> None:
    segments = load_segments(SEGMENTS)
    assert set(segments) >= {"lapsed_customers", "flu_shot_audience", "hot_leads", "champions"}
    lapsed = dependencies(segments["lapsed_customers"])
    assert lapsed.events == {"order_placed", "app_opened"}
    assert lapsed.changes_with_time and not lapsed.consent
    audiences = Audiences(segments)
    # An order counts in the lead score and the customer value (journeys/scores/) as well.
    assert audiences.for_event("order_placed") == ["champions", "hot_leads", "lapsed_customers"]
    assert audiences.for_event("demo_requested") == ["hot_leads"]
    assert audiences.for_event("page_viewed") == []
    assert set(audiences.scheduled()) == {"lapsed_customers", "flu_shot_audience", "hot_leads", "champions"}


def test_a_segment_is_re_checked_when_a_segment_it_reads_is(tmp_path: Path) -> None:
    _write(tmp_path, "gold", "name: gold\nwhere: {trait: plan, equals: gold}\n")
    _write(tmp_path, "gold_buyers", "name: gold_buyers\nwhere: {all: [{in_segment: gold}, {performed: order}]}\n")
    audiences = Audiences(load_segments(tmp_path))
    assert audiences.for_traits(["plan"]) == ["gold", "gold_buyers"]
    assert audiences.for_event("order") == ["gold_buyers"]
    # A journey's update_profile writes traits too, outside the API's path: the Schedule re-checks them.
    assert audiences.scheduled() == ["gold", "gold_buyers"]
    _write(tmp_path, "buyers", "name: buyers\nwhere: {performed: order}\n")
    assert "buyers" not in Audiences(load_segments(tmp_path)).scheduled()


def _journeys(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


def test_journeys_validate_checks_segment_files(tmp_path: Path) -> None:
    ok = _journeys("validate", *(str(p) for p in sorted(SEGMENTS.glob("*.yaml"))))
    assert ok.returncode == 0, ok.stderr
    assert "lapsed_customers.yaml: ok (segment lapsed_customers)" in ok.stdout
    folder = tmp_path / "segments"
    good = _write(folder, "good", "name: good\nwhere: {performed: x}\n")
    bad = _write(folder, "bad", "name: bad\nwhere: {in_segment: goood}\n")
    refused = _journeys("validate", str(good), str(bad))
    assert refused.returncode == 1
    assert refused.stderr == "bad.yaml: where.in_segment: unknown segment 'goood' (did you mean 'good'?)\n"
    assert refused.stdout == "good.yaml: ok (segment good)\n"


def _yaml_blocks(page: Path) -> list[str]:
    text = page.read_text()
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


def test_the_examples_of_the_audiences_page_are_valid() -> None:
    from audiences.definitions import parse_segment
    from journeymap import load_map_text
    from journeymap.loader import parse_yaml

    blocks = _yaml_blocks(ROOT / "docs" / "audiences.md")
    shipped = (SEGMENTS / "lapsed_customers.yaml").read_text()
    assert blocks[0].split("\n", 1)[1] in shipped  # the page shows the shipped segment, below its file name
    assert parse_segment(parse_yaml(blocks[0], source="page"), source="page").name == "lapsed_customers"
    winback = next(block for block in blocks if block.startswith("name: winback"))
    journey = load_map_text(winback, source="audiences.md", templates_dir=ROOT / "journeys" / "templates")
    assert journey.event_types() == {
        "segment_entered.lapsed_customers",
        "segment_exited.lapsed_customers",
        "order_placed",
    }


def test_a_map_naming_an_unknown_segments_events_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    _write(folder / "segments", "lapsed", "name: lapsed\nwhere: {performed: order_placed}\n")
    good = _write(
        folder, "winback", "name: winback\nentry: {events: [segment_entered.lapsed]}\nsteps: [{id: e, end: {}}]\n"
    )
    bad = _write(
        folder,
        "typo",
        "name: typo\nentry: {events: [signed_up]}\nexit_on: [segment_exited.lapsd]\n"
        "steps:\n  - {id: w, wait_for: {events: [segment_entered.lapsed, segment_entered.vip]}}\n",
    )
    done = _journeys("validate", str(good), str(bad))
    assert done.returncode == 1
    assert done.stdout == "winback.yaml: ok (winback v1, 1 steps; no events declared: the event API checks none)\n"
    assert done.stderr == (
        "typo.yaml: exit_on[0].event: unknown segment 'lapsd' in 'segment_exited.lapsd' (did you mean 'lapsed'?)\n"
        "typo.yaml: steps[0]: unknown segment 'vip' in 'segment_entered.vip'\n"
    )
