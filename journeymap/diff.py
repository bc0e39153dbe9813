"""What an edit of a map changes: steps added, removed and changed (by step id), and the map's other fields.

A journey in flight keeps the map it entered with (the map travels in its workflow input), so a change
reaches new entries only; the journeys resting on a removed or changed step finish on the old definition.
``journeys diff`` prints this comparison and, with a Temporal connection, counts those journeys.

A step is "changed" when its definition differs: its kind, any of its settings (a target, a timing, a
template, a channel, an expression...), or the step it goes on to (``next``, or the following step in the
list when it names none, so moving a step changes its predecessor). Each difference is one line,
``<field path>: <old> -> <new>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from journeymap.durations import format_duration
from journeymap.models import JourneyMap
from journeymap.steps import StepModel, kind_of


@dataclass(frozen=True)
class StepChange:
    step: str
    differences: tuple[str, ...]
    """``<field path>: <old> -> <new>`` for each difference (``kind: send -> wait`` when the kind changed)."""


@dataclass(frozen=True)
class MapDiff:
    journey: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[StepChange, ...]
    map_fields: tuple[str, ...]
    """Differences outside the steps (entry, goal, exit rules, variables, time zone, name, version)."""

    @property
    def affected(self) -> tuple[str, ...]:
        """The old map's steps a journey in flight may rest on that the new map removes or changes."""
        return self.removed + tuple(change.step for change in self.changed)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.map_fields)


def diff_maps(old: JourneyMap, new: JourneyMap) -> MapDiff:
    """Compare two versions of a map (``old`` first); steps are matched by id."""
    old_steps = {step.id: (index, step) for index, step in enumerate(old.steps)}
    new_steps = {step.id: (index, step) for index, step in enumerate(new.steps)}
    changed = []
    for step_id, (old_index, old_step) in old_steps.items():
        if step_id not in new_steps:
            continue
        new_index, new_step = new_steps[step_id]
        differences = _step_differences(old_step, new_step)
        old_next, new_next = old.next_of(old_index), new.next_of(new_index)
        if old_next != new_next and "next" not in {d.split(":", 1)[0] for d in differences}:
            differences.append(f"then: {old_next} -> {new_next}")
        if differences:
            changed.append(StepChange(step_id, tuple(differences)))
    fields = _differences(
        old.model_dump(exclude={"steps", "description"}), new.model_dump(exclude={"steps", "description"})
    )
    return MapDiff(
        journey=new.name,
        added=tuple(step_id for step_id in new_steps if step_id not in old_steps),
        removed=tuple(step_id for step_id in old_steps if step_id not in new_steps),
        changed=tuple(changed),
        map_fields=tuple(fields),
    )


def _step_differences(old: StepModel, new: StepModel) -> list[str]:
    old_kind, new_kind = kind_of(old).name, kind_of(new).name
    if old_kind != new_kind:
        return [f"kind: {old_kind} -> {new_kind}"]
    return _differences(old.model_dump(exclude={"id"}), new.model_dump(exclude={"id"}))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before, after = _flatten(old), _flatten(new)
    out = []
    for path in dict.fromkeys([*before, *after]):
        if before.get(path) != after.get(path):
            out.append(f"{path}: {_show(before.get(path))} -> {_show(after.get(path))}")
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path (``send.template``, ``branch[0].goto``); unset (None) ones are left out."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        out = {}
        for index, item in enumerate(value):
            out |= _flatten(item, f"{prefix}[{index}]")
        return out
    return {} if value is None else {prefix: value}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)
