"""``journeys validate``: each kind of bad map yields the precise line a marketer can act on.

Every line is ``<file>: <path inside it>: <what is wrong>``; the maps are small YAML files written per test,
with a ``templates/`` folder beside them as a real map would have.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from journeymap import JourneyMap, parse_map
from journeymap.templates import MessageTemplate
from starter.cli import main

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
name: refill
entry: {events: [filled]}
variables: {count: "0"}
"""

TEMPLATES = {
    "reminder": 'push: {title: Hi, body: "Hello {{ profile.first_name }}, {{ vars.count }} left"}\n',
    "email_only": "email: {subject: s, html: <p>h</p>, text: t}\n",
    "plain_email": 'email: {subject: s, text: "Hello {{ profile.first_name }}"}\n',
    "bad_name": 'push: {title: "Hi {{ customer.name }}", body: b}\n',
    "bad_var": 'push: {title: t, body: "{{ vars.refills }} left"}\n',
    "typos": 'push: {title: "Hi {{ profle.first_name }}", body: "{{ vars.cont }} left"}\n',
    "offer": 'email: {subject: s, html: "<a href=\'{{ unsubscribe_url }}\'>stop</a>", text: "{{ unsubscribe_url }}"}\n',
    "offer_html_only_link": "email: {subject: s, html: \"<a href='{{ unsubscribe_url }}'>stop</a>\", text: t}\n",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def validate(folder: Path, text: str, capsys: pytest.CaptureFixture[str], name: str = "refill.yaml") -> list[str]:
    """Validate one map; return its error lines (and check it failed)."""
    file = folder / name
    file.write_text(text, encoding="utf-8")
    code = main(["validate", str(file)])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert out == ""
    return err.splitlines()


def steps(*lines: str) -> str:
    return HEAD + "steps:\n" + "".join(f"  - {line}\n" for line in lines)


def test_a_valid_map_passes(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = folder / "refill.yaml"
    file.write_text(
        steps(
            "{id: remind, send: {channel: push, template: reminder, category: transactional}}",
            "{id: wait_order, wait_for: {events: [ordered], timeout: 3d, on_timeout: end}}",
        ),
        encoding="utf-8",
    )
    assert main(["validate", str(file)]) == 0
    assert (
        capsys.readouterr().out
        == "refill.yaml: ok (refill v1, 2 steps; no events declared: the event API checks none)\n"
    )


def test_unknown_step_references_are_named_where_they_are(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps(
            "{id: a, wait: {duration: 1d}, next: nowhere}",
            "{id: b, wait_for: {events: [x], timeout: 3d, on_event: lost, on_timeout: gone}}",
            "{id: c, branch: [{when: vars.count > 1, goto: nope}, {otherwise: nada}]}",
            "{id: d, split: {variants: [{name: v, weight: 1, goto: zip}], holdout: {weight: 1, goto: zap}}}",
            "{id: e, goto: nil}",
            "{id: f, send: {channel: push, template: reminder, category: transactional, on_failure: fail}}",
        ),
        capsys,
    )
    assert errors == [
        "refill.yaml: steps[0].next: unknown step 'nowhere'",
        "refill.yaml: steps[1].wait_for.on_event: unknown step 'lost'",
        "refill.yaml: steps[1].wait_for.on_timeout: unknown step 'gone'",
        "refill.yaml: steps[2].branch[0].goto: unknown step 'nope'",
        "refill.yaml: steps[2].branch[1].otherwise: unknown step 'nada'",
        "refill.yaml: steps[3].split.variants[0].goto: unknown step 'zip'",
        "refill.yaml: steps[3].split.holdout.goto: unknown step 'zap'",
        "refill.yaml: steps[4].goto: unknown step 'nil'",
        "refill.yaml: steps[5].send.on_failure: unknown step 'fail'",
    ]


def test_a_misspelt_name_gets_the_nearest_known_one(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps(
            "{id: remind, send: {channel: push, template: typos, category: transactional}, next: wiat}",
            "{id: wait, wait_for: {events: [x], timeout: 3d, match: 'evnt.n == vars.cout'}}",
            "{id: tally, set: {cont: vars.count}, next: zebra}",
        ),
        capsys,
    )
    assert errors == [
        "refill.yaml: steps[0].next: unknown step 'wiat' (did you mean 'wait'?)",
        "refill.yaml: steps[2].next: unknown step 'zebra'",  # nothing close: no guess
        "refill.yaml: steps[1].wait_for.match: unknown name 'evnt' (did you mean 'event'?) in "
        "'evnt.n == vars.cout'; expressions may use event, journey, now, profile, scores, segments, trigger, vars and "
        "date, days, days_between, hours()",
        # Each step kind's own checks come last, step by step in the map's order.
        "refill.yaml: steps[0].send.template: template 'typos' push.title: unknown variable 'profle' "
        "(did you mean 'profile'?)",
        "refill.yaml: steps[0].send.template: template 'typos' push.body: unknown variable vars.cont "
        "(did you mean 'vars.count'?); declare it",
        "refill.yaml: steps[2].set.cont: unknown variable 'cont' (did you mean 'count'?); "
        "declare it under `variables:`",
    ]
    file = folder / "refill.yaml"
    file.write_text(steps("{id: a, wait_for: {events: [x], timeout: 3d, match: 'vars.cout > 1'}}"))
    assert main(["validate", str(file)]) == 1
    assert "unknown variable vars.cout (did you mean 'vars.count'?) in 'vars.cout > 1'" in capsys.readouterr().err


def test_duplicate_and_reserved_step_ids(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps("{id: a, wait: {duration: 1d}}", "{id: a, wait: {duration: 2d}}", "{id: end, wait: {duration: 1d}}"),
        capsys,
    )
    assert errors == [
        "refill.yaml: steps[1].id: duplicate step id 'a' (also steps[0])",
        "refill.yaml: steps[2].id: 'end' is reserved: it is the target that ends a journey",
    ]


def test_bad_durations_and_times_of_day(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps(
            "{id: a, wait: {duration: 3x}}",
            "{id: b, wait: {duration: -1d}}",
            "{id: c, wait: {duration: 0d}}",
            "{id: d, wait: {duration: 4000d}}",
            "{id: e, wait: {duration: 5}}",
            "{id: f, wait_for: {events: [x], timeout: 0s}}",
            "{id: g, wait: {at: 10:00}}",
            "{id: h, wait: {at: '25:00'}}",
        ),
        capsys,
    )
    assert errors == [
        "refill.yaml: steps[0].wait.duration: '3x' is not a duration; "
        "write e.g. '3d', '2h30m', '1w', '90s' or ISO 8601 'P3DT4H'",
        "refill.yaml: steps[1].wait.duration: must be positive, not -1d",
        "refill.yaml: steps[2].wait.duration: must be positive, not 0s",
        "refill.yaml: steps[3].wait.duration: '4000d' is longer than the longest allowed duration (3660 days)",
        "refill.yaml: steps[4].wait.duration: write a duration with its unit, e.g. '3d', '12h', '30m'",
        "refill.yaml: steps[5].wait_for.timeout: must be positive, not 0s",
        "refill.yaml: steps[6].wait.at: quote the time of day, e.g. '09:30' (unquoted, YAML reads it as a number)",
        "refill.yaml: steps[7].wait.at: '25:00' is not a time of day; write e.g. '09:30'",
    ]


def test_journey_level_durations_must_be_positive(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "name: refill\nentry: {events: [filled], reentry: {cooldown: -1d}}\n"
        "goal: {events: [picked_up], within: 0s}\nsteps:\n  - {id: a, wait: {duration: 1d}}\n"
    )
    assert validate(folder, text, capsys) == [
        "refill.yaml: entry.reentry.cooldown: must be positive, not -1d",
        "refill.yaml: goal.within: must be positive, not 0s",
    ]


def test_unknown_time_zone(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "name: refill\ntimezone: Mars/Olympus\nentry: {events: [filled]}\nsteps:\n  - {id: a, end: {}}\n"
    assert validate(folder, text, capsys) == [
        "refill.yaml: timezone: 'Mars/Olympus' is not a known IANA time zone (e.g. 'Europe/Paris')"
    ]


def test_template_problems_fail_validation_not_a_send(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps(
            "{id: a, send: {channel: push, template: missing, category: transactional}}",
            "{id: b, send: {channel: push, template: email_only, category: transactional}}",
            "{id: c, send: {channel: push, template: bad_name, category: transactional}}",
            "{id: d, send: {channel: push, template: bad_var, category: transactional}}",
        ),
        capsys,
    )
    templates = folder / "templates"
    assert errors == [
        f"refill.yaml: steps[0].send.template: template 'missing' not found (looked for {templates}/missing.yaml)",
        "refill.yaml: steps[1].send.template: template 'email_only' has no 'push' part",
        "refill.yaml: steps[2].send.template: template 'bad_name' push.title: unknown variable 'customer'",
        "refill.yaml: steps[3].send.template: template 'bad_var' push.body: unknown variable vars.refills; declare it",
    ]


def test_a_promotional_email_needs_an_unsubscribe_link_in_text_and_html(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = validate(
        folder,
        steps(
            "{id: a, send: {channel: email, template: email_only, category: promotional}}",
            "{id: b, send: {channel: email, template: offer_html_only_link, category: promotional}}",
            "{id: c, send: {channel: email, template: offer, category: promotional}}",
            "{id: d, send: {channel: email, template: email_only, category: transactional}}",
        ),
        capsys,
    )
    needs = "a promotional email needs an unsubscribe link: add {{ unsubscribe_url }}"
    assert errors == [
        f"refill.yaml: steps[0].send.template: template 'email_only' email.text: {needs}",
        f"refill.yaml: steps[0].send.template: template 'email_only' email.html: {needs}",
        f"refill.yaml: steps[1].send.template: template 'offer_html_only_link' email.text: {needs}",
    ]


def test_the_brands_preferences_are_checked_beside_the_maps(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "brand").mkdir()
    catalog = folder / "brand" / "preferences.yaml"
    map_file = folder / "refill.yaml"
    map_file.write_text(steps("{id: a, wait: {duration: 1d}}"))
    catalog.write_text("topics:\n  Bad-Name: {label: x, category: promotional}\n")
    assert main(["validate", str(map_file)]) == 1
    assert f"{catalog}: topics.Bad-Name.[key]: String should match pattern" in capsys.readouterr().err
    catalog.write_text("topics:\n  offers: {label: Offers, category: promotional, templates: [offer, nope]}\n")
    assert main(["validate", str(map_file)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{catalog}: topics.offers.templates: template 'nope' not found in {folder / 'templates'}"
    ]


def test_an_email_with_only_a_text_body_is_valid(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = folder / "refill.yaml"
    file.write_text(steps("{id: a, send: {channel: email, template: plain_email, category: transactional}}"))
    assert main(["validate", str(file)]) == 0, capsys.readouterr().err


def test_expression_problems(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps(
            "{id: a, branch: [{when: customer.age > 3, goto: end}]}",
            "{id: b, branch: [{when: vars.missing > 3, goto: end}]}",
            "{id: c, branch: [{when: 'vars.count >', goto: end}]}",
            "{id: d, branch: [{when: 'vars.count|shuffle', goto: end}]}",
            "{id: e, set: {other: '1'}}",
            "{id: f, wait: {duration: 1d}}",
        ),
        capsys,
    )
    assert errors == [
        "refill.yaml: steps[0].branch[0].when: unknown name 'customer' in 'customer.age > 3'; expressions may use "
        "event, journey, now, profile, scores, segments, trigger, vars and date, days, days_between, hours()",
        "refill.yaml: steps[1].branch[0].when: unknown variable vars.missing in 'vars.missing > 3'; "
        "declare it under `variables:`",
        "refill.yaml: steps[2].branch[0].when: 'vars.count >' is not a valid expression: unexpected ')'",
        "refill.yaml: steps[3].branch[0].when: 'vars.count|shuffle' is not a valid expression: "
        "No filter named 'shuffle'.",
        "refill.yaml: steps[4].set.other: unknown variable 'other'; declare it under `variables:`",
    ]


def test_variables_are_read_only_once_set(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Variables are set in order after the entry condition: neither may read one not set yet."""
    text = (
        "name: refill\nentry: {events: [filled], when: vars.count > 1}\n"
        "variables: {a: vars.b + 1, b: '2', count: '0'}\n"
        "exit_on: [{event: x, when: vars.zzz}]\nsteps:\n  - {id: a, wait: {duration: 1d}}\n"
    )
    assert validate(folder, text, capsys) == [
        "refill.yaml: entry.when: vars.count is not set yet in 'vars.count > 1': "
        "variables are set in the order written, after entry.when",
        "refill.yaml: variables.a: vars.b is not set yet in 'vars.b + 1': "
        "variables are set in the order written, after entry.when",
        "refill.yaml: exit_on[0].when: unknown variable vars.zzz in 'vars.zzz'; declare it under `variables:`",
    ]


def test_loop_without_a_wait(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    errors = validate(
        folder,
        steps("{id: a, wait: {duration: 1d}}", "{id: b, set: {count: vars.count + 1}}", "{id: c, goto: b}"),
        capsys,
    )
    assert errors == ["refill.yaml: steps[1]: steps loop without waiting: b -> c -> b; add a wait"]


def test_shape_of_steps(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kinds = "send, wait, wait_for, branch, split, set, update_profile, webhook, goto, end"
    errors = validate(
        folder,
        steps(
            "{id: a, wait: {duration: 1d}, send: {channel: push, template: reminder, category: transactional}}",
            "{id: b, next: a}",
            "{id: c, wait: {duration: 1d}, colour: red}",
            "{id: d, send: {channel: fax, template: reminder, category: transactional}}",
            "{id: e, wait: {until: vars.count, duration: 1d}}",
            "{id: f, wait_for: {events: [x], on_timeout: end}}",
        ),
        capsys,
    )
    assert errors == [
        f"refill.yaml: steps[0]: a step needs an `id` and exactly one of: {kinds}",
        f"refill.yaml: steps[1]: a step needs an `id` and exactly one of: {kinds}",
        "refill.yaml: steps[2].colour: Extra inputs are not permitted",
        "refill.yaml: steps[3].send.channels[0]: Input should be 'email', 'sms', 'push', 'voice' or 'webhook'",
        "refill.yaml: steps[4].wait: give either `duration` or `until`, not both",
        "refill.yaml: steps[5].wait_for: `on_timeout` needs a `timeout`",
    ]


def test_extra_field_at_the_top(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEAD + "exits_on: [cancelled]\nsteps:\n  - {id: a, end: {}}\n"
    assert validate(folder, text, capsys) == ["refill.yaml: exits_on: Extra inputs are not permitted"]


def test_yaml_syntax_error_names_the_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "name: refill\nentry: {events: [filled]\nsteps: []\n"
    assert validate(folder, text, capsys) == [
        "refill.yaml: line 3: not valid YAML: expected ',' or '}', but got '<scalar>'"
    ]


@pytest.mark.parametrize("text", ["- a\n- list\n", "", "just words\n"])
def test_a_map_must_be_a_mapping(folder: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    assert validate(folder, text, capsys) == ["refill.yaml: a journey map is a YAML mapping (name, entry, steps, ...)"]


def test_unreadable_files(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "adir.yaml").mkdir()

    assert main(["validate", str(folder / "missing.yaml"), str(folder / "adir.yaml")]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "missing.yaml: cannot read: No such file or directory",
        "adir.yaml: cannot read: Is a directory",
    ]


def test_several_files_one_bad(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = folder / "good.yaml"
    good.write_text(steps("{id: a, wait: {duration: 1d}}"), encoding="utf-8")
    bad = folder / "bad.yaml"
    bad.write_text(steps("{id: a, goto: b}"), encoding="utf-8")

    assert main(["validate", str(good), str(bad)]) == 1

    out, err = capsys.readouterr()
    assert out == "good.yaml: ok (refill v1, 1 steps; no events declared: the event API checks none)\n"
    assert err == "bad.yaml: steps[0].goto: unknown step 'b'\n"


def test_templates_folder_option(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``--templates`` points at a shared folder instead of ``templates/`` beside the map."""
    elsewhere = tmp_path_factory.mktemp("maps")
    file = elsewhere / "refill.yaml"
    file.write_text(steps("{id: a, send: {channel: push, template: reminder, category: transactional}}"))

    assert main(["validate", str(file)]) == 1
    assert main(["validate", "--templates", str(folder / "templates"), str(file)]) == 0


def test_the_shipped_maps_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    maps = sorted((ROOT / "journeys").glob("*.yaml"))
    assert maps
    assert main(["validate", *map(str, maps)]) == 0
    assert capsys.readouterr().err == ""


def test_the_installed_command(folder: Path) -> None:
    """The console script as a user runs it: exit code, errors on stderr, ok lines on stdout."""
    good = folder / "good.yaml"
    good.write_text(steps("{id: a, wait: {duration: 1d}}"), encoding="utf-8")
    bad = folder / "refill.yaml"
    bad.write_text(steps("{id: a, wait_for: {events: [x], timeout: -3d}}"), encoding="utf-8")
    command = Path(sys.executable).parent / "journeys"

    result = subprocess.run(
        [str(command), "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )

    assert result.returncode == 1
    assert result.stdout == "good.yaml: ok (refill v1, 1 steps; no events declared: the event API checks none)\n"
    assert result.stderr == "refill.yaml: steps[0].wait_for.timeout: must be positive, not -3d\n"


# ----------------------------------------------------------------------------------------------- the docs

DOC = ROOT / "docs" / "journey-language.md"
_BASE = {"name": "doc_example", "entry": {"events": ["signed_up"]}, "steps": [{"id": "s", "wait": {"duration": "1d"}}]}


def doc_examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


def test_the_language_reference_examples_are_valid() -> None:
    """Full maps in docs/journey-language.md validate; fragments (steps, entry, templates) have a valid shape."""
    examples = doc_examples()
    assert len(examples) > 15
    for example in examples:
        data = yaml.safe_load(example)
        if isinstance(data, list):  # steps, shown alone: their shape (targets may be elsewhere)
            JourneyMap.model_validate({**_BASE, "steps": data})
        elif "name" in data:
            parse_map(data, source="doc")
        elif set(data) <= {"email", "push", "sms", "voice", "locales"}:
            MessageTemplate.model_validate(data)
        else:
            JourneyMap.model_validate({**_BASE, **data})


def test_the_worked_example_is_the_shipped_pharmacy_map() -> None:
    shipped = (ROOT / "journeys" / "pharmacy_refill.yaml").read_text(encoding="utf-8")
    assert shipped in doc_examples()
