"""The tracking plan as declared and checked: events.yaml, a map's `events:`, and what `journeys validate` and
`journeys events` say about them (issue 17, items 1 and 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from journeymap import MapValidationError
from journeymap.events import EventSpec, PayloadValidator
from journeymap.scenario import parse_scenario
from starter.catalog import load_catalog, load_plan, map_plan
from starter.cli import main

ROOT = Path(__file__).resolve().parent.parent
A_DAY = "an ISO 8601 date (2026-11-25) or an ISO 8601 date-time (2026-11-25T09:00:00Z)"
PHARMACY = (ROOT / "journeys" / "pharmacy_refill.yaml").read_text(encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped journeys folder: the pharmacy map, its templates, the shared events.yaml."""
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    shutil.copy(ROOT / "journeys" / "pharmacy_refill.yaml", journeys)
    shutil.copy(ROOT / "journeys" / "events.yaml", journeys)
    shutil.copytree(ROOT / "journeys" / "templates", journeys / "templates")
    return journeys


def _validate(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str, str]:
    code = main(["validate", *map(str, files)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_shipped_plan_and_maps_validate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _validate(capsys, *sorted((ROOT / "journeys").glob("*.yaml")))
    assert (code, err) == (0, "")
    assert "events.yaml: ok (20 events declared)" in out
    assert "no events declared" not in out  # every shipped map is held to the plan


def test_an_event_declared_twice_is_refused_with_both_lines(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Plain YAML keeps the second of two equal keys without a word: the first declaration would vanish."""
    plan = (folder / "events.yaml").read_text(encoding="utf-8")
    (folder / "events.yaml").write_text(plan + "  refill_ordered:\n    description: pasted twice\n")
    first = plan.splitlines().index("  refill_ordered:") + 1
    code, _, err = _validate(capsys, folder / "events.yaml")
    assert code == 1
    assert f"key 'refill_ordered' appears twice (first on line {first})" in err
    assert err.startswith(f"events.yaml: line {len(plan.splitlines()) + 1}: ")


def test_a_property_read_but_not_declared_is_named_with_file_and_path(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "pharmacy_refill.yaml").write_text(PHARMACY.replace("event.picked_up_at", "event.picked_up"))
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert err == (
        "pharmacy_refill.yaml: steps[9].set.supply_ends: event.picked_up is not a declared property of "
        "'refill_picked_up' (did you mean 'event.picked_up_at'?)\n"
    )


def test_what_event_is_at_a_step_follows_the_waits(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """At next_cycle `event` is the pickup (both waits that lead there take it), not the ready event before it:
    reading the store name there is reading a property the pickup does not have."""
    text = PHARMACY.replace("date(event.picked_up_at)", "date(event.picked_up_at) if event.store_name else now")
    (folder / "pharmacy_refill.yaml").write_text(text)
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert "steps[9].set.supply_ends: event.store_name is not a declared property of 'refill_picked_up'" in err


def test_a_date_of_a_number_is_refused(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "pharmacy_refill.yaml").write_text(PHARMACY.replace("date(trigger.filled_at)", "date(trigger.rx_id)"))
    assert _validate(capsys, folder / "pharmacy_refill.yaml")[0] == 0  # a string may hold a date
    (folder / "pharmacy_refill.yaml").write_text(
        PHARMACY.replace("date(trigger.filled_at)", "date(trigger.days_supply)")
    )
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert err == (
        "pharmacy_refill.yaml: variables.supply_ends: date() of trigger.days_supply, which is declared an integer\n"
    )


def test_an_optional_property_must_be_read_with_a_default(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = (folder / "events.yaml").read_text()
    (folder / "events.yaml").write_text(
        plan.replace("store_name: {type: string,", "store_name: {type: string, required: false,")
    )
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert "steps[4].set.store_name: event.store_name is optional in 'refill_ready'" in err
    (folder / "pharmacy_refill.yaml").write_text(
        PHARMACY.replace("store_name: event.store_name", "store_name: event.store_name | default('our store')")
    )
    assert _validate(capsys, folder / "pharmacy_refill.yaml")[0] == 0


def test_an_undeclared_event_is_refused_with_a_suggestion(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "pharmacy_refill.yaml").write_text(
        PHARMACY.replace("events: [refill_ordered]", "events: [refil_ordered]")
    )
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert err == (
        "pharmacy_refill.yaml: steps[2].wait_for.events: event 'refil_ordered' is not declared "
        "(did you mean 'refill_ordered'?); declare it in events.yaml or under `events:`\n"
    )


def test_templates_read_only_declared_properties(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = folder / "templates" / "refill_ready.yaml"
    template.write_text(template.read_text().replace("{{ vars.store_name }}", "{{ event.store }}"))
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert (
        "pharmacy_refill.yaml: steps[5].send.template: refill_ready push.body: event.store is not a declared "
        "property of 'refill_ready' (did you mean 'event.store_name'?)"
    ) in err


def test_a_map_may_declare_its_events_and_must_agree_with_the_shared_file(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = PHARMACY + "\nevents:\n  refill_ordered:\n    properties:\n      rx_id: integer\n"
    (folder / "pharmacy_refill.yaml").write_text(own)
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert err == (
        "pharmacy_refill.yaml: events.refill_ordered: event 'refill_ordered' is declared differently in "
        "events.yaml: events.refill_ordered\n"
    )
    # Alone (no events.yaml), the map's own section is its whole plan: every other event is undeclared.
    (folder / "events.yaml").unlink()
    code, _, err = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 1
    assert "event 'prescription_filled' is not declared" in err


def test_a_folder_without_declarations_is_not_checked(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "events.yaml").unlink()
    code, out, _ = _validate(capsys, folder / "pharmacy_refill.yaml")
    assert code == 0
    assert "no events declared: the event API checks none" in out
    assert load_plan(folder, load_catalog(folder)) is None


def test_a_broken_events_file_names_its_path(folder: Path) -> None:
    (folder / "events.yaml").write_text("events:\n  refill_ready:\n    properties:\n      rx_id: text\n")
    with pytest.raises(MapValidationError) as caught:
        load_catalog(folder)
    assert str(caught.value.errors[0]) == (
        "events.yaml: events.refill_ready.properties.rx_id.type[0]: Input should be 'string', 'number', 'integer', "
        "'boolean', 'date-time', 'date', 'list' or 'object'"
    )


def test_two_maps_declaring_one_event_differently_are_refused(folder: Path) -> None:
    (folder / "events.yaml").unlink()
    section = "\nevents:\n  ping:\n    properties:\n      n: {kind}\n"
    for name, kind in (("a", "integer"), ("b", "string")):
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nentry: {{events: [ping]}}\nsteps:\n  - {{id: s, wait: {{duration: 1d}}}}\n"
            + section.format(kind=kind)
        )
    (folder / "pharmacy_refill.yaml").unlink()
    with pytest.raises(MapValidationError, match=r"b.yaml: events.ping: event 'ping' is declared differently in a"):
        load_catalog(folder)


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"rx_id": "rx-1", "picked_up_at": "2026-12-30T11:00:00-06:00"}, []),
        ({"rx_id": "rx-1", "picked_up_at": "2026-12-30T11:00:00Z", "extra": [1]}, []),  # extras are allowed
        ({"rx_id": "rx-1"}, [("picked_up_at", "required, missing; expected an ISO 8601 date-time")]),
        ({"rx_id": "rx-1", "picked_up_at": None}, [("picked_up_at", "required, null")]),
        ({"rx_id": 7, "picked_up_at": "2026-12-30"}, [("rx_id", "expected a string"), ("picked_up_at", "expected")]),
    ],
)
def test_a_payload_is_checked_against_its_declaration(
    properties: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    spec = EventSpec.model_validate({"properties": {"rx_id": "string", "picked_up_at": "date-time"}})
    found = PayloadValidator("refill_picked_up", spec).violations(properties)
    assert len(found) == len(expected), found
    for violation, (name, start) in zip(found, expected, strict=True):
        assert violation.property == name
        assert violation.expected.startswith(start)
        assert str(violation).startswith(f"event 'refill_picked_up': property {name!r}: {start}")


def test_allowed_values_numbers_and_booleans() -> None:
    spec = EventSpec.model_validate(
        {
            "properties": {
                "channel": {"type": "string", "values": ["store", "drive_through"]},
                "count": "integer",
                "amount": "number",
                "gift": {"type": "boolean", "required": False},
            }
        }
    )
    check = PayloadValidator("e", spec).violations
    assert check({"channel": "store", "count": 3, "amount": 2.5}) == []
    assert check({"channel": "store", "count": 3.0, "amount": 2}) == []  # 3.0 is an integer in JSON
    found = check({"channel": "post", "count": True, "amount": "2.5", "gift": "yes"})
    assert [(v.property, v.expected, v.got) for v in found] == [
        ("channel", "expected one of 'drive_through', 'store'", "str 'post'"),
        ("count", "expected an integer", "bool True"),
        ("amount", "expected a number", "str '2.5'"),
        ("gift", "expected true or false", "str 'yes'"),
    ]


def test_journeys_events_prints_the_plan_and_json_schemas(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(folder))
    assert main(["events"]) == 0
    out = capsys.readouterr().out
    assert "refill_picked_up: used by pharmacy_refill" in out
    assert "  picked_up_at         date or date-time required" in out
    assert "signed_up: used by no journey" in out  # declared in the shared file, used by no map of this folder

    assert main(["events", "--json-schema"]) == 0
    documents = json.loads(capsys.readouterr().out)
    pickup = documents["refill_picked_up"]
    assert pickup["properties"]["properties"]["required"] == ["rx_id", "picked_up_at"]
    assert pickup["properties"]["properties"]["properties"]["picked_up_at"]["anyOf"] == [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
    ]

    assert main(["events", "--json-schema", "--out", str(tmp_path / "schemas")]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "schemas" / "refill_picked_up.schema.json").read_text())
    assert written == pickup


def test_docs_list_every_declared_event_with_its_properties() -> None:
    """docs/events.md is what a backend developer reads: it names every built-in event and each property."""
    plan = load_plan(ROOT / "journeys", load_catalog(ROOT / "journeys"))
    assert plan is not None
    docs = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, spec in plan.events.items():
        [row] = [line for line in docs.splitlines() if line.startswith(f"| `{name}` |")]
        for prop in spec.properties:
            assert f"`{prop}`" in row, f"docs/events.md: {name} does not name {prop}"
        if name in load_catalog(ROOT / "journeys")["pharmacy_refill"].event_types():
            [line] = [line for line in readme.splitlines() if line.startswith(f"| `{name}` |")] or [
                line for line in readme.splitlines() if f"`{name}`" in line
            ]
            for prop in spec.properties:
                assert f"`{prop}`" in line, f"README: {name} does not name {prop}"


def test_journeys_track_holds_to_the_plan_too(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before anything is reached: no Temporal server is needed to be told what is missing."""
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(folder))
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", "127.0.0.1:9")  # nothing listens there
    assert main(["track", "c1", "refill_picked_up", "rx_id=rx-1"]) == 1
    assert capsys.readouterr().err == (
        f"journeys track: event 'refill_picked_up': property 'picked_up_at': required, missing; expected {A_DAY}\n"
    )


def test_a_scenario_must_tell_a_story_the_event_api_would_accept(folder: Path) -> None:
    """`journeys test` holds a scenario's events to the plan: a pickup without its date cannot happen."""
    journey = load_catalog(folder)["pharmacy_refill"]
    plan = map_plan(journey, folder)
    assert plan is not None
    scenario = yaml.safe_load((ROOT / "journeys" / "scenarios" / "pharmacy_refill_late_pickup.yaml").read_text())
    parse_scenario(scenario, {journey.name: journey}, source="s.yaml", plans={journey.name: plan})  # as shipped
    del scenario["timeline"][3]["properties"]["picked_up_at"]
    with pytest.raises(MapValidationError) as caught:
        parse_scenario(scenario, {journey.name: journey}, source="s.yaml", plans={journey.name: plan})
    assert [str(e) for e in caught.value.errors] == [
        "s.yaml: timeline[3].properties.picked_up_at: event 'refill_picked_up': property 'picked_up_at': "
        f"required, missing; expected {A_DAY}"
    ]
