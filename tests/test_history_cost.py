"""What a journey's history costs (issue 18): billable actions, bytes, and what of the customer it holds."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment
from sqlmodel import Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from journeymap import load_map
from journeymap.checks import profile_reads
from journeymap.expressions import names_read
from journeymap.template_reads import only_read, template_reads
from starter.client import JourneyClient
from storage.tables import Customer
from testkit.harness import ROOT, Journeys, running_journeys

JOURNEY = "pharmacy_refill"


def _events(history: WorkflowHistory, kind: str) -> list[Any]:
    return [e for e in history.events if EventType.Name(e.event_type) == f"EVENT_TYPE_{kind}"]


def _activities(history: WorkflowHistory, name: str) -> list[dict[str, Any]]:
    """The inputs of the activities of type ``name`` the history scheduled, decoded."""
    return [
        json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
        for e in _events(history, "ACTIVITY_TASK_SCHEDULED")
        if e.activity_task_scheduled_event_attributes.activity_type.name == name
    ]


async def _filled(j: Journeys, env: WorkflowEnvironment, customer: str, refills: int = 1) -> None:
    now = await env.get_current_time()
    await j.send(
        customer,
        "prescription_filled",
        rx_id="rx1",
        days_supply=30,
        refills_remaining=refills,
        filled_at=now.isoformat(),
    )


async def _to_pickup(j: Journeys, env: WorkflowEnvironment, customer: str) -> None:
    await env.sleep(timedelta(days=28))
    await j.settled(JOURNEY, customer, "rx1", until=lambda s: s.step == "await_order")
    await j.send(customer, "refill_ordered", rx_id="rx1")
    await j.settled(JOURNEY, customer, "rx1", until=lambda s: s.step == "await_ready")
    await j.send(customer, "refill_ready", rx_id="rx1", store_name="Elm St")
    await j.settled(JOURNEY, customer, "rx1", until=lambda s: s.step == "await_pickup")


async def test_the_history_holds_what_templates_and_expressions_read_and_nothing_personal(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer("c1", first_name="Maria", timezone="America/Chicago", email="maria@example.com")
        await _filled(j, time_env, "c1")
        await _to_pickup(j, time_env, "c1")
        email = next(d for d in j.outbox("c1") if d.channel == "email")
        assert "Hello Maria" in email.content["text"]  # the send read the name itself, at send
        history = await j.handle(JOURNEY, "c1", "rx1").fetch_history()
    stored = b"".join(e.SerializeToString() for e in history.events)
    for personal in (b"maria@example.com", b"Maria", b"+15555550100"):
        assert personal not in stored
    [load] = _activities(history, "load_profile")
    assert load == {"customer_id": "c1", "traits": ["timezone"], "segments": False}
    reminder, ready = _activities(history, "send_message")
    assert set(reminder["variables"]) == {"vars"} and set(reminder["variables"]["vars"]) == {"supply_ends"}
    assert ready["variables"] == {"vars": {"store_name": "Elm St"}}


async def test_a_local_time_of_day_takes_the_time_zone_a_send_reported(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """The customer moves between two reminders: the ready notice's send reads the new zone, and the next
    reminder is at 10:00 there, with no profile load of its own."""
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer("c1", timezone="America/Chicago")
        await _filled(j, time_env, "c1", refills=2)
        await time_env.sleep(timedelta(days=28))
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_order")
        with Session(j.engine) as session:
            customer = session.get(Customer, "c1")
            assert customer is not None
            customer.traits = {**customer.traits, "timezone": "Europe/Berlin"}
            session.add(customer)
            session.commit()
        await j.send("c1", "refill_ordered", rx_id="rx1")
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_ready")
        await j.send("c1", "refill_ready", rx_id="rx1", store_name="Elm St")
        await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "await_pickup")
        await time_env.sleep(timedelta(days=1))
        picked = await time_env.get_current_time()
        await j.send("c1", "refill_picked_up", rx_id="rx1", picked_up_at=picked.isoformat())
        state = await j.settled(JOURNEY, "c1", "rx1", until=lambda s: s.step == "wait_for_reminder")
        assert state.wait_until is not None
        local = state.wait_until.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (10, 0)
        history = await j.handle(JOURNEY, "c1", "rx1").fetch_history()
    assert len(_activities(history, "load_profile")) == 1  # at entry only


async def test_step_searching_costs_an_upsert_per_rest_and_only_when_asked(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    upserts = {}
    for searching in (False, True):
        async with running_journeys(
            time_env.client,
            tmp_path / str(searching),
            f"{task_queue}-{searching}",
            database_url=database_url,
            settings_overrides={"search_by_step": searching},
        ) as j:
            customer = f"c-{searching}"
            j.add_customer(customer, timezone="America/Chicago")
            await _filled(j, time_env, customer)
            await _to_pickup(j, time_env, customer)
            history = await j.handle(JOURNEY, customer, "rx1").fetch_history()
            upserts[searching] = len(_events(history, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"))
    # Rests: wait_for_reminder, await_order, await_ready, await_pickup.
    assert upserts == {False: 0, True: 4}


async def test_a_journey_started_before_the_setting_turns_lean_once(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """A chain started by a starter from before (no ``search_by_step`` in its input) asks the patch at its first
    rest on today's code: one TemporalChangeVersion upsert and one that clears what it had set; then none."""
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        before = JourneyClient(j.client, j.catalog, task_queue=task_queue, search_by_step=None)
        j.add_customer("c1", timezone="America/Chicago")
        now = await time_env.get_current_time()
        filled = JourneyEvent(
            id="e1",
            type="prescription_filled",
            properties={"rx_id": "rx1", "days_supply": 30, "refills_remaining": 1, "filled_at": now.isoformat()},
        )
        routed = await before.send_event("c1", filled)
        j.started |= {r.workflow_id for r in routed if r.workflow_id}
        await _to_pickup(j, time_env, "c1")
        history = await j.handle(JOURNEY, "c1", "rx1").fetch_history()
    upserts = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for e in _events(history, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES")
    ]
    assert len(upserts) == 2
    assert "TemporalChangeVersion" in upserts[0]
    assert set(upserts[1]) == {"JourneyStep", "JourneyStatus", "JourneyWaitUntil"}  # cleared
    assert len(_events(history, "MARKER_RECORDED")) == 1


