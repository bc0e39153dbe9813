"""Broadcast definitions: YAML beside the maps (``journeys/broadcasts/*.yaml``), validated before anything runs.

A broadcast sends a map to a segment's members, once or on a calendar::

    name: flu_shot_reminder
    journey: flu_shot_reminder          # the map; it enters on ``broadcast.flu_shot_reminder``, keyed by ``broadcast``
    segment: flu_shot_audience
    channels: [email, sms]              # consent to the category on one of them is needed at the member's turn
    when: {yearly: {month: 9, day: 1}, at: "10:00"}      # time_zone: customer (the default), or an IANA zone

Every problem is ``file: path: message`` with the nearest known name when a name is misspelt. The Schedule a
broadcast gets (``starter.broadcasts``) is computed here too, from ``when``, so the command and the docs agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from contracts.broadcasts import OCCURRENCE_PROPERTY, broadcast_event_type
from journeymap.errors import MapError, MapValidationError
from journeymap.fields import IDENTIFIER, Category, Channel, FrozenModel
from journeymap.loader import parse_yaml, read_text
from journeymap.models import JourneyMap
from journeymap.suggest import did_you_mean

CUSTOMER_ZONE = "customer"
EARLIEST_ZONE = "Etc/GMT-14"
"""UTC+14 (the sign of ``Etc/`` zones is inverted): the first place on Earth a local time comes. A broadcast "at
10:00 in each customer's zone" begins there, and each member's journey waits for their own 10:00."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
CADENCES = ("once", "weekly", "monthly", "yearly")


class Yearly(FrozenModel):
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)


class When(FrozenModel):
    """Exactly one of ``once`` (a date), ``weekly`` (a weekday), ``monthly`` (a day) or ``yearly`` (month and day),
    at ``at`` (HH:MM) in ``time_zone``: each customer's own (``customer``, the default) or one IANA zone."""

    once: date | None = None
    weekly: Weekday | None = None
    monthly: int | None = Field(default=None, ge=1, le=31)
    yearly: Yearly | None = None
    at: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    time_zone: str = CUSTOMER_ZONE

    @model_validator(mode="after")
    def _one_cadence(self) -> When:
        given = [name for name in CADENCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"say when with exactly one of: {', '.join(CADENCES)}" + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != CUSTOMER_ZONE:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r}: 'customer' or an IANA name such as 'Europe/Paris'"
                ) from None
        return value

    @property
    def cadence(self) -> str:
        return next(name for name in CADENCES if getattr(self, name) is not None)

    @property
    def local(self) -> bool:
        """Each customer at ``at`` in their own zone."""
        return self.time_zone == CUSTOMER_ZONE

    @property
    def schedule_zone(self) -> str:
        """The zone the Schedule's calendar is read in."""
        return EARLIEST_ZONE if self.local else self.time_zone

    def describe(self) -> str:
        where = "each customer's time zone" if self.local else self.time_zone
        if self.once is not None:
            day = f"once on {self.once.isoformat()}"
        elif self.weekly is not None:
            day = f"every {self.weekly}"
        elif self.monthly is not None:
            day = f"monthly on day {self.monthly}"
        else:
            assert self.yearly is not None
            day = f"every year on {date(2000, self.yearly.month, self.yearly.day):%B} {self.yearly.day}"
        return f"{day} at {self.at} in {where}"


class Broadcast(FrozenModel):
    """A map sent to a segment's members at a set time (issue 15)."""

    name: str = Field(pattern=IDENTIFIER, max_length=64)
    description: str = ""
    journey: str = Field(min_length=1, max_length=64)
    """The map's name: it enters on ``broadcast.<name>`` and keys its instances by ``broadcast``."""
    segment: str = Field(pattern=IDENTIFIER, max_length=64)
    category: Category = "promotional"
    channels: list[Channel] = Field(default_factory=list)
    """Consent for ``category`` on one of these is needed at the member's turn (none: the send decides alone)."""
    when: When
    rate_per_second: float = Field(default=50.0, gt=0, le=10_000)
    """Journeys started per second at most (on average over a page)."""
    page_size: int = Field(default=500, ge=1, le=10_000)

    @property
    def event_type(self) -> str:
        return broadcast_event_type(self.name)


