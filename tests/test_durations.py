"""Durations as marketers write them, read back exactly, and refused with a message that says what to write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from journeymap.durations import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3d", timedelta(days=3)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        ("1w2d3h4m5s", timedelta(days=9, hours=3, minutes=4, seconds=5)),
        ("-3d", timedelta(days=-3)),
        (" 1d 12h ", timedelta(days=1, hours=12)),
        ("P3DT4H", timedelta(days=3, hours=4)),
        ("p2w", timedelta(weeks=2)),
        ("PT30M", timedelta(minutes=30)),
        ("-P1D", timedelta(days=-1)),
        ("3660d", MAX_DURATION),
    ],
)
def test_parse(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=3), "3d"),
        (timedelta(hours=2, minutes=30), "2h30m"),
        (timedelta(weeks=1), "7d"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(days=-3), "-3d"),
        (timedelta(0), "0s"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize(
    "value",
    [timedelta(seconds=s) for s in (1, 59, 60, 3599, 3600, 86399, 86400, 90061, 10**6, 316_224_000)]
    + [timedelta(days=-4, hours=-5)],
)
def test_round_trip(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    "text", ["", "3", "d", "3x", "3 days", "1.5d", "3d2w", "1y", "2mo", "P1Y", "P1M", "--1d", "3d-"]
)
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; write e\.g\. '3d', '2h30m', '1w', '90s'"):
        parse_duration(text)


def test_too_long() -> None:
    with pytest.raises(ValueError, match=r"'3661d' is longer than the longest allowed duration \(3660 days\)"):
        parse_duration("3661d")
    with pytest.raises(ValueError, match="longer than the longest"):
        parse_duration("-600w")
