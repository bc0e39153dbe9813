"""The field types a map is written in: durations, times of day, identifiers, expressions, channels.

Shared by the map's models (:mod:`journeymap.models`) and every step kind's (:mod:`journeymap.steps`), so a step
kind's module needs nothing from the map above it.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from journeymap.durations import format_duration, parse_duration

END = "end"
"""The step target that ends the journey; no step may take this id."""

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
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
StepId = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
StepTarget = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
EventType = Annotated[str, Field(pattern=_EVENT_TYPE, max_length=128)]
Expression = Annotated[str, Field(min_length=1, max_length=2000)]
ON_ERROR_MODES = ("operator", "corrected_event")
OnError = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
"""What a step that cannot evaluate an expression or a template does: ``operator`` (stop, and wait for
``journeys resume``), ``corrected_event`` (wait for another event of the type it had, then try again), or the id
of a step to go to (``end`` among them)."""
Channel = Literal["email", "sms", "push", "voice", "webhook"]
Category = Literal["transactional", "promotional"]


class FrozenModel(BaseModel):
    """A part of a map: unknown fields are refused (a typo is an error), and nothing changes once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
