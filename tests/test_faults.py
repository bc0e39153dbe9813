"""In flight, a bad value never becomes a wrong send (issue 17, item 3), on the time-skipping server.

An event that reaches a journey without the API's check (the Python client, a folder without declarations)
can still lack what a step needs. The step then stops: the fault is in the journey's state (the ``state``
query, ``journeys describe``, the UI's current details), nothing is sent, and the map's ``on_error`` says what
follows: an operator's ``journeys resume`` by default, a corrected event, or another step.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from contracts.journey import JourneySnapshot, ResumeInput
from journeymap import load_map
from journeymap.mermaid import to_mermaid
from runtime.connection import DATA_CONVERTER
from starter.cli import main
from starter.commands.describe import JourneyDescription, render
from testkit.harness import ROOT, Journeys, running_journeys, write_journeys
from workers.worker import workflow_runner
from workflows.journey import JourneyWorkflow

JOURNEY = "pharmacy_refill"
CHICAGO = ZoneInfo("America/Chicago")


async def _at_pickup(j: Journeys, env: WorkflowEnvironment) -> None:
    j.add_customer("c1", timezone="America/Chicago")
    now = await env.get_current_time()
    await j.send(
        "c1", "prescription_filled", rx_id="rx1", days_supply=30, refills_remaining=2, filled_at=now.isoformat()
    )
    await env.sleep(timedelta(days=28))
    await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
    await j.send("c1", "refill_ordered", rx_id="rx1")
    await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_ready")
    await j.send("c1", "refill_ready", rx_id="rx1", store_name="Elm St")
    await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_pickup")


def _reminders(j: Journeys) -> int:
    return sum(d.template == "refill_reminder" for d in j.outbox("c1"))


def _folder(tmp_path: Path, on_error: str) -> Path:
    """The shipped pharmacy map with ``on_error`` on its next_cycle step."""
    text = (ROOT / "journeys" / "pharmacy_refill.yaml").read_text(encoding="utf-8")
    text = text.replace("  - id: next_cycle\n", f"  - id: next_cycle\n    on_error: {on_error}\n")
    templates = {p.stem: p.read_text() for p in (ROOT / "journeys" / "templates").glob("refill_*.yaml")}
    folder = write_journeys(tmp_path, {JOURNEY: text}, templates)
    (folder / "events.yaml").write_text((ROOT / "journeys" / "events.yaml").read_text())
    return folder


async def test_a_pickup_without_its_date_stops_the_journey_for_an_operator(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's story, past the API: the next cycle cannot know when the supply runs out. Before, it went on
    with none and the next reminder went out at once; now it stops, says why, and sends nothing."""
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _at_pickup(j, time_env)
        assert _reminders(j) == 2  # push and email, three days before the supply ran out
        await j.send("c1", "refill_picked_up", rx_id="rx1")  # no picked_up_at

        state = await j.settled(JOURNEY, "c1", "rx1")
        assert (state.status, state.step) == ("faulted", "next_cycle")
        assert state.fault is not None
        assert (state.fault.step, state.fault.where, state.fault.on_error) == (
            "next_cycle",
            "next_cycle.set.supply_ends",
            "operator",
        )
        assert state.fault.message.endswith("date(): no value (there is no 'picked_up_at')")
        assert state.vars["refills_remaining"] == 2  # the step changed nothing: trying it again counts once
        await time_env.sleep(timedelta(days=60))
        assert _reminders(j) == 2  # nothing went out meanwhile

        handle = j.handle(JOURNEY, "c1", "rx1")
        described = JourneyDescription(
            workflow_id=handle.id,
            journey=JOURNEY,
            execution="Running",
            status=state.status,
            step=state.step,
            waiting_for=state.waiting_for,
            wait_until=state.wait_until,
            sends=state.sends,
            started=state.entered_at or await time_env.get_current_time(),
            fault=state.fault,
        )  # as `journeys describe` makes it from the state query (the time-skipping server cannot list)
        text = render(described)
        assert "fault:     next_cycle.set.supply_ends at " in text
        assert "journeys resume journey/pharmacy_refill/c1/" in text

        # Only a faulted journey can be resumed, to a step that exists.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("resume", ResumeInput(action="goto", step="nowhere"))
        assert "unknown step 'nowhere'" in str(refused.value.cause)

        # The operator ends it from the command line.
        monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", time_env.client.service_client.config.target_host)
        monkeypatch.setenv("JOURNEYS_NAMESPACE", time_env.client.namespace)
        assert await asyncio.to_thread(main, ["resume", handle.id, "--end"]) == 0
        result = await handle.result()
        assert (result.status, result.end_reason) == (
            "failed",
            "ended by an operator after a fault at next_cycle.set.supply_ends",
        )
        assert _reminders(j) == 2
        assert await asyncio.to_thread(main, ["resume", handle.id]) == 1  # not faulted: refused (an input error)

        # The history of all this replays on today's code.
        history: WorkflowHistory = await handle.fetch_history()
        replayer = Replayer(
            workflows=[JourneyWorkflow], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER
        )
        await replayer.replay_workflow(history)


