"""Checks of meaning across a whole map, after its shape has been validated.

Each check yields :class:`MapError` with the path inside the map, so ``journeys validate`` can say
``refill.yaml: steps[3].wait_for.on_event: unknown step 'pickup'`` rather than fail at a customer's send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from journeymap.contract import check_contract
from journeymap.errors import MapError
from journeymap.events import TrackingPlan
from journeymap.expressions import ExpressionError, attributes_read, check_expression, referenced_names
from journeymap.fields import ON_ERROR_MODES
from journeymap.models import END, JourneyMap
from journeymap.steps import kind_of
from journeymap.suggest import did_you_mean


def check_map(
    journey: JourneyMap, *, source: str, templates_dir: Path | None = None, plan: TrackingPlan | None = None
) -> list[MapError]:
    """Every problem of meaning in ``journey``; templates are checked when ``templates_dir`` is given, and its
    events against their declarations (``plan``, the shared ``events.yaml``, and the map's ``events:``) when
    there are any."""
    errors: list[MapError] = []
    errors += _check_step_ids(journey, source)
    errors += _check_targets(journey, source)
    errors += _check_expressions(journey, source)
    errors += _check_loops(journey, source)
    for index, step in enumerate(journey.steps):
        # What only a kind knows: a send's template (when ``templates_dir`` is given), a set's variables.
        errors += kind_of(step).check(
            step, journey=journey, source=source, path=f"steps[{index}]", templates_dir=templates_dir
        )
    if plan is not None or journey.events:
        errors += check_contract(journey, source=source, plan=plan, templates_dir=templates_dir)
    return errors


def _check_step_ids(journey: JourneyMap, source: str) -> Iterator[MapError]:
    seen: dict[str, int] = {}
    for index, step in enumerate(journey.steps):
        if step.id == END:
            yield MapError(source, f"steps[{index}].id", f"{END!r} is reserved: it is the target that ends a journey")
        elif step.id in seen:
            yield MapError(source, f"steps[{index}].id", f"duplicate step id {step.id!r} (also steps[{seen[step.id]}])")
        else:
            seen[step.id] = index


def targets(journey: JourneyMap, index: int) -> list[tuple[str, str]]:
    """(path inside the step, target) for every step a step may go to next."""
    step = journey.steps[index]
    found: list[tuple[str, str]] = []
    if step.next is not None:
        found.append(("next", step.next))
    found += kind_of(step).targets(step)
    if step.on_error is not None and step.on_error not in ON_ERROR_MODES:
        found.append(("on_error", step.on_error))
    return found


def _check_targets(journey: JourneyMap, source: str) -> Iterator[MapError]:
    ids = {step.id for step in journey.steps} | {END}
    if journey.on_error not in ids | set(ON_ERROR_MODES):
        known = ids | set(ON_ERROR_MODES)
        yield MapError(source, "on_error", f"unknown step {journey.on_error!r}{did_you_mean(journey.on_error, known)}")
    for index in range(len(journey.steps)):
        for path, target in targets(journey, index):
            if target not in ids:
                yield MapError(source, f"steps[{index}].{path}", f"unknown step {target!r}{did_you_mean(target, ids)}")


def profile_reads(journey: JourneyMap) -> tuple[frozenset[str] | None, bool]:
    """The profile traits the map's expressions read (None: all of them, it uses ``profile`` whole), and whether
    they read ``segments``: what the journey's profile loads need bring into its history, and no more."""
    traits: set[str] = set()
    segments = False
    for _, expression, _ in _expressions(journey):
        try:
            read = attributes_read(expression, "profile")
            segments = segments or attributes_read(expression, "segments") != frozenset()
        except ExpressionError:
            continue  # a map that passed validation has none; a fault at evaluation says what is wrong
        if read is None:
            return None, True
        traits |= read
    return frozenset(traits), segments


def reads_scores(journey: JourneyMap) -> bool:
    """Whether the map's expressions read ``scores`` (computed traits, issue 15): only then do its profile loads
    compute them (a query per score) and bring them into its history."""
    for _, expression, _ in _expressions(journey):
        try:
            if attributes_read(expression, "scores") != frozenset():
                return True
        except ExpressionError:
            continue
    return False


def _expressions(journey: JourneyMap) -> Iterator[tuple[str, str, set[str]]]:
    """(path, expression, variables it may read) for every expression in the map."""
    declared = set(journey.variables)
    if journey.entry.when:
        yield "entry.when", journey.entry.when, set()
    earlier: set[str] = set()
    for name, expression in journey.variables.items():
        yield f"variables.{name}", expression, set(earlier)
        earlier.add(name)
    for index, rule in enumerate(journey.exit_on):
        if rule.when:
            yield f"exit_on[{index}].when", rule.when, declared
    if journey.goal and journey.goal.when:
        yield "goal.when", journey.goal.when, declared
    for index, step in enumerate(journey.steps):
        for path, expression in kind_of(step).expressions(step):
            yield f"steps[{index}].{path}", expression, declared


def _check_expressions(journey: JourneyMap, source: str) -> Iterator[MapError]:
    declared = set(journey.variables)
    for path, expression, variables in _expressions(journey):
        problem = check_expression(expression, variables)
        if problem and variables != declared and check_expression(expression, declared) is None:
            # Declared, but not set yet where this expression runs (entry.when, or an earlier variable).
            early = sorted(referenced_names(expression)[1] - variables)[0]
            problem = (
                f"vars.{early} is not set yet in {expression!r}: "
                "variables are set in the order written, after entry.when"
            )
        if problem:
            yield MapError(source, path, problem)


def _check_loops(journey: JourneyMap, source: str) -> Iterator[MapError]:
    """A cycle of steps none of which waits would spin (or send) forever: reject it."""
    index_of = {step.id: i for i, step in enumerate(journey.steps)}
    waits = {i for i, step in enumerate(journey.steps) if kind_of(step).waits}

    def successors(index: int) -> list[int]:
        outs = [t for _, t in targets(journey, index)]
        step = journey.steps[index]
        falls_through = step.next is None and not kind_of(step).always_jumps(step)
        if falls_through and index + 1 < len(journey.steps):
            outs.append(journey.steps[index + 1].id)
        return [index_of[t] for t in outs if t in index_of]

    state: dict[int, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[int]] = set()

    def visit(index: int, path: list[int]) -> Iterator[MapError]:
        state[index] = 1
        path.append(index)
        for nxt in successors(index):
            if nxt in waits:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    names = " -> ".join(journey.steps[i].id for i in [*cycle, nxt])
                    yield MapError(source, f"steps[{nxt}]", f"steps loop without waiting: {names}; add a wait")
            elif state.get(nxt) is None:
                yield from visit(nxt, path)
        path.pop()
        state[index] = 2

    for start in range(len(journey.steps)):
        if start not in waits and state.get(start) is None:
            yield from visit(start, [])
