"""Durations as marketers write them: ``3d``, ``2h30m``, ``1w``, ``90s``, or ISO 8601 ``P3DT4H``.

Months and years are not accepted: their length depends on the calendar, and a map must mean one thing.
"""

from __future__ import annotations

import re
from datetime import timedelta

_COMPACT = re.compile(r"^(?P<sign>-)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_ISO = re.compile(
    r"^(?P<sign>-)?P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)

#: The longest duration a map may name. Longer is almost certainly a typo (``3650d`` meant as ``365d``?).
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """Parse a duration, raising ``ValueError`` with a message fit for a marketer."""
    cleaned = text.strip().replace(" ", "")
    match = _COMPACT.match(cleaned) or _ISO.match(cleaned.upper())
    if not cleaned or match is None or not any(match.group(k) for k in "wdhms"):
        raise ValueError(f"{text!r} is not a duration; write e.g. '3d', '2h30m', '1w', '90s' or ISO 8601 'P3DT4H'")
    parts = {k: int(match.group(k) or 0) for k in "wdhms"}
    value = timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    if match.group("sign"):
        value = -value
    if abs(value) > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than the longest allowed duration ({MAX_DURATION.days} days)")
    return value


def format_duration(value: timedelta) -> str:
    """The compact form of a duration, as a marketer would write it (used by the renderer and summaries)."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return sign + ("".join(out) or "0s")
