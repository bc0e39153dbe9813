"""The tracking plan: which events the maps read, with which properties, of which types.

A backend developer integrating an event needs to know what to send; the maps already know what they read, so
they say it. Declarations come from a shared ``events.yaml`` beside the maps and from an ``events:`` section in
a map, in the same shape::

    events:
      refill_picked_up:
        description: The customer collected a refill at the store.
        on_invalid: refuse            # or quarantine: accepted, stored apart, never given to a journey
        properties:
          rx_id: string               # shorthand: a required property of that type
          picked_up_at: date-time
          store_name: {type: string, required: false}
          channel: {type: string, values: [store, drive_through]}

:func:`merge_plans` joins them (one event declared twice, differently, is an error); :mod:`journeymap.contract`
checks that each map reads only what is declared; :class:`PayloadValidator` is what the event API runs on each
event, built once per event type so a valid event costs a few dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from journeymap.errors import MapError
from journeymap.fields import EventType, FrozenModel

EVENTS_FILE = "events.yaml"
"""The shared declarations' file name, beside the maps (it is not a map: the catalog and ``validate`` know it)."""

PropertyType = Literal["string", "number", "integer", "boolean", "date-time", "date", "list", "object"]
PROPERTY_TYPES: tuple[str, ...] = PropertyType.__args__  # type: ignore[attr-defined]
OnInvalid = Literal["refuse", "quarantine"]
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


def _shorthand(value: Any) -> Any:
    """``rx_id: string`` is ``rx_id: {type: string}``."""
    return {"type": value} if isinstance(value, str) else value


def _as_list(value: Any) -> Any:
    """``type: date-time`` is ``type: [date-time]``."""
    return [value] if isinstance(value, str) else value


class PropertySpec(FrozenModel):
    """One property of an event."""

    type: Annotated[list[PropertyType], BeforeValidator(_as_list), Field(min_length=1)]
    """One type, or several any of which will do (``[date, date-time]``: a day, or a moment)."""
    required: bool = True
    """Required: an event without it (or with ``null``) breaks the contract. Optional: a map must read it with
    a default (``event.x | default(...)``) or test it (``event.x is defined``)."""
    values: list[str | int | float | bool] | None = Field(default=None, min_length=1)
    """The only values allowed, where they matter (a status, a channel)."""
    description: str = ""

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.type)

    @property
    def type_name(self) -> str:
        """As people read it: ``date-time``, ``date or date-time``."""
        return " or ".join(self.types)


class EventSpec(FrozenModel):
    """One event type: its properties, and what the API does with an event that breaks them."""

    description: str = ""
    properties: dict[PropertyName, Annotated[PropertySpec, BeforeValidator(_shorthand)]] = Field(default_factory=dict)
    on_invalid: OnInvalid = "refuse"
    """``refuse``: answered 422 and dropped. ``quarantine``: accepted, stored apart, given to no journey."""


Declarations = dict[EventType, EventSpec]


class EventsFile(FrozenModel):
    """The shared ``events.yaml``."""

    events: Declarations = Field(default_factory=dict)


@dataclass(frozen=True)
class TrackingPlan:
    """Every declared event, and where each was declared (for messages)."""

    events: Mapping[str, EventSpec]
    sources: Mapping[str, str]
    """Event type -> ``file: events.<type>``."""

    def __bool__(self) -> bool:
        return bool(self.events)


def merge_plans(plans: Iterable[TrackingPlan]) -> tuple[TrackingPlan, list[MapError]]:
    """One plan of several; an event declared twice must be declared the same (else one error per clash)."""
    events: dict[str, EventSpec] = {}
    sources: dict[str, str] = {}
    errors: list[MapError] = []
    for plan in plans:
        for name, spec in plan.events.items():
            where = plan.sources[name]
            if name in events and events[name] != spec:
                source, _, path = where.partition(": ")
                errors.append(MapError(source, path, f"event {name!r} is declared differently in {sources[name]}"))
                continue
            events.setdefault(name, spec)
            sources.setdefault(name, where)
    return TrackingPlan(events, sources), errors


def declared_in(declarations: Mapping[str, EventSpec], source: str) -> TrackingPlan:
    """The declarations of one file (an ``events.yaml``, or a map's ``events:`` section) as a plan."""
    return TrackingPlan(dict(declarations), {name: f"{source}: events.{name}" for name in declarations})


