"""The journey map: pydantic models of what a marketer writes in YAML.

These models check shape (types, required fields, durations, identifiers); :mod:`journeymap.checks` checks
meaning across the map (step references, expressions, templates, loops). A map is frozen once loaded: the
workflow pins it at entry, so a journey edited later does not change customers already in it.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    field_validator,
    model_validator,
)

from journeymap.durations import format_duration, parse_duration

END = "end"
"""The step target that ends the journey; no step may take this id."""

_IDENTIFIER = r"^[a-z][a-z0-9_]*$"
_EVENT_TYPE = r"^[A-Za-z][A-Za-z0-9_.:-]*$"


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool | int | float):
        raise ValueError("write a duration with its unit, e.g. '3d', '12h', '30m'")
    return value


def _time_of_day(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day; write e.g. '09:30'") from None
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:30 as the sexagesimal number 570.
        raise ValueError("quote the time of day, e.g. '09:30' (unquoted, YAML reads it as a number)")
    return value


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str, when_used="json")
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be positive, not {format_duration(value)}")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A wait, timeout, window or cooldown: zero or negative would mean nothing, or a typo."""
TimeOfDay = Annotated[
    time, BeforeValidator(_time_of_day), PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str)
]
StepId = Annotated[str, Field(pattern=_IDENTIFIER, max_length=64)]
StepTarget = Annotated[str, Field(pattern=_IDENTIFIER, max_length=64)]
EventType = Annotated[str, Field(pattern=_EVENT_TYPE, max_length=128)]
Expression = Annotated[str, Field(min_length=1, max_length=2000)]
Channel = Literal["email", "sms", "push", "voice", "webhook"]
Category = Literal["transactional", "promotional"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------------- entry


class Cooldown(_Model):
    """Enter again only once ``cooldown`` has passed since the previous entry ended."""

    cooldown: PositiveDuration


def _reentry_kind(value: Any) -> str:
    return "cooldown" if isinstance(value, dict | Cooldown) else "mode"


Reentry = Annotated[
    Annotated[Literal["once", "after_end"], Tag("mode")] | Annotated[Cooldown, Tag("cooldown")],
    Discriminator(_reentry_kind),
]


class Entry(_Model):
    """What starts a journey for a customer."""

    events: list[EventType] = Field(min_length=1)
    when: Expression | None = None
    key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """Event property that names the instance: one journey per distinct value (e.g. ``rx_id``)."""
    reentry: Reentry = "after_end"


class EventRule(_Model):
    """An event type, optionally narrowed by a condition on its properties."""

    event: EventType
    when: Expression | None = None


def _event_rule(value: Any) -> Any:
    return {"event": value} if isinstance(value, str) else value


class Goal(_Model):
    """A conversion: one of ``events`` within ``within`` of entry."""

    events: list[EventType] = Field(min_length=1)
    within: PositiveDuration
    when: Expression | None = None


# ----------------------------------------------------------------------------------------------- steps


class SendSpec(_Model):
    channels: list[Channel] = Field(min_length=1)
    """Channels in order of preference."""
    mode: Literal["all", "first"] = "all"
    """``all``: every channel; ``first``: the first that works (fallback in the customer's order)."""
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    category: Category
    on_failure: StepTarget | None = None
    """Where to go when nothing was delivered (all suppressed or failed); the next step when unset."""

    @model_validator(mode="before")
    @classmethod
    def _single_channel(cls, data: Any) -> Any:
        if isinstance(data, dict) and "channel" in data:
            data = dict(data)
            if "channels" in data:
                raise ValueError("give either `channel` or `channels`, not both")
            data["channels"] = [data.pop("channel")]
        return data

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


class WaitSpec(_Model):
    """Wait a duration, or until a date from the profile or event, optionally to a local time of day."""

    duration: PositiveDuration | None = None
    until: Expression | None = None
    """An expression giving a date or datetime (e.g. ``profile.birthday``, ``vars.refill_due``)."""
    offset: Duration | None = None
    """Added to ``until`` (negative for before: ``-3d``)."""
    yearly: bool = False
    """With ``until``: the next anniversary of that date (birthdays)."""
    at: TimeOfDay | None = None
    """Then on to the next occurrence of this time of day in the customer's time zone."""

    @model_validator(mode="after")
    def _one_kind(self) -> WaitSpec:
        if self.duration is not None and self.until is not None:
            raise ValueError("give either `duration` or `until`, not both")
        if self.duration is None and self.until is None and self.at is None:
            raise ValueError("give `duration`, `until` or `at`")
        if self.until is None and (self.offset is not None or self.yearly):
            raise ValueError("`offset` and `yearly` go with `until`")
        return self


class WaitForSpec(_Model):
    events: list[EventType] = Field(min_length=1)
    match: Expression | None = None
    """A condition on the event (``event.store_id == vars.store_id``); events that fail it are ignored."""
    timeout: PositiveDuration | None = None
    on_event: StepTarget | None = None
    on_timeout: StepTarget | None = None

    @model_validator(mode="after")
    def _timeout(self) -> WaitForSpec:
        if self.on_timeout is not None and self.timeout is None:
            raise ValueError("`on_timeout` needs a `timeout`")
        return self


class BranchCase(_Model):
    when: Expression
    goto: StepTarget


class Otherwise(_Model):
    otherwise: StepTarget


class Variant(_Model):
    name: StepId
    weight: int = Field(gt=0, le=10_000)
    goto: StepTarget


class Holdout(_Model):
    """Customers who get nothing from here: the baseline a variant's lift is measured against."""

    weight: int = Field(gt=0, le=10_000)
    goto: StepTarget = END


class SplitSpec(_Model):
    variants: list[Variant] = Field(min_length=1)
    holdout: Holdout | None = None

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        if "holdout" in names:
            raise ValueError("'holdout' is reserved for the holdout group")
        return value


class UpdateProfileSpec(_Model):
    set: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Expression] = Field(min_length=1)


