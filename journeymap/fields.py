"""The field types a map is written in: durations, times of day, identifiers, expressions, channels.

Shared by the map's models (:mod:`journeymap.models`) and every step kind's (:mod:`journeymap.steps`), so a step
kind's module needs nothing from the map above it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from datetime import time, timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    Tag,
)
from pydantic_core import CoreSchema

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


def import_kinds(package: str, path: Iterable[str], documented: tuple[str, ...]) -> None:
    """Import a registry package's kind modules, which register themselves: the documented ones first, in the
    order the docs and error messages list them, then any other module found in the folder, by name (so a new
    kind is a new module and nothing else). ``base`` holds the registry, not a kind."""
    found = sorted(module.name for module in pkgutil.iter_modules(path) if module.name not in {"base", *documented})
    for module in (*documented, *found):
        importlib.import_module(f"{package}.{module}")


class KindUnion:
    """A field holding a model of any registered kind (a step, a segment condition), tagged by the kind's key.

    The tagged union is built when a model's schema is, from the registry as it is then: so a kind registered
    after the module naming the field was imported is taken too (after ``model_rebuild(force=True)`` for a model
    already built).

    Args:
        members: the registered kinds as (key, model), in the order an error lists them.
        error_type: pydantic's error type when no single kind fits.
        message: that error's message, given the keys.
    """

    def __init__(
        self,
        members: Callable[[], list[tuple[str, type[BaseModel]]]],
        *,
        error_type: str,
        message: Callable[[list[str]], str],
    ) -> None:
        self._members = members
        self._error_type = error_type
        self._message = message

    def _key(self, value: Any) -> str | None:
        """Which kind a value is: a model's own, or a mapping's one key among the kinds' (None: none, or several)."""
        members = self._members()
        if isinstance(value, BaseModel):
            return next((name for name, model in members if model is type(value)), None)
        if not isinstance(value, dict):
            return None
        found = [name for name, _ in members if name in value]
        return found[0] if len(found) == 1 else None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        registered = self._members()
        tagged = tuple(Annotated[model, Tag(name)] for name, model in registered)
        union: Any = Annotated[
            Union[tagged],  # noqa: UP007  (a union of a computed tuple has no `|` spelling)
            Discriminator(
                self._key,
                custom_error_type=self._error_type,
                custom_error_message=self._message([name for name, _ in registered]),
            ),
        ]
        return handler.generate_schema(union)