def parse_broadcast(data: Any, *, source: str) -> Broadcast:
    if not isinstance(data, dict):
        raise MapValidationError([MapError(source, "", "a broadcast is a YAML mapping (name, journey, segment, when)")])
    try:
        return Broadcast.model_validate(data)
    except ValidationError as exc:
        raise MapValidationError([_error(source, error) for error in exc.errors(include_url=False)]) from None


def _error(source: str, error: Any) -> MapError:
    path = ".".join(str(part) for part in error["loc"])
    message: str = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        return MapError(source, path, f"unknown field {key!r}{did_you_mean(key, _known_keys())}")
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "at":
        message = f"{error['input']!r} is not a time of day: write HH:MM, such as '10:00'"
    if error["type"] == "literal_error" and error["loc"][-1] == "weekly":
        message = f"{error['input']!r} is not a weekday{did_you_mean(str(error['input']), WEEKDAYS)}"
    return MapError(source, path, message)


def _known_keys() -> set[str]:
    return set(Broadcast.model_fields) | set(When.model_fields) | set(Yearly.model_fields)


def load_broadcast(path: Path) -> Broadcast:
    return parse_broadcast(parse_yaml(read_text(path), source=path.name), source=path.name)


def check_broadcast(
    broadcast: Broadcast, *, source: str, maps: Mapping[str, JourneyMap], segments: Iterable[str]
) -> list[MapError]:
    """Names across files: the map and the segment exist, and the map enters as a broadcast map must."""
    errors: list[MapError] = []
    known = set(segments)
    if broadcast.segment not in known:
        errors.append(
            MapError(
                source, "segment", f"unknown segment {broadcast.segment!r}{did_you_mean(broadcast.segment, known)}"
            )
        )
    journey = maps.get(broadcast.journey)
    if journey is None:
        errors.append(
            MapError(source, "journey", f"unknown map {broadcast.journey!r}{did_you_mean(broadcast.journey, maps)}")
        )
        return errors
    if broadcast.event_type not in journey.entry.events:
        errors.append(
            MapError(
                source,
                "journey",
                f"map {journey.name!r} does not enter on {broadcast.event_type!r}: add it to the map's entry.events",
            )
        )
    if journey.entry.key != OCCURRENCE_PROPERTY:
        errors.append(
            MapError(
                source,
                "journey",
                f"map {journey.name!r} must key its instances by the occurrence: set entry.key to "
                f"{OCCURRENCE_PROPERTY!r}, so each occurrence is its own journey",
            )
        )
    return errors


@dataclass(frozen=True)
class Loaded:
    broadcast: Broadcast
    source: str


def load_broadcasts(folder: Path, *, maps: Mapping[str, JourneyMap], segments: Iterable[str]) -> dict[str, Broadcast]:
    """Every ``*.yaml`` of ``folder`` by name (none when there is no folder); raises :class:`MapValidationError`
    listing every problem of every file."""
    return load_broadcast_files(sorted(folder.glob("*.yaml")) if folder.is_dir() else [], maps=maps, segments=segments)


def load_broadcast_files(
    paths: Iterable[Path], *, maps: Mapping[str, JourneyMap], segments: Iterable[str]
) -> dict[str, Broadcast]:
    found: dict[str, Loaded] = {}
    errors: list[MapError] = []
    names = set(segments)
    for path in paths:
        try:
            broadcast = load_broadcast(path)
        except MapValidationError as exc:
            errors += exc.errors
            continue
        if broadcast.name in found:
            errors.append(
                MapError(
                    path.name, "name", f"broadcast name {broadcast.name!r} is used by {found[broadcast.name].source}"
                )
            )
            continue
        found[broadcast.name] = Loaded(broadcast, path.name)
        errors += check_broadcast(broadcast, source=path.name, maps=maps, segments=names)
    if errors:
        raise MapValidationError(errors)
    return {name: loaded.broadcast for name, loaded in found.items()}


def label(text: str) -> str:
    """An occurrence label from free text: letters, digits, ``-``, ``_``, ``.``, ``:`` only."""
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", text).strip("-")[:80]
