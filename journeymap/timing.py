"""When a ``wait`` step ends: durations, dates from the profile or event, local times of day.

Pure functions of their arguments (the workflow passes ``workflow.now()``), so they are deterministic and tested
without a server. Local times use the customer's IANA zone, across DST changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:  # the wait step's module imports this one
    from journeymap.steps.wait import WaitSpec


def customer_zone(name: Any, fallback: str) -> tzinfo:
    """The customer's zone when it names a real one, else the map's."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


def resolve_moment(value: Any, zone: tzinfo) -> datetime:
    """A date (local midnight in ``zone``), a datetime (naive means local), or an ISO string of either."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=zone)
    raise ValueError(f"expected a date, got {type(value).__name__}")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def wait_deadline(spec: WaitSpec, *, now: datetime, zone: tzinfo, until_value: Any = None) -> datetime:
    """The moment a wait ends (UTC). It may lie in the past (the wait then ends at once), except for a
    ``yearly`` wait, which always takes the next anniversary still ahead, so a birthday loop sends once a year.
    """
    if spec.until is not None and spec.yearly:
        moment = resolve_moment(until_value, zone).astimezone(zone)
        for year in range(now.astimezone(zone).year - 1, now.astimezone(zone).year + 2):
            day = 28 if (moment.month, moment.day) == (2, 29) and not _is_leap(year) else moment.day
            anniversary = datetime.combine(date(year, moment.month, day), moment.time(), tzinfo=zone)
            deadline = _finish(spec, anniversary, zone)
            if deadline > now:
                return deadline
        raise AssertionError("unreachable: an anniversary lies within the next two years")
    if spec.duration is not None:
        base = now + spec.duration
    elif spec.until is not None:
        base = resolve_moment(until_value, zone)
    else:
        base = now
    return _finish(spec, base, zone)


def _finish(spec: WaitSpec, base: datetime, zone: tzinfo) -> datetime:
    """Apply the offset (``until`` waits) and the local time of day."""
    if spec.until is not None and spec.offset is not None:
        base = base + spec.offset
    if spec.at is not None:
        local = base.astimezone(zone)
        candidate = datetime.combine(local.date(), spec.at, tzinfo=zone)
        if spec.until is None and candidate < base:
            candidate = datetime.combine(local.date() + timedelta(days=1), spec.at, tzinfo=zone)
        base = candidate
    return base.astimezone(UTC)
