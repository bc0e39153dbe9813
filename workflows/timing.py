"""When a ``wait`` step ends: durations, dates from the profile or event, local times of day.

Pure functions of their arguments (the workflow passes ``workflow.now()``), so they are deterministic and tested
without a server. Local times use the customer's IANA zone, across DST changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from journeymap.models import WaitSpec


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


def _next_anniversary(moment: datetime, now: datetime, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    for year in (today.year, today.year + 1):
        day = local.day
        if local.month == 2 and day == 29:
            day = 29 if _is_leap(year) else 28
        candidate = datetime.combine(
            date(year, local.month, day), local.timetz().replace(tzinfo=None), tzinfo=zone
        )
        if candidate.date() >= today:
            return candidate
    raise AssertionError("unreachable: next year always has an anniversary")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def wait_deadline(spec: WaitSpec, *, now: datetime, zone: tzinfo, until_value: Any = None) -> datetime:
    """The moment a wait ends (UTC). It may lie in the past: the wait then ends at once."""
    if spec.duration is not None:
        base = now + spec.duration
    elif spec.until is not None:
        base = resolve_moment(until_value, zone)
        if spec.yearly:
            base = _next_anniversary(base, now, zone)
        if spec.offset is not None:
            base = base + spec.offset
    else:
        base = now
    if spec.at is not None:
        local = base.astimezone(zone)
        candidate = datetime.combine(local.date(), spec.at, tzinfo=zone)
        if spec.until is None and candidate < base:
            candidate = datetime.combine(local.date() + timedelta(days=1), spec.at, tzinfo=zone)
        base = candidate
    return base.astimezone(UTC)
