"""Scenario files: a customer's story told to one journey map, and what the journey should do in it.

A scenario is YAML: the customer (id, traits, time zone, consents, identities), a start, a timeline of events
at local times or offsets from the start, and expectations (messages, steps, goal, end). It is validated
against its map before anything runs, with the same ``file: path: message`` errors as a map: a scenario that
names an event, step, channel or template its map does not know is refused, with a guess at what was meant.

Times without a zone are the customer's local time (their ``timezone``, else the map's). Pure: running a
scenario is :mod:`starter.scenarios`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from journeymap.durations import parse_duration
from journeymap.errors import MapError, MapValidationError
from journeymap.events import TrackingPlan, validators
from journeymap.expressions import plain_value
from journeymap.fields import Channel
from journeymap.loader import format_location, parse_yaml, read_text
from journeymap.models import JourneyMap
from journeymap.steps.send import SendStep
from journeymap.suggest import did_you_mean


def _moment(value: Any) -> Any:
    """A date-time as written: a YAML timestamp, or ISO text such as ``2026-12-22 10:00``."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date-time; write e.g. '2026-12-22 10:00'") from None
    raise ValueError("a date-time is written like '2026-12-22 10:00'")


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


Moment = Annotated[datetime, BeforeValidator(_moment)]
"""A moment; without a zone it is the customer's local time."""
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsentSpec(_Model):
    channel: Channel | str = "*"
    category: str = "*"
    granted: bool


class Customer(_Model):
    id: str = Field(default="customer", min_length=1, max_length=200)
    timezone: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    """Profile traits; the customer is reachable on every channel unless an address is given (or null)."""
    consents: list[ConsentSpec] = Field(default_factory=list)
    identities: dict[str, str] = Field(default_factory=dict)
    """Further identities linked to the customer: ``anonymous_id`` (email and phone traits link themselves)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; write an IANA name like 'Europe/Paris'") from None
        return value

    @field_validator("identities")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - {"anonymous_id"}
        if unknown:
            raise ValueError(f"unknown identity {sorted(unknown)[0]!r}; known: anonymous_id")
        return value


class TimelineEntry(_Model):
    """One event, at a local time (``at``) or an offset from the start (``after``)."""

    event: str
    at: Moment | None = None
    after: Duration | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    """The event's own id (a fresh one when unset); repeat one to play a backend's retry."""

    @model_validator(mode="after")
    def _one_time(self) -> TimelineEntry:
        if (self.at is None) == (self.after is None):
            raise ValueError("give either `at` (a local date-time) or `after` (an offset from the start)")
        return self


class MessageExpectation(_Model):
    """Messages the journey should send: every given field must match, and ``count`` of them."""

    channel: Channel | None = None
    template: str | None = None
    step: str | None = None
    at: Moment | None = None
    """The local minute it goes out."""
    between: tuple[Moment, Moment] | None = None
    """A local window, start included, end not."""
    count: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _one_window(self) -> MessageExpectation:
        if self.at is not None and self.between is not None:
            raise ValueError("give either `at` or `between`, not both")
        return self


class Expectations(_Model):
    messages: list[MessageExpectation] = Field(default_factory=list)
    nothing_else: bool = False
    """No message beyond those the ``messages`` expectations match."""
    steps_reached: list[str] = Field(default_factory=list)
    steps_not_reached: list[str] = Field(default_factory=list)
    goal_reached: bool | None = None
    ended: bool | None = None
    """Every journey the customer entered has ended (a re-entry cooldown counts as ended)."""


class Scenario(_Model):
    name: str | None = None
    description: str | None = None
    journey: str | None = None
    """The map's name; may be left out when one map is tested."""
    customer: Customer = Field(default_factory=Customer)
    start: Moment
    until: Moment | None = None
    """When the story stops (default: once nothing more happens, at most ``run_for`` after the last event)."""
    run_for: Duration = timedelta(days=400)
    timeline: list[TimelineEntry] = Field(min_length=1)
    expect: Expectations = Field(default_factory=Expectations)


