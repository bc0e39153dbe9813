"""Draw a journey map as a Mermaid flowchart, so a marketer can look at the map as a picture.

The graph is the one the interpreter walks: edges come from :func:`journeymap.checks.targets` (every step a
step names) and :meth:`JourneyMap.next_of` (where a step goes when it names none), never from a second
reading of the map. Shapes by kind::

    entry        ([ stadium ])         send            [/ parallelogram /]
    wait         {{ hexagon }}         wait_for        > flag ]
    branch       { diamond }           split           [\\ trapezoid /]
    set          [ rectangle ]         update_profile  [( cylinder )]
    webhook      [[ subroutine ]]      end step        ( rounded )
    End          (( circle ))          exit_on / goal  a note, not connected

A ``goto`` step is drawn as an edge: arrows into it go straight to where it jumps, labelled ``goto <id>``.

Every label is quoted and escaped with Mermaid's entity codes (``#quot;``, ``#lt;``, ...), so expressions
such as ``vars.x > 0 and event.kind == "a|b"`` cannot break the chart. Node ids are derived from step ids
(``s_<id>``), which keeps Mermaid's keywords (``end``, ``graph``, ...) out of the id position.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeymap.checks import targets
from journeymap.durations import format_duration
from journeymap.models import (
    END,
    BranchCase,
    BranchStep,
    Cooldown,
    EndStep,
    GotoStep,
    JourneyMap,
    SendStep,
    SetStep,
    SplitStep,
    Step,
    UpdateProfileStep,
    WaitForStep,
    WaitSpec,
    WaitStep,
    WebhookStep,
)

ENTRY_NODE = "journey_entry"
"""Node id of the entry (trigger events and condition)."""
END_NODE = "journey_done"
"""Node id of the journey's end, where ``end`` targets and the last step lead."""
NOTE_NODE = "journey_notes"
"""Node id of the note naming the journey-level ``exit_on`` events and the goal."""

# Characters that could end a quoted label, open an edge label, start an entity or be read as HTML.
# '#' goes first: every replacement below starts with it.
_ESCAPES = (
    ("#", "#35;"),
    ('"', "#quot;"),
    ("&", "#amp;"),
    ("<", "#lt;"),
    (">", "#gt;"),
    ("|", "#124;"),
    ("[", "#91;"),
    ("]", "#93;"),
    ("{", "#123;"),
    ("}", "#125;"),
    ("`", "#96;"),
)

_SHAPES: dict[str, tuple[str, str]] = {
    "entry": ("([", "])"),
    "send": ("[/", "/]"),
    "wait": ("{{", "}}"),
    "wait_for": (">", "]"),
    "branch": ("{", "}"),
    "split": ("[\\", "/]"),
    "set": ("[", "]"),
    "update_profile": ("[(", ")]"),
    "webhook": ("[[", "]]"),
    "goto": ("((", "))"),
    "end": ("(", ")"),
    "done": ("((", "))"),
    "note": ("[", "]"),
}


def node_id(step_id: str) -> str:
    """The Mermaid node id of a step (or of the End node for ``end``)."""
    return END_NODE if step_id == END else f"s_{step_id}"


def escape(text: str) -> str:
    """One line of label text, safe inside a quoted Mermaid label."""
    text = " ".join(text.split())  # YAML block scalars may carry newlines; a label line has none
    for raw, code in _ESCAPES:
        text = text.replace(raw, code)
    return text


def _label(lines: list[str]) -> str:
    return '"' + "<br/>".join(escape(line) for line in lines if line) + '"'


def _node(node: str, shape: str, lines: list[str]) -> str:
    opening, closing = _SHAPES[shape]
    return f"{node}{opening}{_label(lines)}{closing}"


@dataclass
class _Edge:
    source: str
    target: str
    labels: list[str]


