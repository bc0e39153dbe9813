"""Segment definitions: YAML files beside the maps (``journeys/segments/*.yaml``), validated before anything runs.

A segment names who is in it with one condition, built from the kinds in :mod:`audiences.conditions`::

    name: lapsed_customers
    description: bought before, but nothing in 60 days (the rescue campaign's audience)
    where:
      all:
        - performed: order_placed
        - {performed: order_placed, within: 60d, at_most: 0}

Every problem is reported as ``file: path: message`` (``lapsed.yaml: where.all[1].within: ...``), with the
nearest known name when a name is misspelt; a set of segments is refused when one names a segment that does
not exist, when two share a name, or when segments reach themselves through ``in_segment``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from audiences.conditions import Condition, ConditionModel, Scope, kind_of, kinds, walk
from audiences.conditions.consent import ConsentSpec
from audiences.conditions.performed import PerformedCondition
from audiences.scores import ScoreDefinition, load_scores, scores_beside
from journeymap.errors import MapError, MapValidationError
from journeymap.events import TrackingPlan
from journeymap.fields import IDENTIFIER, FrozenModel
from journeymap.loader import parse_yaml, read_text
from journeymap.models import JourneyMap
from journeymap.steps import kind_of as kind_of_step
from journeymap.suggest import did_you_mean

ENTERED = "segment_entered"
EXITED = "segment_exited"
"""A change of membership becomes the event ``segment_entered.<segment>`` or ``segment_exited.<segment>`` (with the
property ``segment``): the segment is in the type, so routing sends it only to the maps that name that segment,
by the same look-up as any event, and a map on one segment never starts for another's entries."""


def event_type(entered: bool, segment: str) -> str:
    """``segment_entered.lapsed_customers``: the type of the event of entering (or leaving) ``segment``."""
    return f"{ENTERED if entered else EXITED}.{segment}"


class Segment(FrozenModel):
    """One audience: its name (events and maps use it) and the condition its members meet."""

    name: str = Field(pattern=IDENTIFIER, max_length=64)
    description: str = ""
    where: Condition


@dataclass(frozen=True)
class Dependencies:
    """What one segment's membership depends on, gathered from every condition in it."""

    events: frozenset[str]
    traits: frozenset[str]
    segments: frozenset[str]
    lists: frozenset[str]
    consent: bool
    changes_with_time: bool


def dependencies(segment: Segment) -> Dependencies:
    nodes = [condition for _, condition in walk(segment.where)]
    return Dependencies(
        events=frozenset(e for c in nodes for e in kind_of(c).events(c)),
        traits=frozenset(t for c in nodes for t in kind_of(c).traits(c)),
        segments=frozenset(s for c in nodes for s in kind_of(c).segments(c)),
        lists=frozenset(name for c in nodes for name in kind_of(c).lists(c)),
        consent=any(kind_of(c).consent(c) for c in nodes),
        changes_with_time=any(kind_of(c).changes_with_time(c) for c in nodes),
    )


def format_location(loc: tuple[int | str, ...]) -> str:
    """Pydantic's location without the tags of the condition union: ``where.all[1].within``.

    A tag sits wherever a condition is expected (after ``where``, an item of ``all``/``any``, and ``not``),
    and is the name of the kind, which the next part repeats when the error is in the kind's own field.
    """
    out = ""
    expecting = False
    kind: str | None = None
    for part in loc:
        if expecting and isinstance(part, str):
            expecting, kind = False, part
            continue
        if isinstance(part, int):
            out += f"[{part}]"
            expecting = kind in ("all", "any")
            continue
        out += f".{part}" if out else part
        expecting = (part == "where" and kind is None) or (part == "not" and kind == "not")
        if part == "where" and kind is None:
            kind = ""
    return out


def parse_segment(data: Any, *, source: str) -> Segment:
    """Validate already-parsed YAML (shape only; :func:`check_segments` checks names across a set)."""
    if not isinstance(data, dict):
        raise MapValidationError([MapError(source, "", "a segment is a YAML mapping (name, description, where)")])
    try:
        return Segment.model_validate(data)
    except ValidationError as exc:
        errors = [
            MapError(source, format_location(error["loc"]), _message(error)) for error in exc.errors(include_url=False)
        ]
        raise MapValidationError(errors) from None