# ----------------------------------------------------------------------------------------------- payloads


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or len(value) <= 10:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


#: Type -> (test, what is expected, as a message says it).
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "integer": (_is_integer, "an integer"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "date-time": (_is_datetime, "an ISO 8601 date-time (2026-11-25T09:00:00Z)"),
    "date": (_is_date, "an ISO 8601 date (2026-11-25)"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


@dataclass(frozen=True)
class Violation:
    """One way an event breaks its declaration: ``event 'x': property 'y': required, missing; expected ...``."""

    event: str
    property: str
    expected: str
    """What was wrong and expected, without the value (it may be personal data; it is stored and counted)."""
    got: str = ""
    """The wrong value as the sender sent it (only in the answer to the sender)."""

    def __str__(self) -> str:
        got = f", got {self.got}" if self.got else ""
        return f"event {self.event!r}: property {self.property!r}: {self.expected}{got}"


@dataclass(frozen=True)
class _Rule:
    name: str
    required: bool
    test: Callable[[Any], bool]
    expected: str
    allowed: frozenset[Any] | None


class PayloadValidator:
    """The checks of one event type, built once: a valid event costs one test per declared property."""

    def __init__(self, event: str, spec: EventSpec) -> None:
        self.event = event
        self.on_invalid = spec.on_invalid
        self._rules = [
            _Rule(
                name,
                prop.required,
                _any_of([_CHECKS[t][0] for t in prop.types]),
                " or ".join(_CHECKS[t][1] for t in prop.types),
                frozenset(prop.values) if prop.values is not None else None,
            )
            for name, prop in spec.properties.items()
        ]

    def violations(self, properties: Mapping[str, Any]) -> list[Violation]:
        """Every way ``properties`` break the declaration (empty: valid). Undeclared extras are allowed."""
        found: list[Violation] = []
        for rule in self._rules:
            value = properties.get(rule.name)
            if value is None:
                if rule.required:
                    what = "missing" if rule.name not in properties else "null"
                    found.append(Violation(self.event, rule.name, f"required, {what}; expected {rule.expected}"))
                continue
            if not rule.test(value):
                found.append(Violation(self.event, rule.name, f"expected {rule.expected}", _shown(value)))
            elif rule.allowed is not None and value not in rule.allowed:
                allowed = ", ".join(repr(v) for v in sorted(rule.allowed, key=str))
                found.append(Violation(self.event, rule.name, f"expected one of {allowed}", _shown(value)))
        return found


def _any_of(tests: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _shown(value: Any) -> str:
    """A wrong value as a message shows it: its type, and the value itself when short (no personal data is
    expected in a property that should be, say, a number; a long text is cut)."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def validators(plan: TrackingPlan) -> dict[str, PayloadValidator]:
    """A validator per declared event type."""
    return {name: PayloadValidator(name, spec) for name, spec in plan.events.items()}


# ----------------------------------------------------------------------------------------------- JSON Schema

_SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date-time": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "list": {"type": "array"},
    "object": {"type": "object"},
}


def properties_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of an event's ``properties`` object (extra properties allowed, as the API allows them)."""
    props: dict[str, Any] = {}
    for name, prop in spec.properties.items():
        options = [_SCHEMA_TYPES[t] for t in prop.types]
        schema: dict[str, Any] = dict(options[0]) if len(options) == 1 else {"anyOf": options}
        if prop.values is not None:
            schema["enum"] = list(prop.values)
        if prop.description:
            schema["description"] = prop.description
        props[name] = schema
    return {
        "type": "object",
        "properties": props,
        "required": [name for name, prop in spec.properties.items() if prop.required],
    }


def track_schema(event: str, spec: EventSpec) -> dict[str, Any]:
    """A JSON Schema (2020-12) document of a whole ``/v1/track`` message of this event, for a backend's tests."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"journeys:event:{event}",
        "title": event,
        "description": spec.description,
        "type": "object",
        "properties": {"event": {"const": event}, "properties": properties_schema(spec)},
        "required": ["event", "properties"] if any(p.required for p in spec.properties.values()) else ["event"],
    }