def to_mermaid(journey: JourneyMap) -> str:
    """The map as a Mermaid ``flowchart TD`` (text; paste it into any Mermaid viewer)."""
    gotos = {step.id: step for step in journey.steps if isinstance(step, GotoStep)}
    looping_gotos: set[str] = set()

    def resolve(target: str, label: str | None) -> tuple[str, list[str]]:
        """Follow ``goto`` steps to the node an arrow really reaches, naming each goto on the way."""
        labels = [label] if label else []
        seen: list[str] = []
        while target in gotos:
            if target in seen:  # a goto cycle (only in a map that failed validation): draw the goto itself
                looping_gotos.add(target)
                break
            seen.append(target)
            labels.append(f"goto {target}")
            target = gotos[target].goto
        return node_id(target), labels

    edges: list[_Edge] = []

    def edge(source: str, target: str, label: str | None = None) -> None:
        node, labels = resolve(target, label)
        for existing in edges:
            if existing.source == source and existing.target == node:
                existing.labels += [x for x in labels if x not in existing.labels]
                return
        edges.append(_Edge(source, node, labels))

    lines = ["flowchart TD", f"    {_node(ENTRY_NODE, 'entry', _entry_lines(journey))}"]
    edge(ENTRY_NODE, journey.steps[0].id)
    for index, step in enumerate(journey.steps):
        if isinstance(step, GotoStep):
            continue
        lines.append(f"    {_node(node_id(step.id), _shape(step), _step_lines(step))}")
        source = node_id(step.id)
        for target, label in _step_edges(journey, index):
            edge(source, target, label)
    drawn: set[str] = set()
    while looping_gotos - drawn:  # drawing one goto's arrow may reach another in the cycle
        goto_id = min(looping_gotos - drawn)
        drawn.add(goto_id)
        lines.append(f"    {_node(node_id(goto_id), 'goto', [goto_id, 'goto'])}")
        edge(node_id(goto_id), gotos[goto_id].goto)
    lines.append(f"    {_node(END_NODE, 'done', ['End'])}")
    note = _note_lines(journey)
    if note:
        lines.append(f"    {_node(NOTE_NODE, 'note', note)}:::note")
    for e in edges:
        arrow = f' -->|"{escape(", ".join(e.labels))}"| ' if e.labels else " --> "
        lines.append(f"    {e.source}{arrow}{e.target}")
    if note:
        lines.append(f"    {NOTE_NODE} -.- {ENTRY_NODE}")
        lines.append("    classDef note fill:#fff5ad,stroke:#c9b037,color:#333")
    return "\n".join(lines) + "\n"


def _shape(step: Step) -> str:
    for kind, cls in (
        ("send", SendStep),
        ("wait", WaitStep),
        ("wait_for", WaitForStep),
        ("branch", BranchStep),
        ("split", SplitStep),
        ("set", SetStep),
        ("update_profile", UpdateProfileStep),
        ("webhook", WebhookStep),
        ("end", EndStep),
    ):
        if isinstance(step, cls):
            return kind
    raise AssertionError(f"no shape for {type(step).__name__}")


def _entry_lines(journey: JourneyMap) -> list[str]:
    entry = journey.entry
    reentry = entry.reentry
    rule = (
        f"not within {format_duration(reentry.cooldown)} of the last end"
        if isinstance(reentry, Cooldown)
        else {"once": "once ever", "after_end": "again after it ends"}[reentry]
    )
    return [
        f"{journey.name} v{journey.version}",
        "on " + " or ".join(entry.events),
        f"when {entry.when}" if entry.when else "",
        f"one per {entry.key}" if entry.key else "",
        f"enters {rule}",
    ]


def _wait_lines(spec: WaitSpec) -> list[str]:
    if spec.duration is not None:
        first = f"wait {format_duration(spec.duration)}"
    elif spec.until is not None:
        first = f"wait until {'the next anniversary of ' if spec.yearly else ''}{spec.until}"
        if spec.offset is not None:
            sign = "+" if spec.offset.total_seconds() >= 0 else "-"
            first += f" {sign} {format_duration(abs(spec.offset))}"
    else:
        first = "wait"
    return [first, f"then at {spec.at.strftime('%H:%M')} local time" if spec.at is not None else ""]


