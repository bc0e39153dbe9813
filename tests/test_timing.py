"""When a ``wait`` ends: the promise a marketer relies on ("10:00 in the customer's time zone, three days
before the refill is due"), across time zones, DST changes, leap days and bad profile data.

``wait_deadline`` is a pure function of the clock it is given, so every case states ``now`` and the exact
moment (UTC) the wait must end.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from journeymap.steps.wait import WaitSpec
from journeymap.timing import customer_zone, resolve_moment, wait_deadline

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def deadline(spec: dict[str, Any], now: str, zone: ZoneInfo = NEW_YORK, until: Any = None) -> datetime:
    return wait_deadline(WaitSpec.model_validate(spec), now=utc(now), zone=zone, until_value=until)


# ------------------------------------------------------------------------------------------- durations


def test_a_duration_counts_from_now() -> None:
    assert deadline({"duration": "3d"}, "2026-03-01T12:00") == utc("2026-03-04T12:00")
    assert deadline({"duration": "2h30m"}, "2026-03-01T23:00") == utc("2026-03-02T01:30")


def test_a_duration_is_elapsed_time_across_a_dst_change() -> None:
    """``1d`` is 24 hours, even over the night New York moves its clocks forward."""
    assert deadline({"duration": "1d"}, "2026-03-07T15:00") == utc("2026-03-08T15:00")


def test_the_result_is_in_utc() -> None:
    assert deadline({"duration": "1h"}, "2026-03-01T12:00").tzinfo is UTC


# ------------------------------------------------------------------------------------------- at


def test_at_is_the_next_occurrence_of_that_local_time() -> None:
    # 12:00 UTC is 08:00 in New York (EDT, UTC-4) on 1 June.
    assert deadline({"at": "10:00"}, "2026-06-01T12:00") == utc("2026-06-01T14:00")
    assert deadline({"at": "07:00"}, "2026-06-01T12:00") == utc("2026-06-02T11:00")


def test_at_exactly_now_does_not_wait_a_day() -> None:
    assert deadline({"at": "08:00"}, "2026-06-01T12:00") == utc("2026-06-01T12:00")


def test_duration_then_at() -> None:
    """A day from now, then on to 09:30 local: 2 June 08:00 local becomes 2 June 09:30 local."""
    assert deadline({"duration": "1d", "at": "09:30"}, "2026-06-01T12:00") == utc("2026-06-02T13:30")


def test_at_follows_the_customers_zone() -> None:
    assert deadline({"at": "09:00"}, "2026-06-01T12:00", zone=TOKYO) == utc("2026-06-02T00:00")
    assert deadline({"at": "09:00"}, "2026-06-01T12:00", zone=PARIS) == utc("2026-06-02T07:00")


# ------------------------------------------------------------------------------------------- until


def test_until_a_date_with_offset_and_time_in_the_customers_zone() -> None:
    """The pharmacy reminder: three days before the supply ends, at 10:00 local."""
    spec = {"until": "vars.supply_ends", "offset": "-3d", "at": "10:00"}
    assert deadline(spec, "2026-03-01T12:00", until="2026-03-31") == utc("2026-03-28T14:00")  # EDT
    assert deadline(spec, "2026-03-01T12:00", zone=PARIS, until="2026-03-31") == utc("2026-03-28T09:00")  # CET


def test_until_a_datetime_keeps_its_instant() -> None:
    spec = {"until": "vars.due", "offset": "2h"}
    assert deadline(spec, "2026-03-01T12:00", until="2026-03-10T08:15:00Z") == utc("2026-03-10T10:15")
    assert deadline(spec, "2026-03-01T12:00", until=utc("2026-03-10T08:15")) == utc("2026-03-10T10:15")


def test_until_in_the_past_ends_at_once() -> None:
    """The wait ends immediately (the interpreter goes on), rather than never."""
    assert deadline({"until": "vars.due"}, "2026-03-01T12:00", until="2026-02-01") < utc("2026-03-01T12:00")


def test_date_only_values_are_local_dates() -> None:
    """``2026-03-31`` means midnight where the customer lives, not midnight UTC."""
    assert resolve_moment("2026-03-31", TOKYO) == utc("2026-03-30T15:00")
    assert resolve_moment(date(2026, 3, 31), NEW_YORK) == utc("2026-03-31T04:00")
    # A datetime without an offset is local too; one with an offset is an instant.
    assert resolve_moment("2026-03-31T09:00:00", PARIS) == utc("2026-03-31T07:00")
    assert resolve_moment("2026-03-31T09:00:00+00:00", PARIS) == utc("2026-03-31T09:00")


@pytest.mark.parametrize("value", ["soon", 42, None, "2026-13-01"])
def test_a_value_that_is_not_a_date_is_refused(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        resolve_moment(value, NEW_YORK)


# ------------------------------------------------------------------------------------------- yearly


def test_yearly_takes_the_next_anniversary() -> None:
    spec = {"until": "profile.birthday", "yearly": True, "at": "09:00"}
    assert deadline(spec, "2026-03-01T12:00", zone=PARIS, until="1990-07-15") == utc("2026-07-15T07:00")
    assert deadline(spec, "2026-08-01T12:00", zone=PARIS, until="1990-07-15") == utc("2027-07-15T07:00")


def test_yearly_on_the_day_itself() -> None:
    """Before the time on the day: today. After it: next year (a birthday loop sends once a year)."""
    spec = {"until": "profile.birthday", "yearly": True, "at": "10:00"}
    assert deadline(spec, "2026-07-15T07:00", zone=PARIS, until="1990-07-15") == utc("2026-07-15T08:00")
    assert deadline(spec, "2026-07-15T09:00", zone=PARIS, until="1990-07-15") == utc("2027-07-15T08:00")


def test_yearly_with_an_offset_counts_the_offset() -> None:
    """ "The day before the birthday", asked after that day has passed, is next year's."""
    spec = {"until": "profile.birthday", "yearly": True, "offset": "-1d", "at": "10:00"}
    assert deadline(spec, "2026-07-01T12:00", zone=PARIS, until="1990-07-15") == utc("2026-07-14T08:00")
    assert deadline(spec, "2026-07-14T12:00", zone=PARIS, until="1990-07-15") == utc("2027-07-14T08:00")