def _known_keys() -> set[str]:
    """Every key a segment file may hold somewhere: for the nearest one to a misspelt key."""
    keys = set(Segment.model_fields) | {"property"}
    for kind in kinds():
        keys |= {info.alias or name for name, info in kind.model.model_fields.items()}
        if kind.name == "consent":
            keys |= set(ConsentSpec.model_fields)
    return keys


def _message(error: Any) -> str:
    message: str = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and isinstance(error["loc"][-1], str):
        return f"unknown field {error['loc'][-1]!r}{did_you_mean(str(error['loc'][-1]), _known_keys())}"
    if error["type"] == "condition_kind" and isinstance(error["input"], dict):
        unknown = [str(key) for key in error["input"] if key not in _known_keys()]
        if unknown:
            message += f"; unknown {unknown[0]!r}{did_you_mean(unknown[0], condition_kinds())}"
    return message


def load_segment(path: Path) -> Segment:
    return parse_segment(parse_yaml(read_text(path), source=path.name), source=path.name)


def check_segments(
    segments: dict[str, tuple[str, Segment]],
    *,
    lists: Iterable[str] | None = None,
    scores: Mapping[str, ScoreDefinition] | None = None,
) -> list[MapError]:
    """Problems of meaning across a set of segments (name -> (file, segment)): unknown names, cycles. A condition
    on a computed trait keeps the definition of the score it names (``scores``)."""
    scope = Scope(frozenset(segments), None if lists is None else frozenset(lists), dict(scores or {}))
    errors: list[MapError] = []
    for source, segment in segments.values():
        for path, condition in walk(segment.where):
            errors += [
                MapError(source, where, message) for where, message in kind_of(condition).check(condition, scope, path)
            ]
    errors += _cycles(segments)
    return errors


