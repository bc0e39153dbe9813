"""Property-based tests: whatever a marketer writes, the map language answers with a map or a precise error.

- Generated valid maps load, and survive ``model_dump(mode="json")`` -> ``model_validate`` unchanged (that
  round trip is what pins a map into a workflow's input and reads it back on every replay).
- Mutated maps (a field dropped, a wrong type, a broken reference, garbage YAML) give ``MapValidationError``
  naming where, never another exception.
- Expressions: random text and random ASTs raise nothing but ``ExpressionError``; the sandbox holds against
  attribute escapes however they are spelled.
- Durations: format and parse are inverse; anything else is a ``ValueError`` with a message.
"""

from __future__ import annotations

import contextlib
import copy
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from journeymap import JourneyMap, MapValidationError, load_map_text, parse_map
from journeymap.durations import MAX_DURATION, format_duration, parse_duration
from journeymap.expressions import ExpressionError, check_expression, evaluate

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------ generators

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
event_types = st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{0,15}", fullmatch=True)
durations = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 90), st.sampled_from(["s", "m", "h", "d", "w"]))
variable_names = st.lists(identifiers, min_size=1, max_size=4, unique=True)


@st.composite
def conditions(draw: st.DrawFn, variables: list[str]) -> str:
    name = draw(st.sampled_from(variables))
    op = draw(st.sampled_from(["==", "!=", ">", "<", ">=", "<="]))
    return f"vars.{name} {op} {draw(st.integers(-5, 5))}"


@st.composite
def steps(draw: st.DrawFn, variables: list[str]) -> list[dict[str, Any]]:
    """A list of steps whose jumps only go forward (a valid map never loops without waiting)."""
    count = draw(st.integers(1, 8))
    ids = draw(st.lists(identifiers.filter(lambda s: s != "end"), min_size=count, max_size=count, unique=True))
    out: list[dict[str, Any]] = []
    for index, step_id in enumerate(ids):
        later = [*ids[index + 1 :], "end"]
        target = st.sampled_from(later)
        kind = draw(st.sampled_from(["wait", "wait_for", "set", "branch", "split", "update_profile", "webhook", "end"]))
        step: dict[str, Any] = {"id": step_id}
        if kind == "wait":
            step["wait"] = draw(
                st.one_of(
                    st.builds(lambda d: {"duration": d}, durations),
                    st.builds(lambda h, m: {"at": f"{h:02d}:{m:02d}"}, st.integers(0, 23), st.integers(0, 59)),
                )
            )
        elif kind == "wait_for":
            spec: dict[str, Any] = {"events": draw(st.lists(event_types, min_size=1, max_size=3))}
            if draw(st.booleans()):
                spec["timeout"] = draw(durations)
                spec["on_timeout"] = draw(target)
            if draw(st.booleans()):
                spec["on_event"] = draw(target)
            step["wait_for"] = spec
        elif kind == "set":
            step["set"] = {draw(st.sampled_from(variables)): f"vars.{draw(st.sampled_from(variables))} + 1"}
        elif kind == "branch":
            cases: list[dict[str, Any]] = [
                {"when": draw(conditions(variables)), "goto": draw(target)} for _ in range(draw(st.integers(1, 3)))
            ]
            if draw(st.booleans()):
                cases.append({"otherwise": draw(target)})
            step["branch"] = cases
        elif kind == "split":
            names = draw(st.lists(identifiers.filter(lambda s: s != "holdout"), min_size=1, max_size=3, unique=True))
            split: dict[str, Any] = {
                "variants": [{"name": n, "weight": draw(st.integers(1, 100)), "goto": draw(target)} for n in names]
            }
            if draw(st.booleans()):
                split["holdout"] = {"weight": draw(st.integers(1, 100))}
            step["split"] = split
        elif kind == "update_profile":
            step["update_profile"] = {"set": {"stage": "'active'"}}
        elif kind == "webhook":
            step["webhook"] = {"url": "https://hooks.example.invalid/x", "body": {"n": f"vars.{variables[0]}"}}
        else:
            step["end"] = {"reason": draw(st.sampled_from(["completed", "done"]))}
        if kind not in ("branch", "end") and draw(st.booleans()):
            step["next"] = draw(target)
        out.append(step)
    return out


