"""The public testing API (``testkit.JourneyEnvironment``): waits that need no wall clock, skips that land exactly."""

from __future__ import annotations

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from testkit import JourneyEnvironment, JourneyNotReached
from testkit.harness import ROOT

JOURNEY = "pharmacy_refill"
CHICAGO = ZoneInfo("America/Chicago")


async def test_wait_for_step_skips_to_the_journeys_own_wake_ups(
    time_env: WorkflowEnvironment, database_url: str
) -> None:
    async with JourneyEnvironment.start(ROOT / "journeys", env=time_env, database_url=database_url) as journeys:
        journeys.add_customer("maria", first_name="Maria", timezone="America/Chicago")
        filled = await journeys.now()
        await journeys.send(
            "maria",
            "prescription_filled",
            rx_id="rx1",
            days_supply=30,
            refills_remaining=0,
            filled_at=filled.isoformat(),
        )
        # send() returns once the journey rests: it waits for the reminder, nothing sent yet.
        state = await journeys.state(JOURNEY, "maria", "rx1")
        assert (state.step, state.status, journeys.sends("maria")) == ("wait_for_reminder", "waiting", [])
        reminder = state.wait_until
        assert reminder is not None

        began = time.monotonic()
        state = await journeys.wait_for_step(JOURNEY, "maria", "await_order", "rx1")
        # 27 days of journey time, yet the clock stands exactly at the reminder: it moved to the wake-up, no further.
        assert time.monotonic() - began < 10
        now = await journeys.now()
        assert reminder <= now < reminder + timedelta(seconds=5)
        assert (now.astimezone(CHICAGO).hour, now.astimezone(CHICAGO).minute) == (10, 0)
        assert sorted((d.step, d.channel) for d in journeys.sends("maria")) == [
            ("remind_refill", "email"),
            ("remind_refill", "push"),
        ]
        assert state.visits["remind_refill"] == 1

        # A step behind an event that never comes is reported, not waited for.
        with pytest.raises(JourneyNotReached, match="rests at step 'await_order'"):
            await journeys.wait_for_step(JOURNEY, "maria", "notify_ready", "rx1", within=timedelta(days=5))
        assert await journeys.now() < now + timedelta(seconds=5)  # not skipped (a locked clock ticks in real time)

        await journeys.send("maria", "refill_ordered", rx_id="rx1")
        await journeys.send("maria", "refill_ready", rx_id="rx1", store_name="Elm St")
        assert [d.template for d in journeys.sends("maria")][-1] == "refill_ready"
        moment = await journeys.skip_to_next_wakeup()  # five days unpicked: the voicemail
        assert moment is not None
        assert [d.channel for d in journeys.sends("maria")][-1] == "voice"

        # An event about the customer, without the prescription's key, reaches every prescription of theirs.
        await journeys.send("maria", "account_closed")
        state = await journeys.state(JOURNEY, "maria", "rx1")
        assert (state.status, state.end_reason) == ("exited", "exit event account_closed")
        assert await journeys.next_wakeup() is None
