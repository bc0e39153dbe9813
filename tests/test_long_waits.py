"""Every long wait can continue-as-new: the quiet-hours wait of a send and the re-entry cooldown.

A journey resting in such a wait still takes events (each one grows its history); once Temporal suggests it (here:
a small threshold), the run continues as new inside the wait and the next run waits out the rest: the same
deadline, no message twice, none lost.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from runtime.settings import DeliverySettings
from testkit.harness import Journeys, running_journeys, write_journeys

NOTE = "sms:\n  text: 'Hello from {{ journey.name }}'\n"

PROMO = """
name: promo
entry: {events: [visit]}
steps:
  - id: offer
    send: {channel: sms, template: note, category: promotional}
  - id: later
    wait_for: {events: [ping], timeout: 1d}
"""

COOL = """
name: cool
entry: {events: [visit], reentry: {cooldown: 30d}}
steps:
  - id: hello
    send: {channel: sms, template: note, category: transactional}
"""


async def _grow_until_it_continues(j: Journeys, journey: str, customer_id: str, event_type: str) -> str:
    """Send events one at a time, each handled before the next (the ``rested`` update), until the run continues
    as new; its successor.

    One at a time, so the new run gets no burst that would carry it past the threshold again.
    """
    handle = j.handle(journey, customer_id)
    run_id = (await handle.describe()).run_id
    assert run_id is not None
    for n in range(40):
        await j.send(customer_id, event_type, event_id=f"{event_type}-{n}")
        await j.settled(journey, customer_id)
        if (await handle.describe()).run_id != run_id:
            return await j.continued_as_new(journey, customer_id, None, from_run=run_id)
    raise AssertionError(f"{journey} of {customer_id} did not continue as new after 40 events")


async def test_a_quiet_hours_wait_continues_as_new_and_sends_once_when_it_opens(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    now = await time_env.get_current_time()
    quiet = DeliverySettings(
        quiet_hours_start=(now - timedelta(hours=1)).strftime("%H:%M"),
        quiet_hours_end=(now + timedelta(hours=6)).strftime("%H:%M"),
    )
    folder = write_journeys(tmp_path, {"promo": PROMO}, {"note": NOTE})
    async with running_journeys(
        time_env.client,
        tmp_path,
        task_queue,
        folder,
        database_url=database_url,
        delivery=quiet,
        continue_as_new_after_events=20,
    ) as j:
        j.add_customer("q1", timezone="UTC")
        await j.send("q1", "visit")
        waiting = await j.settled("promo", "q1")
        assert (waiting.step, waiting.status) == ("offer", "waiting")
        assert waiting.wait_until is not None
        await _grow_until_it_continues(j, "promo", "q1", "ping")  # events it does not wait for yet: they queue
        resumed = await j.settled("promo", "q1")
        assert (resumed.step, resumed.status, resumed.wait_until) == ("offer", "waiting", waiting.wait_until)
        assert j.outbox("q1") == []
        await time_env.sleep(waiting.wait_until - await time_env.get_current_time() + timedelta(minutes=1))
        result = await j.handle("promo", "q1").result()
        assert result.status == "completed"
        sent = j.outbox("q1")
        assert [(d.step, d.channel) for d in sent] == [("offer", "sms")]
        assert sent[0].sent_at is not None
        assert sent[0].sent_at.replace(tzinfo=UTC) >= waiting.wait_until  # stored in UTC; SQLite returns it naive


async def test_a_cooldown_continues_as_new_and_still_refuses_then_allows_reentry(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = write_journeys(tmp_path, {"cool": COOL}, {"note": NOTE})
    async with running_journeys(
        time_env.client, tmp_path, task_queue, folder, database_url=database_url, continue_as_new_after_events=20
    ) as j:
        j.add_customer("k1")
        await j.send("k1", "visit")
        cooling = await j.settled("cool", "k1", until=lambda s: s.status == "cooldown")
        await _grow_until_it_continues(j, "cool", "k1", "visit")  # visits within the cooldown: absorbed
        resumed = await j.settled("cool", "k1", until=lambda s: s.status == "cooldown")
        assert (resumed.end_reason, resumed.entered_at) == (cooling.end_reason, cooling.entered_at)
        assert len(j.outbox("k1")) == 1
        await time_env.sleep(timedelta(days=31))  # the cooldown is over: the entry closes as it ended
        result = await j.handle("cool", "k1").result()
        assert (result.status, result.end_reason) == ("completed", "reached the end")
        await j.send("k1", "visit", event_id="visit-after")
        await j.settled("cool", "k1", until=lambda s: s.status == "cooldown" and len(s.sends) == 1)
        assert len(j.outbox("k1")) == 2
