"""The journey map: pydantic models of what a marketer writes in YAML.

These models check shape (types, required fields, durations, identifiers); each step kind's models are in its
module of :mod:`journeymap.steps`, and the ``steps`` list takes every registered kind. :mod:`journeymap.checks`
checks meaning across the map (step references, expressions, templates, loops). A map is frozen once loaded: the
workflow pins it at entry, so a journey edited later does not change customers already in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from journeymap.events import Declarations
from journeymap.fields import (
    END,
    EventType,
    Expression,
    FrozenModel,
    KindUnion,
    OnError,
    PositiveDuration,
    StepId,
)
from journeymap.steps import StepModel, kind_of, kinds

# ----------------------------------------------------------------------------------------------- entry


class Cooldown(FrozenModel):
    """Enter again only once ``cooldown`` has passed since the previous entry ended."""

    cooldown: PositiveDuration


def _reentry_kind(value: Any) -> str:
    return "cooldown" if isinstance(value, dict | Cooldown) else "mode"


Reentry = Annotated[
    Annotated[Literal["once", "after_end"], Tag("mode")] | Annotated[Cooldown, Tag("cooldown")],
    Discriminator(_reentry_kind),
]


class Entry(FrozenModel):
    """What starts a journey for a customer."""

    events: list[EventType] = Field(min_length=1)
    when: Expression | None = None
    key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Event property that names the instance: one journey per distinct value (e.g. ``rx_id``)."""
    reentry: Reentry = "after_end"


class EventRule(FrozenModel):
    """An event type, optionally narrowed by a condition on its properties."""

    event: EventType
    when: Expression | None = None


def _event_rule(value: Any) -> Any:
    return {"event": value} if isinstance(value, str) else value


class Goal(FrozenModel):
    """A conversion: one of ``events`` within ``within`` of entry."""

    events: list[EventType] = Field(min_length=1)
    within: PositiveDuration
    when: Expression | None = None


# ----------------------------------------------------------------------------------------------- steps


if TYPE_CHECKING:
    Step = StepModel
else:
    # Built from the registry when a model's schema is: a kind registered after this module was imported (a test's
    # throwaway kind) is taken by ``JourneyMap.model_rebuild(force=True)``.
    Step = Annotated[
        StepModel,
        KindUnion(
            lambda: [(kind.name, kind.model) for kind in kinds()],
            error_type="step_kind",
            message=lambda names: "a step needs an `id` and exactly one of: " + ", ".join(names),
        ),
    ]
"""A step of one of the kinds in :mod:`journeymap.steps`; ``kind_of(step)`` gives its kind."""


# ----------------------------------------------------------------------------------------------- map


class JourneyMap(FrozenModel):
    """One journey: who enters, what happens, when it ends."""

    name: StepId
    version: int = Field(default=1, ge=1)
    description: str = ""
    timezone: str = "UTC"
    """Time zone for local-time waits when the customer's profile names none."""
    entry: Entry
    variables: dict[StepId, Expression] = Field(default_factory=dict)
    """Journey variables, evaluated in order at entry; steps may change them with `set`."""
    exit_on: list[Annotated[EventRule, BeforeValidator(_event_rule)]] = Field(default_factory=list)
    goal: Goal | None = None
    on_error: OnError = "operator"
    """What a step that cannot evaluate an expression or template does, unless it says otherwise: ``operator``
    (stop and wait for ``journeys resume``), ``corrected_event`` or a step to go to (docs/events.md)."""
    events: Declarations = Field(default_factory=dict)
    """Declarations of the events this map uses (besides the shared ``events.yaml``): docs/events.md."""
    steps: list[Step] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone (e.g. 'Europe/Paris')") from None
        return value

    def next_of(self, index: int) -> str:
        """The step after ``steps[index]`` when it names none: the following one, or the end."""
        explicit = self.steps[index].next
        if explicit is not None:
            return explicit
        return self.steps[index + 1].id if index + 1 < len(self.steps) else END

    def event_types(self) -> set[str]:
        """Every event type this map reacts to: triggers, waits, exits and goals (routing uses this)."""
        types = set(self.entry.events) | {rule.event for rule in self.exit_on}
        if self.goal:
            types |= set(self.goal.events)
        for step in self.steps:
            types |= set(kind_of(step).events(step))
        return types


__all__ = [
    "END",
    "Cooldown",
    "Entry",
    "EventRule",
    "Goal",
    "JourneyMap",
    "Step",
]