@st.composite
def maps(draw: st.DrawFn) -> dict[str, Any]:
    variables = draw(variable_names)
    data: dict[str, Any] = {
        "name": draw(identifiers),
        "version": draw(st.integers(1, 50)),
        "timezone": draw(st.sampled_from(["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata"])),
        "entry": {
            "events": draw(st.lists(event_types, min_size=1, max_size=3, unique=True)),
            "reentry": draw(st.sampled_from(["once", "after_end", {"cooldown": "30d"}])),
        },
        "variables": {name: str(draw(st.integers(0, 9))) for name in variables},
        "steps": draw(steps(variables)),
    }
    if draw(st.booleans()):
        data["entry"]["key"] = "order_id"
    if draw(st.booleans()):
        data["exit_on"] = draw(st.lists(event_types, max_size=2))
    if draw(st.booleans()):
        data["goal"] = {"events": [draw(event_types)], "within": draw(durations)}
    return data


# ------------------------------------------------------------------------------------------ valid maps


@PROFILE
@given(maps())
def test_generated_maps_load_and_round_trip_through_json(data: dict[str, Any]) -> None:
    journey = parse_map(data, source="generated.yaml")
    dumped = journey.model_dump(mode="json")
    assert JourneyMap.model_validate(dumped) == journey
    # And through YAML text, as a marketer's file would go.
    assert load_map_text(yaml.safe_dump(dumped), source="generated.yaml") == journey


# ------------------------------------------------------------------------------------------ invalid maps

wrong_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@PROFILE
@given(maps(), st.data())
def test_mutated_maps_give_map_validation_error_and_nothing_else(data: dict[str, Any], draw: st.DataObject) -> None:
    mutated = copy.deepcopy(data)
    path = draw.draw(st.sampled_from(_paths(mutated)))
    parent = _parent(mutated, path)
    how = draw.draw(st.sampled_from(["replace", "delete", "unknown_field"]))
    if how == "replace":
        parent[path[-1]] = draw.draw(wrong_values)
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent["surprise_field"] = 1
    else:
        parent.append(draw.draw(wrong_values))
    try:
        parse_map(mutated, source="mutated.yaml")
    except MapValidationError as exc:
        assert exc.errors
        assert all(str(e).startswith("mutated.yaml") and e.message for e in exc.errors)
    # A mutation may leave a valid map (an optional field deleted, a string swapped for another): fine.


@pytest.mark.parametrize("target", ["nowhere", "Bad-Id"])
def test_a_jump_to_an_unknown_step_names_the_path(target: str) -> None:
    data = {
        "name": "j",
        "entry": {"events": ["e"]},
        "steps": [{"id": "a", "wait": {"duration": "1d"}}, {"id": "b", "goto": target}],
    }
    with pytest.raises(MapValidationError) as raised:
        parse_map(data, source="j.yaml")
    assert any(e.path.startswith("steps[1].goto") for e in raised.value.errors), raised.value


@PROFILE
@given(st.text(max_size=300))
def test_any_text_as_a_map_file_is_a_map_or_a_map_validation_error(text: str) -> None:
    try:
        load_map_text(text, source="typed.yaml")
    except MapValidationError as exc:
        assert exc.errors and all(str(e).startswith("typed.yaml") for e in exc.errors)


# ------------------------------------------------------------------------------------------ expressions

CONTEXT: dict[str, Any] = {
    "event": {"rx_id": "rx1", "n": 3, "when": "2026-03-01"},
    "trigger": {"days_supply": 30},
    "profile": {"first_name": "Sam", "points": 12.5, "tags": ["a"]},
    "vars": {"x": 1, "s": "text", "d": "2026-01-01T00:00:00+00:00"},
    "journey": {"name": "j", "customer_id": "c1"},
    "now": "2026-03-01T10:00:00+00:00",
}

