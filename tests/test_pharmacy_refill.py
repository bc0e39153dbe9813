"""The pharmacy refill journey, every path, on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.harness import running_journeys

JOURNEY = "pharmacy_refill"


async def test_reminder_order_ready_pickup(time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue) as j:
        j.add_customer("c1", first_name="Maria", timezone="America/Chicago")
        now = await time_env.get_current_time()
        routed = await j.send(
            "c1",
            "prescription_filled",
            rx_id="rx1",
            days_supply=30,
            refills_remaining=1,
            filled_at=now.isoformat(),
        )
        assert [r.action for r in routed] == ["started_or_signalled"]
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert state.step == "wait_for_reminder" and state.status == "waiting"
        assert state.wait_until is not None
        # 30 days of supply, reminder 3 days before, at 10:00 in the customer's zone.
        expected_day = (now + timedelta(days=27)).astimezone(timezone(timedelta(hours=-6))).date()
        assert state.wait_until.date() == expected_day
        await time_env.sleep(timedelta(days=28))
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert state.step == "await_order"
        assert sorted(d.channel for d in j.outbox("c1")) == ["email", "push"]
        print(j.outbox("c1")[0].content)