def test_what_a_template_reads_of_each_name() -> None:
    env = Environment()
    tree = env.parse(
        "{{ vars.a }} {{ vars['b'] }} {{ event.x | default('') }}{% for k in trigger %}{{ k }}{% endfor %}"
    )
    assert names_read(tree, "vars") == frozenset({"a", "b"})
    assert names_read(tree, "event") == frozenset({"x"})
    assert names_read(tree, "trigger") is None  # iterated whole
    assert names_read(tree, "journey") == frozenset()
    reads = template_reads(["Hi {{ vars.name }}", "{{ journey.name }} {{ vars.when }}"])
    assert reads == {"vars": frozenset({"name", "when"}), "journey": frozenset({"name"})}
    given = {"vars": {"name": "x", "when": 1, "secret": 2}, "journey": {"name": "j", "customer_id": "c"}, "event": {}}
    assert only_read(given, reads) == {"vars": {"name": "x", "when": 1}, "journey": {"name": "j"}}
    assert only_read(given, None) is given


def test_profile_loads_ask_only_the_traits_a_map_reads() -> None:
    assert profile_reads(load_map(ROOT / "journeys" / "pharmacy_refill.yaml")) == (frozenset(), False)
    assert profile_reads(load_map(ROOT / "journeys" / "birthday.yaml")) == (
        frozenset({"birthday", "promotional_paused"}),
        False,
    )
    journey = load_map(ROOT / "journeys" / "lifecycle.yaml")
    whole = journey.model_copy(update={"variables": {**journey.variables, "p": "profile"}})
    assert profile_reads(whole) == (None, True)  # the profile passed whole: every trait