def _step_lines(step: Step) -> list[str]:
    lines = [step.id]
    if isinstance(step, SendStep):
        spec = step.send
        joiner = ", then " if spec.mode == "first" else " + "
        lines += [
            "send by " + joiner.join(spec.channels) + (" (first that works)" if spec.mode == "first" else ""),
            f"template {spec.template}",
            spec.category,
        ]
    elif isinstance(step, WaitStep):
        lines += _wait_lines(step.wait)
    elif isinstance(step, WaitForStep):
        wait_for = step.wait_for
        lines += [
            "wait for " + " or ".join(wait_for.events),
            f"match {wait_for.match}" if wait_for.match else "",
            f"timeout {format_duration(wait_for.timeout)}" if wait_for.timeout is not None else "no timeout",
        ]
    elif isinstance(step, BranchStep):
        lines.append("branch")
    elif isinstance(step, SplitStep):
        lines.append("split")
        total = sum(v.weight for v in step.split.variants) + (step.split.holdout.weight if step.split.holdout else 0)
        lines += [f"{v.name}: {_share(v.weight, total)}" for v in step.split.variants]
        if step.split.holdout is not None:
            lines.append(f"holdout: {_share(step.split.holdout.weight, total)}")
    elif isinstance(step, SetStep):
        lines += [f"vars.{name} = {expression}" for name, expression in step.set.items()]
    elif isinstance(step, UpdateProfileStep):
        lines.append("update profile")
        lines += [f"profile.{name} = {expression}" for name, expression in step.update_profile.set.items()]
    elif isinstance(step, WebhookStep):
        lines.append(f"webhook {step.webhook.method} {step.webhook.url}")
        lines += [f"{name}: {expression}" for name, expression in step.webhook.body.items()]
    elif isinstance(step, EndStep):
        lines.append(f"end: {step.end.reason}")
    return lines


def _share(weight: int, total: int) -> str:
    return f"weight {weight} ({100 * weight / total:.4g}%)"


def _step_edges(journey: JourneyMap, index: int) -> list[tuple[str, str | None]]:
    """(target step, label) of the arrows out of ``steps[index]``, labelled with what takes each one."""
    out: list[tuple[str, str | None]] = []

    def edge(target: str, label: str | None) -> None:
        out.append((target, label))

    step = journey.steps[index]
    following = journey.next_of(index)
    named = dict(targets(journey, index))
    if isinstance(step, EndStep):
        edge(END, None)
    elif isinstance(step, WaitForStep):
        spec = step.wait_for
        edge(named.get("wait_for.on_event", following), "on " + " or ".join(spec.events))
        if spec.timeout is not None:
            edge(named.get("wait_for.on_timeout", following), f"no event within {format_duration(spec.timeout)}")
    elif isinstance(step, BranchStep):
        for case_index, case in enumerate(step.branch):
            if isinstance(case, BranchCase):
                edge(named[f"branch[{case_index}].goto"], case.when)
            else:
                edge(named[f"branch[{case_index}].otherwise"], "otherwise")
        if isinstance(step.branch[-1], BranchCase):
            edge(following, "otherwise")  # no case holds: on to the next step
    elif isinstance(step, SplitStep):
        for variant_index, variant in enumerate(step.split.variants):
            edge(named[f"split.variants[{variant_index}].goto"], variant.name)
        if step.split.holdout is not None:
            edge(named["split.holdout.goto"], "holdout")
    else:
        edge(following, None)
        if isinstance(step, SendStep) and "send.on_failure" in named:
            edge(named["send.on_failure"], "nothing delivered")
    return out


def _note_lines(journey: JourneyMap) -> list[str]:
    lines = [f"exit at once on {rule.event}" + (f" when {rule.when}" if rule.when else "") for rule in journey.exit_on]
    if journey.goal is not None:
        goal = journey.goal
        lines.append(
            f"goal: {' or '.join(goal.events)} within {format_duration(goal.within)}"
            + (f" when {goal.when}" if goal.when else "")
        )
    return lines
