"""A map against its events' declarations: it uses only declared events and reads only declared properties.

Checked whenever the map has declarations to be held to (an ``events.yaml`` beside it, or its own ``events:``
section): then every event it names must be declared, every ``event.x`` / ``trigger.x`` its expressions and
templates read must be a declared property of each event that can be ``event`` (or the trigger) there, an
optional one must be read with a default or a test, and a value must fit where it goes (``date()`` of a number
is refused). What ``event`` is at a step is followed through the step graph: a ``wait_for`` makes it one of
the events it takes (on its ``on_event`` way), every other step passes it on.

A map with no declarations at all is not checked (docs/events.md says why): a folder adopts the contract by
adding its ``events.yaml``, and from then on each event must be declared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from journeymap.errors import MapError
from journeymap.events import EventSpec, TrackingPlan, declared_in, merge_plans
from journeymap.fields import END
from journeymap.steps import kind_of
from journeymap.suggest import did_you_mean
from journeymap.templates import load_template, template_texts

if TYPE_CHECKING:
    from journeymap.models import JourneyMap

_ROOTS = ("event", "trigger")
_GUARDS = frozenset({"default", "d"})
_NOT_DATES = frozenset({"number", "integer", "boolean", "list", "object"})
_NOT_NUMBERS = frozenset({"string", "date", "date-time", "boolean", "list", "object"})
_PARSE = ImmutableSandboxedEnvironment()


def check_contract(
    journey: JourneyMap, *, source: str, plan: TrackingPlan | None, templates_dir: Path | None
) -> list[MapError]:
    """Every way ``journey`` breaks its events' declarations (``plan``: the shared ``events.yaml``, if any)."""
    merged, errors = merge_plans([p for p in (plan, declared_in(journey.events, source)) if p is not None])
    errors += _undeclared_events(journey, merged, source)
    declared = merged.events
    triggers = [e for e in journey.entry.events if e in declared]
    if journey.entry.key:
        for event in triggers:
            if journey.entry.key not in declared[event].properties:
                message = f"key {journey.entry.key!r} is not a declared property of {event!r}"
                errors.append(MapError(source, "entry.key", message))
    for path, text, events, template in _readers(journey, templates_dir):
        known = [e for e in events if e in declared]
        scope = {"event": known, "trigger": triggers}
        errors += [MapError(source, path, m) for m in _check_text(text, scope, declared, template=template)]
    return errors


SYSTEM_EVENT_PREFIXES = ("segment_entered.", "segment_exited.")
"""Events journeys make themselves (entering or leaving a segment, ``audiences.definitions``), not a backend: they
are not in the tracking plan; ``journeys validate`` and ``journeys check`` hold them to the segments defined."""


def _undeclared_events(journey: JourneyMap, plan: TrackingPlan, source: str) -> Iterator[MapError]:
    used: list[tuple[str, str]] = [(f"entry.events[{i}]", e) for i, e in enumerate(journey.entry.events)]
    used += [(f"exit_on[{i}]", rule.event) for i, rule in enumerate(journey.exit_on)]
    if journey.goal:
        used += [(f"goal.events[{i}]", e) for i, e in enumerate(journey.goal.events)]
    for index, step in enumerate(journey.steps):
        used += [(f"steps[{index}].{kind_of(step).name}.events", e) for e in kind_of(step).events(step)]
    for path, event in used:
        if event not in plan.events and not event.startswith(SYSTEM_EVENT_PREFIXES):
            suggestion = did_you_mean(event, plan.events)
            message = f"event {event!r} is not declared{suggestion}; declare it in events.yaml or under `events:`"
            yield MapError(source, path, message)


def _readers(journey: JourneyMap, templates_dir: Path | None) -> Iterator[tuple[str, str, list[str], bool]]:
    """(path, text, event types ``event`` may be there, whether the text is a template) of every expression and
    template in the map."""
    triggers = list(journey.entry.events)
    if journey.entry.when:
        yield "entry.when", journey.entry.when, triggers, False
    for name, expression in journey.variables.items():
        yield f"variables.{name}", expression, triggers, False
    for index, rule in enumerate(journey.exit_on):
        if rule.when:
            yield f"exit_on[{index}].when", rule.when, [rule.event], False
    if journey.goal and journey.goal.when:
        yield "goal.when", journey.goal.when, list(journey.goal.events), False
    current = current_events(journey)
    for index, step in enumerate(journey.steps):
        kind = kind_of(step)
        own = kind.takes_events(step) or sorted(current.get(index, set()))
        for path, expression in kind.expressions(step):
            yield f"steps[{index}].{path}", expression, own, False
        if templates_dir is None:
            continue
        for path, name, channels in kind.templates(step):
            file = templates_dir / f"{name}.yaml"
            try:
                template = load_template(file)
            except Exception:  # a missing or broken template: the send step's own check reports it
                continue
            for where, text in template_texts(template, channels):
                yield f"steps[{index}].{path}: {name} {where}", text, sorted(current.get(index, set())), True


def current_events(journey: JourneyMap) -> dict[int, set[str]]:
    """Step index -> the event types that can be ``event`` when the step runs (the trigger at first)."""
    index_of = {step.id: i for i, step in enumerate(journey.steps)}
    seen: dict[int, set[str]] = {0: set(journey.entry.events)}
    work = [0]
    while work:
        index = work.pop()
        step = journey.steps[index]
        kind = kind_of(step)
        following = journey.next_of(index)
        flow = kind.event_flow(step, following)
        if flow is None:
            outs = [step.next] if step.next is not None else []
            outs += [target for _, target in kind.targets(step)]
            if step.next is None and not kind.always_jumps(step):
                outs.append(following)
            flow = [(target, None) for target in outs]
        for target, events in flow:
            if target == END or target not in index_of:
                continue
            arriving = set(events) if events is not None else seen[index]
            known = seen.setdefault(index_of[target], set())
            if not arriving <= known:
                known |= arriving
                work.append(index_of[target])
    return seen