def _cycles(segments: dict[str, tuple[str, Segment]]) -> list[MapError]:
    reads = {name: sorted(dependencies(segment).segments & set(segments)) for name, (_, segment) in segments.items()}
    errors: list[MapError] = []
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        path.append(name)
        for other in reads[name]:
            if state.get(other) == 1:
                cycle = path[path.index(other) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    source = segments[other][0]
                    loop = " -> ".join([*cycle, other])
                    errors.append(MapError(source, "where", f"segments read each other in a cycle: {loop}"))
            elif state.get(other) is None:
                visit(other, path)
        path.pop()
        state[name] = 2

    for name in sorted(segments):
        if state.get(name) is None:
            visit(name, [])
    return errors


def refresh_order(segments: dict[str, Segment]) -> list[str]:
    """Segment names, each after the segments it reads (the catalog is free of cycles)."""
    done: list[str] = []

    def place(name: str) -> None:
        if name in done:
            return
        for other in sorted(dependencies(segments[name]).segments & set(segments)):
            place(other)
        done.append(name)

    for name in sorted(segments):
        place(name)
    return done


def load_segments(
    folder: Path, *, lists: Iterable[str] | None = None, scores: Mapping[str, ScoreDefinition] | None = None
) -> dict[str, Segment]:
    """Every ``*.yaml`` in ``folder`` by name (none when the folder does not exist), with the scores of
    ``scores/`` beside it unless ``scores`` are given; raises :class:`MapValidationError` listing every problem of
    every file (a broken score file too)."""
    if scores is None:
        scores = load_scores(scores_beside(folder))
    return load_segment_files(sorted(folder.glob("*.yaml")) if folder.is_dir() else [], lists=lists, scores=scores)


def load_segment_files(
    paths: Iterable[Path], *, lists: Iterable[str] | None = None, scores: Mapping[str, ScoreDefinition] | None = None
) -> dict[str, Segment]:
    """The segments of ``paths`` (checked together); ``scores`` default to those beside the first path's folder."""
    found = read_segment_files(paths, lists=lists, scores=scores)
    return {name: segment for name, (_, segment) in found.items()}


def read_segment_files(
    paths: Iterable[Path], *, lists: Iterable[str] | None = None, scores: Mapping[str, ScoreDefinition] | None = None
) -> dict[str, tuple[str, Segment]]:
    """Every segment of ``paths`` by name, with the file it came from; raises :class:`MapValidationError` listing
    every problem of every file (shapes, names across the set, cycles). ``scores`` default to those beside the
    first path's folder."""
    paths = list(paths)
    if scores is None:
        scores = load_scores(scores_beside(paths[0].parent)) if paths else {}
    found: dict[str, tuple[str, Segment]] = {}
    errors: list[MapError] = []
    for path in paths:
        try:
            segment = load_segment(path)
        except MapValidationError as exc:
            errors += exc.errors
            continue
        if segment.name in found:
            errors.append(
                MapError(path.name, "name", f"segment name {segment.name!r} is used by {found[segment.name][0]}")
            )
            continue
        found[segment.name] = (path.name, segment)
    errors += check_segments(found, lists=lists, scores=scores)
    if errors:
        raise MapValidationError(errors)
    return found


def check_segment_events(segments: dict[str, tuple[str, Segment]], plan: TrackingPlan) -> list[MapError]:
    """What the segments count against the tracking plan (``events.yaml`` and the maps' ``events:``): each event a
    condition counts is declared (a misspelt one would count nothing, silently, for ever), and each property a
    ``performed`` condition compares is one its event declares. Segment events (``segment_entered.<segment>``)
    are the system's own: they name a segment of the set instead."""
    errors: list[MapError] = []
    for source, segment in segments.values():
        for path, condition in walk(segment.where):
            for event in kind_of(condition).events(condition):
                prefix, dot, named = event.partition(".")
                if dot and prefix in (ENTERED, EXITED):
                    if named not in segments:
                        message = f"unknown segment {named!r} in {event!r}{did_you_mean(named, segments)}"
                        errors.append(MapError(source, path, message))
                elif event not in plan.events:
                    suggestion = did_you_mean(event, plan.events)
                    message = f"event {event!r} is not in the tracking plan (events.yaml, maps' events:){suggestion}"
                    errors.append(MapError(source, path, message))
            if isinstance(condition, PerformedCondition) and condition.performed in plan.events:
                declared = plan.events[condition.performed].properties
                for index, compared in enumerate(condition.where):
                    if compared.property not in declared:
                        message = (
                            f"event {condition.performed!r} declares no property {compared.property!r}"
                            f"{did_you_mean(compared.property, declared)}"
                        )
                        errors.append(MapError(source, f"{path}.where[{index}].property", message))
    return errors


def check_map_segments(journey: JourneyMap, segments: Iterable[str], *, source: str) -> list[MapError]:
    """The segment events a map names (``segment_entered.<segment>``) whose segment is not defined."""
    known = set(segments)
    named: list[tuple[str, str]] = [(f"entry.events[{i}]", e) for i, e in enumerate(journey.entry.events)]
    named += [(f"exit_on[{i}].event", rule.event) for i, rule in enumerate(journey.exit_on)]
    if journey.goal is not None:
        named += [(f"goal.events[{i}]", e) for i, e in enumerate(journey.goal.events)]
    named += [(f"steps[{i}]", e) for i, step in enumerate(journey.steps) for e in kind_of_step(step).events(step)]
    errors: list[MapError] = []
    for path, event_type in named:
        prefix, dot, segment = event_type.partition(".")
        if dot and prefix in (ENTERED, EXITED) and segment not in known:
            errors.append(
                MapError(source, path, f"unknown segment {segment!r} in {event_type!r}{did_you_mean(segment, known)}")
            )
    return errors


def condition_kinds() -> list[str]:
    return [kind.name for kind in kinds()]


__all__ = ["ConditionModel", "Dependencies", "Segment", "dependencies", "load_segments", "refresh_order"]