async def test_a_corrected_event_lets_the_step_try_again(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = _folder(tmp_path, "corrected_event")
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        await _at_pickup(j, time_env)
        await j.send("c1", "refill_picked_up", rx_id="rx1")
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert (state.status, state.waiting_for) == ("faulted", ["refill_picked_up"])

        picked = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=picked.isoformat())
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "wait_for_reminder")
        assert state.status == "waiting"
        assert state.vars["refills_remaining"] == 1  # counted down once
        assert state.fault is not None
        assert state.fault.resolved == "retried with a corrected event"
        assert state.wait_until is not None
        reminder = state.wait_until.astimezone(CHICAGO)
        assert ((reminder.hour, reminder.minute), reminder.date()) == (
            (10, 0),
            (picked + timedelta(days=27)).astimezone(CHICAGO).date(),
        )


async def test_on_error_may_name_a_step(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = _folder(tmp_path, "end")
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        await _at_pickup(j, time_env)
        await j.send("c1", "refill_picked_up", rx_id="rx1")
        result = await j.handle(JOURNEY, "c1", "rx1").result()
        assert result.status == "completed"
        assert _reminders(j) == 2
    assert 's_next_cycle -->|"on error"| journey_done' in to_mermaid(load_map(folder / f"{JOURNEY}.yaml"))


TEMPLATE_MAP = """
name: notice
entry: {events: [notice_due]}
steps:
  - id: tell
    send: {channel: email, template: notice, category: transactional}
"""
TEMPLATE = "email:\n  subject: Due {{ date(trigger.due).strftime('%b %d') }}\n  text: Hello\n"


async def test_a_template_that_cannot_be_rendered_sends_nothing_and_waits(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = write_journeys(tmp_path, {"notice": TEMPLATE_MAP}, {"notice": TEMPLATE})
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("c1")
        await j.send("c1", "notice_due")  # no `due`: the subject cannot be made
        state: JourneySnapshot = await j.settled("notice", "c1")
        assert (state.status, state.step) == ("faulted", "tell")
        assert state.fault is not None
        assert state.fault.where == "tell.send.template"
        assert "date(): no value (there is no 'due')" in state.fault.message
        assert [(d.status, d.channel) for d in j.outbox("c1", status=None)] == [("failed", "email")]
        assert [s.outcome for s in state.sends] == ["failed"]

        # Sent back to the step by an operator (a new visit: the message is made again), it faults again, as the
        # data is still missing: still nothing sent.
        handle = j.handle("notice", "c1")
        decision = ResumeInput(action="goto", step="tell")
        after = await handle.execute_update("resume", decision, result_type=JourneySnapshot)
        assert (after.status, after.visits["tell"]) == ("faulted", 2)
        assert j.outbox("c1") == []


async def test_a_trigger_missing_what_the_variables_need_faults_at_entry(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """No reminder is scheduled from a supply end nobody knows; a corrected trigger sets the variables."""
    folder = _folder(tmp_path, "operator")
    text = (folder / f"{JOURNEY}.yaml").read_text()
    on_error = text.replace("reentry: after_end", "reentry: after_end\non_error: corrected_event")  # the map's
    (folder / f"{JOURNEY}.yaml").write_text(on_error)
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("c1", timezone="America/Chicago")
        await j.send("c1", "prescription_filled", rx_id="rx1", days_supply=30, refills_remaining=1)
        state = await j.settled(JOURNEY, "c1", "rx1")
        assert (state.status, state.step, state.vars) == ("faulted", "wait_for_reminder", {})
        assert state.fault is not None
        assert (state.fault.step, state.fault.where) == (None, "variables.supply_ends")

        now = await time_env.get_current_time()
        filled = now.isoformat()
        await j.send("c1", "prescription_filled", rx_id="rx1", days_supply=30, refills_remaining=1, filled_at=filled)
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.status == "waiting")
        assert state.step == "wait_for_reminder"
        assert state.vars["supply_ends"].startswith((now + timedelta(days=30)).date().isoformat())
        assert _reminders(j) == 0