# ----------------------------------------------------------------------------------------------- one text


@dataclass(frozen=True)
class _Read:
    root: str
    name: str
    node: nodes.Node


def _check_text(
    text: str, scope: dict[str, list[str]], declared: Mapping[str, EventSpec], *, template: bool
) -> list[str]:
    try:
        tree = _PARSE.parse(text if template else "{{ (" + text + ") }}")
    except TemplateSyntaxError:
        return []  # the map's own checks report it
    reads, guarded = _reads(tree)
    problems: list[str] = []
    reported: set[tuple[str, str]] = set()
    for read in reads:
        if (read.root, read.name) in reported:
            continue
        for event in scope[read.root]:
            prop = declared[event].properties.get(read.name)
            if prop is None:
                suggestion = did_you_mean(read.name, declared[event].properties, prefix=f"{read.root}.")
                problems.append(f"{read.root}.{read.name} is not a declared property of {event!r}{suggestion}")
            elif not prop.required and (read.root, read.name) not in guarded:
                problems.append(
                    f"{read.root}.{read.name} is optional in {event!r}: read it with `| default(...)` or test "
                    "`is defined`, or declare it required"
                )
            else:
                continue
            reported.add((read.root, read.name))
            break
    typer = _Types(scope, declared)
    problems += typer.problems(tree)
    return problems


def _property_of(node: nodes.Node) -> tuple[str, str] | None:
    """``event.x`` or ``event['x']`` as ("event", "x")."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name in _ROOTS:
        return node.node.name, node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and node.node.name in _ROOTS
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.node.name, node.arg.value
    return None


def _reads(tree: nodes.Node) -> tuple[list[_Read], set[tuple[str, str]]]:
    """The properties read, and those read safely somewhere (under a ``default`` filter or an ``is defined``
    test: a template's ``{% if event.x is defined %}...{{ event.x }}`` reads it only when it is there)."""
    reads: list[_Read] = []
    guarded: set[tuple[str, str]] = set()

    def walk(node: nodes.Node, safe: bool) -> None:
        found = _property_of(node)
        if found is not None:
            reads.append(_Read(found[0], found[1], node))
            if safe:
                guarded.add(found)
            return
        if isinstance(node, nodes.Filter) and node.name in _GUARDS and node.node is not None:
            walk(node.node, True)
            arguments: list[nodes.Node] = [*node.args, *(kw.value for kw in node.kwargs)]
            for argument in arguments:
                walk(argument, safe)
            return
        if isinstance(node, nodes.Test) and node.name in ("defined", "undefined", "none"):
            walk(node.node, True)
            return
        for child in node.iter_child_nodes():
            walk(child, safe)

    walk(tree, False)
    return reads, guarded


class _Types:
    """The type a value has where it can be known (a declared property, a literal, a helper's result), and
    the places where it does not fit."""

    def __init__(self, scope: dict[str, list[str]], declared: Mapping[str, EventSpec]) -> None:
        self._scope = scope
        self._declared = declared

    def of(self, node: nodes.Node) -> str | None:
        found = _property_of(node)
        if found is not None:
            root, name = found
            types = {
                self._declared[e].properties[name].type_name
                for e in self._scope[root]
                if name in self._declared[e].properties
            }
            return types.pop() if len(types) == 1 else None  # several (a union, or events that differ): unknown
        if isinstance(node, nodes.Const):
            value = node.value
            if isinstance(value, bool):
                return "boolean"
            if isinstance(value, int):
                return "integer"
            if isinstance(value, float):
                return "number"
            if isinstance(value, str):
                return "string"
            return None
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            return {"date": "date-time", "days": "duration", "hours": "duration", "days_between": "number"}.get(
                node.node.name
            )
        if isinstance(node, nodes.Name) and node.name == "now":
            return "date-time"
        return None

    def problems(self, tree: nodes.Node) -> list[str]:
        found: list[str] = []
        for call in tree.find_all(nodes.Call):
            if not isinstance(call.node, nodes.Name):
                continue
            name = call.node.name
            refuse = {"date": _NOT_DATES, "days": _NOT_NUMBERS, "hours": _NOT_NUMBERS, "days_between": _NOT_DATES}
            for arg in call.args:
                kind = self.of(arg)
                if name in refuse and kind in refuse[name]:
                    what = _describe(arg)
                    found.append(f"{name}() of {what}, which is declared {_article(kind)}")
        for op in (nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow):
            for binary in tree.find_all(op):
                sides: tuple[nodes.Node, nodes.Node] = (binary.left, binary.right)
                for side in sides:
                    kind = self.of(side)
                    if kind in ("string", "boolean", "list", "object") and _property_of(side) is not None:
                        found.append(f"arithmetic on {_describe(side)}, which is declared {_article(kind)}")
        return found


def _describe(node: nodes.Node) -> str:
    found = _property_of(node)
    return f"{found[0]}.{found[1]}" if found else "a value"


def _article(kind: str | None) -> str:
    return f"an {kind}" if kind and kind[0] in "aeiou" else f"a {kind}"
