"""Draw a journey map as a Mermaid flowchart, so a marketer can look at the map as a picture.

The graph is the one the interpreter walks: each step's kind (its module in :mod:`journeymap.steps`) gives the
node's shape and label and the arrows out of it, labelled with what takes each one; where a step goes when it
names no target is :meth:`JourneyMap.next_of`. The shapes of the built-in kinds::

    entry        ([ stadium ])         send            [/ parallelogram /]
    wait         {{ hexagon }}         wait_for        > flag ]
    branch       { diamond }           split           [\\ trapezoid /]
    set          [ rectangle ]         update_profile  [( cylinder )]
    webhook      [[ subroutine ]]      end step        ( rounded )
    End          (( circle ))          exit_on / goal  a note, not connected

A step that only jumps (``goto``) is drawn as an edge: arrows into it go straight to where it jumps, labelled
``goto <id>``.

Every label is quoted and escaped with Mermaid's entity codes (``#quot;``, ``#lt;``, ...), so expressions
such as ``vars.x > 0 and event.kind == "a|b"`` cannot break the chart. Node ids are derived from step ids
(``s_<id>``), which keeps Mermaid's keywords (``end``, ``graph``, ...) out of the id position.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeymap.durations import format_duration
from journeymap.fields import ON_ERROR_MODES
from journeymap.models import END, Cooldown, JourneyMap
from journeymap.steps import StepModel, kind_of

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

_ENTRY = ("([", "])")
_DONE = ("((", "))")
_NOTE = ("[", "]")


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


def _node(node: str, shape: tuple[str, str], lines: list[str]) -> str:
    opening, closing = shape
    return f"{node}{opening}{_label(lines)}{closing}"


@dataclass
class _Edge:
    source: str
    target: str
    labels: list[str]


def to_mermaid(journey: JourneyMap) -> str:
    """The map as a Mermaid ``flowchart TD`` (text; paste it into any Mermaid viewer)."""
    # Steps that only jump (goto): id -> (step, target).
    jumps = {step.id: (step, jump) for step in journey.steps if (jump := kind_of(step).jump(step)) is not None}
    looping_gotos: set[str] = set()

    def resolve(target: str, label: str | None) -> tuple[str, list[str]]:
        """Follow ``goto`` steps to the node an arrow really reaches, naming each goto on the way."""
        labels = [label] if label else []
        seen: list[str] = []
        while target in jumps:
            if target in seen:  # a goto cycle (only in a map that failed validation): draw the goto itself
                looping_gotos.add(target)
                break
            seen.append(target)
            labels.append(f"goto {target}")
            target = jumps[target][1]
        return node_id(target), labels

    edges: list[_Edge] = []

    def edge(source: str, target: str, label: str | None = None) -> None:
        node, labels = resolve(target, label)
        for existing in edges:
            if existing.source == source and existing.target == node:
                existing.labels += [x for x in labels if x not in existing.labels]
                return
        edges.append(_Edge(source, node, labels))

    def node(step: StepModel) -> str:
        kind = kind_of(step)
        return f"    {_node(node_id(step.id), kind.shape, [step.id, *kind.label(step)])}"

    lines = ["flowchart TD", f"    {_node(ENTRY_NODE, _ENTRY, _entry_lines(journey))}"]
    edge(ENTRY_NODE, journey.steps[0].id)
    for index, step in enumerate(journey.steps):
        if step.id in jumps:
            continue
        lines.append(node(step))
        for target, label in kind_of(step).edges(step, journey.next_of(index)):
            edge(node_id(step.id), target, label)
        if step.on_error is not None and step.on_error not in ON_ERROR_MODES:
            edge(node_id(step.id), step.on_error, "on error")
    drawn: set[str] = set()
    while looping_gotos - drawn:  # drawing one goto's arrow may reach another in the cycle
        goto_id = min(looping_gotos - drawn)
        drawn.add(goto_id)
        lines.append(node(jumps[goto_id][0]))
        edge(node_id(goto_id), jumps[goto_id][1])
    lines.append(f"    {_node(END_NODE, _DONE, ['End'])}")
    note = _note_lines(journey)
    if note:
        lines.append(f"    {_node(NOTE_NODE, _NOTE, note)}:::note")
    for e in edges:
        arrow = f' -->|"{escape(", ".join(e.labels))}"| ' if e.labels else " --> "
        lines.append(f"    {e.source}{arrow}{e.target}")
    if note:
        lines.append(f"    {NOTE_NODE} -.- {ENTRY_NODE}")
        lines.append("    classDef note fill:#fff5ad,stroke:#c9b037,color:#333")
    return "\n".join(lines) + "\n"


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


def _note_lines(journey: JourneyMap) -> list[str]:
    lines = [f"exit at once on {rule.event}" + (f" when {rule.when}" if rule.when else "") for rule in journey.exit_on]
    if journey.goal is not None:
        goal = journey.goal
        lines.append(
            f"goal: {' or '.join(goal.events)} within {format_duration(goal.within)}"
            + (f" when {goal.when}" if goal.when else "")
        )
    return lines