class WebhookSpec(_Model):
    url: Annotated[str, Field(pattern=r"^https?://")]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, Expression] = Field(default_factory=dict)
    """Each value is an expression; the request body is the JSON object of their values."""


class EndSpec(_Model):
    reason: str = "completed"


class _Step(_Model):
    id: StepId
    next: StepTarget | None = None
    """Where to go after this step; the following step in the list when unset (the end after the last)."""


class SendStep(_Step):
    send: SendSpec


class WaitStep(_Step):
    wait: WaitSpec


class WaitForStep(_Step):
    wait_for: WaitForSpec


def _case_kind(value: Any) -> str:
    return "otherwise" if isinstance(value, Otherwise) or (isinstance(value, dict) and "otherwise" in value) else "when"


class BranchStep(_Step):
    branch: list[
        Annotated[
            Annotated[BranchCase, Tag("when")] | Annotated[Otherwise, Tag("otherwise")],
            Discriminator(_case_kind),
        ]
    ] = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _otherwise_last(cls, value: list[BranchCase | Otherwise]) -> list[BranchCase | Otherwise]:
        for case in value[:-1]:
            if isinstance(case, Otherwise):
                raise ValueError("`otherwise` must be the last case")
        return value


class SplitStep(_Step):
    split: SplitSpec


class SetStep(_Step):
    """Set journey variables (pure: no side effect, no Temporal action)."""

    set: dict[StepId, Expression] = Field(min_length=1)


class UpdateProfileStep(_Step):
    update_profile: UpdateProfileSpec


class WebhookStep(_Step):
    webhook: WebhookSpec


class GotoStep(_Step):
    goto: StepTarget


class EndStep(_Step):
    end: EndSpec = Field(default_factory=EndSpec)

    @field_validator("end", mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return {} if value is None or value is True else value


STEP_KINDS = (
    "send",
    "wait",
    "wait_for",
    "branch",
    "split",
    "set",
    "update_profile",
    "webhook",
    "goto",
    "end",
)


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return next((k for k in STEP_KINDS if k in type(value).model_fields), None)
    if not isinstance(value, dict):
        return None
    kinds = [k for k in STEP_KINDS if k in value]
    return kinds[0] if len(kinds) == 1 else None


Step = Annotated[
    Annotated[SendStep, Tag("send")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[SplitStep, Tag("split")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[UpdateProfileStep, Tag("update_profile")]
    | Annotated[WebhookStep, Tag("webhook")]
    | Annotated[GotoStep, Tag("goto")]
    | Annotated[EndStep, Tag("end")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs an `id` and exactly one of: " + ", ".join(STEP_KINDS),
    ),
]


# ----------------------------------------------------------------------------------------------- map


class JourneyMap(_Model):
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
            if isinstance(step, WaitForStep):
                types |= set(step.wait_for.events)
        return types


def step_kind(step: Step) -> str:
    kind = _step_kind(step)
    assert kind is not None
    return kind


__all__ = [
    "END",
    "STEP_KINDS",
    "BranchCase",
    "BranchStep",
    "Cooldown",
    "EndStep",
    "Entry",
    "EventRule",
    "Goal",
    "GotoStep",
    "Holdout",
    "JourneyMap",
    "Otherwise",
    "SendStep",
    "SetStep",
    "SplitStep",
    "Step",
    "UpdateProfileStep",
    "Variant",
    "WaitForStep",
    "WaitSpec",
    "WaitStep",
    "WebhookStep",
    "step_kind",
]