def _suggest(name: str, known: set[str]) -> str:
    return did_you_mean(name, known) or f"; known: {', '.join(sorted(known)) or 'none'}"


def check_scenario(
    scenario: Scenario, journey: JourneyMap, *, source: str, plan: TrackingPlan | None = None
) -> list[MapError]:
    """Everything the scenario names must exist in ``journey``; its times must run forward; with ``plan`` (the
    events' declarations), its events must keep them: a story the event API would refuse cannot happen."""
    errors: list[MapError] = []
    events = journey.event_types()
    steps = {step.id for step in journey.steps}
    sends = [step for step in journey.steps if isinstance(step, SendStep)]
    templates = {step.send.template for step in sends}
    channels: set[str] = {channel for step in sends for channel in step.send.channels}

    def unknown(path: str, name: str, known: set[str], what: str) -> None:
        if name not in known:
            errors.append(MapError(source, path, f"{journey.name} {what} {name!r}" + _suggest(name, known)))

    checks = validators(plan) if plan is not None else {}
    for index, entry in enumerate(scenario.timeline):
        unknown(f"timeline[{index}].event", entry.event, events, "does not use event")
        validator = checks.get(entry.event)
        # Dates written in the scenario (YAML reads them as dates) are sent as ISO text, as a backend sends them.
        for violation in validator.violations(plain_value(entry.properties)) if validator is not None else []:
            errors.append(MapError(source, f"timeline[{index}].properties.{violation.property}", str(violation)))
        if entry.at is not None and entry.at < scenario.start:
            errors.append(MapError(source, f"timeline[{index}].at", "is before the scenario's start"))
    if scenario.until is not None and scenario.until <= scenario.start:
        errors.append(MapError(source, "until", "is not after the scenario's start"))
    for index, message in enumerate(scenario.expect.messages):
        where = f"expect.messages[{index}]"
        if message.template is not None:
            unknown(f"{where}.template", message.template, templates, "sends no template")
        if message.step is not None:
            unknown(f"{where}.step", message.step, steps, "has no step")
        if message.channel is not None:
            unknown(f"{where}.channel", message.channel, channels, "sends nothing by channel")
        if message.between is not None and message.between[1] <= message.between[0]:
            errors.append(MapError(source, f"{where}.between", "the window ends before it starts"))
    for field in ("steps_reached", "steps_not_reached"):
        for index, step in enumerate(getattr(scenario.expect, field)):
            unknown(f"expect.{field}[{index}]", step, steps, "has no step")
    return errors


def parse_scenario(
    data: Any, maps: dict[str, JourneyMap], *, source: str, plans: dict[str, TrackingPlan] | None = None
) -> tuple[Scenario, JourneyMap]:
    """A valid scenario and the map it tells its story to; raises :class:`MapValidationError` with every problem.

    ``plans``: each map's events' declarations, by map name, which the scenario's events must keep.
    """
    if not isinstance(data, dict):
        raise MapValidationError(
            [MapError(source, "", "a scenario is a YAML mapping (customer, start, timeline, ...)")]
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise MapValidationError(
            [
                MapError(source, format_location(error["loc"]), error["msg"].removeprefix("Value error, "))
                for error in exc.errors(include_url=False)
            ]
        ) from None
    if scenario.journey is None and len(maps) != 1:
        raise MapValidationError(
            [MapError(source, "journey", f"name the map this scenario tests: one of {', '.join(sorted(maps))}")]
        )
    name = scenario.journey or next(iter(maps))
    journey = maps.get(name)
    if journey is None:
        raise MapValidationError([MapError(source, "journey", f"no map named {name!r}" + _suggest(name, set(maps)))])
    problems = check_scenario(scenario, journey, source=source, plan=(plans or {}).get(name))
    if problems:
        raise MapValidationError(problems)
    return scenario, journey


def load_scenario(path: Path, maps: dict[str, JourneyMap]) -> tuple[Scenario, JourneyMap]:
    """Read and validate a scenario file against the maps under test."""
    return parse_scenario(parse_yaml(read_text(path), source=path.name), maps, source=path.name)