atoms = st.one_of(
    st.sampled_from(
        [
            "event.rx_id",
            "event.n",
            "event.missing",
            "trigger.days_supply",
            "profile.points",
            "profile.tags",
            "vars.x",
            "vars.s",
            "vars.d",
            "now",
            "unknown_name",
            "date(vars.d)",
            "date(vars.s)",
            "date(event.n)",
            "days(event.n)",
            "hours(vars.s)",
            "days_between(vars.d, now)",
            "none",
            "true",
            "[1, 2]",
            "{'a': 1}",
        ]
    ),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(alphabet="abc'\"\\{}", max_size=6).map(repr),
)
operators = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">", "and", "or", "in", "~"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(atoms)
    shape = draw(st.sampled_from(["binary", "not", "filter", "attr", "call", "index", "cond"]))
    inner = draw(expressions(depth - 1))
    if shape == "binary":
        return f"({inner} {draw(operators)} {draw(expressions(depth - 1))})"
    if shape == "not":
        return f"not {inner}"
    if shape == "filter":
        return (
            f"({inner}) | {draw(st.sampled_from(['int', 'float', 'length', 'upper', 'first', 'default(0)', 'nope']))}"
        )
    if shape == "attr":
        return f"({inner}).{draw(st.sampled_from(['real', 'upper', '__class__', '__globals__', 'mro', 'format']))}"
    if shape == "call":
        return f"({inner})()"
    if shape == "index":
        return f"({inner})[{draw(atoms)}]"
    return f"({inner} if {draw(expressions(depth - 1))} else {draw(atoms)})"


@PROFILE
@given(expressions())
@example("((0).upper and event.rx_id)")  # found by this test: jinja2 folds constants at compile time
def test_generated_expressions_evaluate_or_raise_expression_error(expression: str) -> None:
    try:
        evaluate(expression, CONTEXT)
    except ExpressionError as exc:
        assert str(exc)
    message = check_expression(expression, {"x", "s", "d"})  # validation never raises either
    assert message is None or isinstance(message, str)


@PROFILE
@given(st.text(max_size=80))
def test_any_text_as_an_expression_evaluates_or_raises_expression_error(expression: str) -> None:
    assume(expression.strip())
    with contextlib.suppress(ExpressionError):
        evaluate(expression, CONTEXT)
    message = check_expression(expression, {"x"})
    assert message is None or isinstance(message, str)


ESCAPES = [
    "vars.__class__.__mro__[1].__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "event.__init__.__globals__",
    "date.__globals__['__builtins__']['open']('/etc/passwd').read()",
    "days.__code__",
    "(1).__class__.__base__.__subclasses__()",
    "vars['__class__']",
    "profile|attr('__class__')",
    "lipsum.__globals__",
    "cycler.__init__.__globals__.os.popen('id').read()",
    "self.__init__.__globals__",
    "range(10**9)|list",
    "'%s' % vars.__class__",
    "'{0.__class__}'.format(vars)",
    "profile.tags.append(1)",
    "profile.update({'a': 1})",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_the_sandbox_holds(expression: str) -> None:
    context = copy.deepcopy(CONTEXT)
    try:
        result = evaluate(expression, context)
    except ExpressionError:
        return
    # Evaluated without error: then it yielded nothing that reaches outside, and changed nothing.
    assert context == CONTEXT
    assert not callable(result)
    assert "subclass" not in repr(result) and "<class" not in repr(result)


# ------------------------------------------------------------------------------------------ durations


@PROFILE
@given(st.integers(-MAX_DURATION.days * 86400, MAX_DURATION.days * 86400))
def test_format_and_parse_duration_are_inverse(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@PROFILE
@given(st.text(max_size=30))
def test_any_text_is_a_duration_or_a_value_error_with_a_message(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert abs(value) <= MAX_DURATION


@PROFILE
@given(st.integers(MAX_DURATION.days + 1, 10**7))
def test_durations_over_the_limit_are_refused(days: int) -> None:
    with pytest.raises(ValueError, match="longest allowed"):
        parse_duration(f"{days}d")