def test_leap_day_anniversaries() -> None:
    """Born on 29 February: the 28th in common years, the 29th in leap years."""
    spec = {"until": "profile.birthday", "yearly": True, "at": "09:00"}
    assert deadline(spec, "2026-01-10T12:00", zone=PARIS, until="2000-02-29") == utc("2026-02-28T08:00")
    assert deadline(spec, "2027-12-01T12:00", zone=PARIS, until="2000-02-29") == utc("2028-02-29T08:00")


def test_yearly_uses_the_local_date_of_the_value() -> None:
    """A birthday stored as a date is the same calendar day wherever the customer lives."""
    spec = {"until": "profile.birthday", "yearly": True, "at": "09:00"}
    assert deadline(spec, "2026-03-01T12:00", zone=TOKYO, until="1990-07-15") == utc("2026-07-15T00:00")


# ------------------------------------------------------------------------------------------- DST


def test_new_york_spring_forward() -> None:
    # 7 March 11:00 EST; the clocks go forward on 8 March: 10:00 is EDT (UTC-4) that day.
    assert deadline({"at": "10:00"}, "2026-03-07T16:00") == utc("2026-03-08T14:00")
    # 02:30 does not exist on 8 March: the wait ends when the clock reads 03:30 EDT, one hour later.
    assert deadline({"at": "02:30"}, "2026-03-08T05:00") == utc("2026-03-08T07:30")


def test_new_york_fall_back() -> None:
    # 1 November: 01:30 happens twice; the first (EDT) counts, so the wait does not end an hour late.
    assert deadline({"at": "01:30"}, "2026-11-01T04:00") == utc("2026-11-01T05:30")
    # 10:00 that day is EST (UTC-5).
    assert deadline({"at": "10:00"}, "2026-10-31T16:00") == utc("2026-11-01T15:00")


def test_paris_spring_forward_and_fall_back() -> None:
    # The clocks go forward on 29 March 2026 and back on 25 October 2026.
    assert deadline({"at": "09:00"}, "2026-03-28T12:00", zone=PARIS) == utc("2026-03-29T07:00")
    assert deadline({"at": "09:00"}, "2026-10-24T12:00", zone=PARIS) == utc("2026-10-25T08:00")
    # A local date across the change: the 3-days-before reminder still lands at 10:00 local.
    spec = {"until": "vars.due", "offset": "-3d", "at": "10:00"}
    assert deadline(spec, "2026-03-01T12:00", zone=PARIS, until="2026-04-01") == utc("2026-03-29T08:00")


# ------------------------------------------------------------------------------------------- zones


def test_customer_zone_falls_back_to_the_maps_zone() -> None:
    assert customer_zone("America/New_York", "Europe/Paris") == NEW_YORK
    for bad in ("Not/A_Zone", "", None, 42, "../etc/passwd"):
        assert customer_zone(bad, "Europe/Paris") == PARIS, bad


def test_a_wait_in_a_customer_zone_that_is_invalid_uses_the_fallback() -> None:
    zone = customer_zone("Mars/Olympus", "Asia/Tokyo")
    assert wait_deadline(WaitSpec(at=time(9, 0)), now=utc("2026-06-01T12:00"), zone=zone) == (utc("2026-06-02T00:00"))
