"""The pharmacy refill journey, every path, on the time-skipping server."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from testkit.harness import Journeys, running_journeys

JOURNEY = "pharmacy_refill"
CHICAGO = ZoneInfo("America/Chicago")


async def _start(
    j: Journeys, env: WorkflowEnvironment, *, rx: str = "rx1", refills: int = 1, supply: int = 30
) -> datetime:
    j.add_customer("c1", first_name="Maria", timezone="America/Chicago")
    now = await env.get_current_time()
    routed = await j.send(
        "c1", "prescription_filled", rx_id=rx, days_supply=supply, refills_remaining=refills, filled_at=now.isoformat()
    )
    assert [(r.journey, r.action) for r in routed] == [(JOURNEY, "started_or_signalled")]
    return now


def _sent(j: Journeys) -> list[tuple[str, str]]:
    return [(d.step, d.channel) for d in j.outbox("c1")]


async def _to_ready(j: Journeys, env: WorkflowEnvironment, rx: str = "rx1") -> None:
    """From entry: past the reminder, refill ordered, refill ready at the Elm St store."""
    await env.sleep(timedelta(days=28))
    await j.settled(JOURNEY, "c1", rx, until=lambda s: s.step == "await_order")
    await j.send("c1", "refill_ordered", rx_id=rx)
    await j.settled(JOURNEY, "c1", rx, until=lambda s: s.step == "await_ready")
    await j.send("c1", "refill_ready", rx_id=rx, store_name="Elm St")
    await j.settled(JOURNEY, "c1", rx, until=lambda s: s.step == "await_pickup")


async def test_reminder_goes_out_three_days_before_supply_ends_at_ten_local(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        filled = await _start(j, time_env)
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert (state.step, state.status) == ("wait_for_reminder", "waiting")
        assert state.wait_until is not None
        local = state.wait_until.astimezone(CHICAGO)
        assert (local.hour, local.minute) == (10, 0)
        assert local.date() == (filled + timedelta(days=27)).astimezone(CHICAGO).date()
        assert _sent(j) == []
        await time_env.sleep(timedelta(days=28))
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        assert state.waiting_for == ["refill_ordered"]
        assert sorted(_sent(j)) == [("remind_refill", "email"), ("remind_refill", "push")]
        email = next(d for d in j.outbox("c1") if d.channel == "email")
        assert "Hello Maria" in email.content["text"]


async def test_ready_pickup_and_last_refill_completes(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, refills=1)
        await _to_ready(j, time_env)
        ready = [d for d in j.outbox("c1") if d.step == "notify_ready"]
        assert [d.channel for d in ready] == ["push"]
        assert "Elm St" in ready[0].content["body"]
        now = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=now.isoformat())
        result = await j.handle(JOURNEY, "c1", "rx1").result()
        assert (result.status, result.goal_reached) == ("completed", True)
        assert ("pickup_voicemail", "voice") not in _sent(j)
        state = await j.state(JOURNEY, "c1", "rx1")
        assert state.vars["refills_remaining"] == 0


async def test_refills_remaining_start_the_next_cycle(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, refills=2)
        await _to_ready(j, time_env)
        picked = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=picked.isoformat())
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "wait_for_reminder")
        assert state.vars["refills_remaining"] == 1
        assert state.wait_until is not None
        # The next reminder: 3 days before the new supply (from pickup) ends.
        assert state.wait_until.astimezone(CHICAGO).date() == (picked + timedelta(days=27)).astimezone(CHICAGO).date()
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        reminders = [d for d in j.outbox("c1") if d.step == "remind_refill"]
        assert len(reminders) == 4  # two cycles, push and email each
        assert len({d.idempotency_key for d in reminders}) == 2  # one business key per cycle


async def test_not_picked_up_within_five_days_gets_a_voicemail(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, refills=0)
        await _to_ready(j, time_env)
        await time_env.sleep(timedelta(days=4))
        assert ("pickup_voicemail", "voice") not in _sent(j)
        await time_env.sleep(timedelta(days=1, hours=1))
        for _ in range(24):  # a voicemail waits out the customer's quiet hours (no calls at night)
            if (await j.settled(JOURNEY, "c1", "rx1")).step == "await_late_pickup":
                break
            await time_env.sleep(timedelta(hours=1))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_late_pickup")
        voice = [d for d in j.outbox("c1") if d.channel == "voice"]
        assert len(voice) == 1 and "Elm St" in voice[0].content["text"]
        # Picked up late: on to the next cycle, which ends for lack of refills.
        now = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=now.isoformat())
        assert (await j.handle(JOURNEY, "c1", "rx1").result()).status == "completed"


async def test_never_picked_up_ends_after_the_late_window(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, refills=3)
        await _to_ready(j, time_env)
        await time_env.sleep(timedelta(days=20))
        result = await j.handle(JOURNEY, "c1", "rx1").result()
        assert (result.status, result.goal_reached) == ("completed", False)
        assert ("pickup_voicemail", "voice") in _sent(j)


async def test_no_order_after_the_reminder_ends_the_journey(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env)
        await time_env.sleep(timedelta(days=28 + 11))
        result = await j.handle(JOURNEY, "c1", "rx1").result()
        assert result.status == "completed"
        assert [s for s, _ in _sent(j)] == ["remind_refill", "remind_refill"]


async def test_ordered_but_never_ready_ends_the_journey(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env)
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        await j.send("c1", "refill_ordered", rx_id="rx1")
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_ready")
        await time_env.sleep(timedelta(days=8))
        assert (await j.handle(JOURNEY, "c1", "rx1").result()).status == "completed"
        assert all(step == "remind_refill" for step, _ in _sent(j))


async def test_cancelled_prescription_exits_in_the_middle_of_a_long_wait(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env)
        await j.settled(JOURNEY, "c1", "rx1")
        await time_env.sleep(timedelta(days=2))
        await j.send("c1", "prescription_cancelled", rx_id="rx1")
        handle = j.handle(JOURNEY, "c1", "rx1")
        result = await handle.result()
        assert (result.status, result.end_reason) == ("exited", "exit event prescription_cancelled")
        assert _sent(j) == []


async def test_account_closed_without_instance_key_reaches_every_prescription(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """An event about the customer (no rx_id) reaches all of their running prescriptions (needs visibility)."""
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer("c1", timezone="America/Chicago")
        now = datetime.now(CHICAGO)
        for rx in ("rxA", "rxB"):
            await j.send(
                "c1", "prescription_filled", rx_id=rx, days_supply=30, refills_remaining=1, filled_at=now.isoformat()
            )
            await j.settled(JOURNEY, "c1", rx)
        for _ in range(100):  # visibility is eventually consistent
            routed = await j.send("c1", "account_closed", event_id=f"close-{_}")
            if len([r for r in routed if r.action == "signalled"]) == 2:
                break
        for rx in ("rxA", "rxB"):
            assert (await j.handle(JOURNEY, "c1", rx).result()).status == "exited"


async def test_events_for_another_prescription_are_ignored(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, rx="rx1")
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        # Signalled straight to rx1's workflow with another rx_id: the match condition must reject it.
        from contracts.events import JourneyEvent

        await j.handle(JOURNEY, "c1", "rx1").signal(
            "event", JourneyEvent(id="x", type="refill_ordered", properties={"rx_id": "rx2"})
        )
        await j.send("c1", "refill_ordered", rx_id="rx2")  # routed to rx2's (absent) journey
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        assert state.step == "await_order"


async def test_a_retried_event_has_effect_once(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _start(j, time_env, refills=2)
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        await j.send("c1", "refill_ordered", event_id="order-1", rx_id="rx1")
        await j.send("c1", "refill_ordered", event_id="order-1", rx_id="rx1")  # backend retry
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_ready")
        await j.send("c1", "refill_ready", event_id="ready-1", rx_id="rx1", store_name="Elm St")
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_pickup")
        await j.send("c1", "refill_ready", event_id="ready-1", rx_id="rx1", store_name="Elm St")  # retry again
        now = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", event_id="pick-1", rx_id="rx1", picked_up_at=now.isoformat())
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "wait_for_reminder")
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        # The first cycle's order, retried late, must not move the second cycle on.
        await j.send("c1", "refill_ordered", event_id="order-1", rx_id="rx1")
        await j.send("c1", "refill_picked_up", event_id="pick-1", rx_id="rx1", picked_up_at=now.isoformat())
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        assert state.step == "await_order"
        assert len([d for d in j.outbox("c1") if d.step == "notify_ready"]) == 1


async def test_continue_as_new_in_mid_wait_loses_nothing(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, continue_as_new_after_events=40, database_url=database_url
    ) as j:
        await _start(j, time_env, refills=1)
        first = await j.settled(JOURNEY, "c1", "rx1")
        handle = j.handle(JOURNEY, "c1", "rx1")
        first_run = (await handle.describe()).run_id
        # Events the journey does not wait for still grow its history: enough to pass the threshold.
        for n in range(15):
            await j.send("c1", "refill_ready", event_id=f"noise-{n}", rx_id="rx1", store_name="x")
        await j.continued_as_new(JOURNEY, "c1", "rx1", from_run=first_run)
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "wait_for_reminder")
        assert state.wait_until == first.wait_until  # the deadline survived
        assert _sent(j) == []
        await _to_ready(j, time_env)
        now = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=now.isoformat())
        result = await j.handle(JOURNEY, "c1", "rx1").result()
        assert result.status == "completed"
        assert sorted(_sent(j)) == [("notify_ready", "push"), ("remind_refill", "email"), ("remind_refill", "push")]


async def test_a_date_only_fill_date_is_a_date_in_the_customers_zone(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """Backends often send dates without a time: the reminder still comes 3 days before, at 10:00 local."""
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer("c1", timezone="America/Los_Angeles")
        now = await time_env.get_current_time()
        filled = now.date() + timedelta(days=1)
        await j.send(
            "c1", "prescription_filled", rx_id="rx1", days_supply=30, refills_remaining=0, filled_at=filled.isoformat()
        )
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert state.vars["supply_ends"] == (filled + timedelta(days=30)).isoformat()
        assert state.wait_until is not None
        local = state.wait_until.astimezone(ZoneInfo("America/Los_Angeles"))
        assert (local.date(), local.hour) == (filled + timedelta(days=27), 10)
