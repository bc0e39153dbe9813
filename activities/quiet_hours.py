"""Quiet hours in the customer's local time: when a send that must respect them may go.

Computed with the IANA zone of the profile, so the window follows daylight saving time: 08:00 in New York is
13:00 UTC in winter and 12:00 UTC in summer, and the night a clock jumps is as long or short as it really is.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from contracts.errors import ConfigurationError


def parse_hhmm(value: str, *, name: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {value!r} is not a time of day like 21:00") from exc


def applies(channel: str, category: str, transactional_channels: Collection[str]) -> bool:
    """Promotional sends always wait out quiet hours; transactional ones only on ``transactional_channels``
    (``JOURNEYS_QUIET_HOURS_TRANSACTIONAL``: by default voice, no calls at night)."""
    return category == "promotional" or channel in transactional_channels


def window_opens(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """When quiet hours end (UTC-aware) if ``now`` is inside them, else None."""
    if start == end:
        return None
    local = now.astimezone(zone)
    t = local.time()
    quiet = (t >= start or t < end) if start > end else (start <= t < end)
    if not quiet:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    opening = datetime.combine(day, end, tzinfo=zone)
    # Round trip through UTC: a wall time in a DST gap maps to the first real instant after it.
    return opening.astimezone(now.tzinfo) if now.tzinfo else opening
