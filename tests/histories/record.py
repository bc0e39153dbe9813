"""Record the histories the replay tests hold today's workflow code to.

    .venv/bin/python -m tests.histories.record [NAME ...]     # every scenario, or only those named

Each scenario runs a built-in journey on the time-skipping server and writes its history as JSON beside this
file. Re-record only for a change that no deployed run has seen; once a history comes from production-like use,
it stays, and an incompatible change must go behind ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from contracts.journey import ResumeInput
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from starter.client import JourneyClient
from testkit.harness import Journeys, running_journeys

HERE = Path(__file__).parent
RX = "pharmacy_refill"
Scenario = Callable[[Journeys, WorkflowEnvironment], Awaitable[str]]


async def _filled(j: Journeys, env: WorkflowEnvironment, customer: str, refills: int) -> None:
    j.add_customer(customer, first_name="Ann", timezone="America/New_York", email="ann@example.com", phone="+15550100")
    now = await env.get_current_time()
    await j.send(
        customer,
        "prescription_filled",
        rx_id="rx1",
        days_supply=30,
        refills_remaining=refills,
        filled_at=now.isoformat(),
    )
    await j.settled(RX, customer, "rx1")


async def _step(j: Journeys, customer: str, step: str) -> None:
    await j.settled(RX, customer, "rx1", until=lambda s: s.step == step and s.status == "waiting")


async def _to_pickup(j: Journeys, env: WorkflowEnvironment, customer: str) -> None:
    """Filled with one refill, reminded, ordered, ready: at await_pickup."""
    await _filled(j, env, customer, refills=1)
    await env.sleep(timedelta(days=28))
    await _step(j, customer, "await_order")
    await j.send(customer, "refill_ordered", rx_id="rx1")
    await _step(j, customer, "await_ready")
    await j.send(customer, "refill_ready", rx_id="rx1", store_name="Elm St")
    await _step(j, customer, "await_pickup")


async def refill_two_cycles_with_voicemail(j: Journeys, env: WorkflowEnvironment) -> str:
    customer = "hist-cycles"
    await _to_pickup(j, env, customer)
    await env.sleep(timedelta(days=5, hours=1))
    for _ in range(24):  # the voicemail waits for the customer's quiet hours to end
        if (await j.state(RX, customer, "rx1")).step == "await_late_pickup":
            break
        await env.sleep(timedelta(hours=1))
    await _step(j, customer, "await_late_pickup")
    now = await env.get_current_time()
    await j.send(customer, "refill_picked_up", rx_id="rx1", picked_up_at=now.isoformat())
    await j.handle(RX, customer, "rx1").result()
    return customer


async def refill_cancelled_mid_wait(j: Journeys, env: WorkflowEnvironment) -> str:
    customer = "hist-cancel"
    await _filled(j, env, customer, refills=2)
    await env.sleep(timedelta(days=3))
    await j.send(customer, "prescription_cancelled", rx_id="rx1")
    await j.handle(RX, customer, "rx1").result()
    return customer


async def refill_continued_as_new(j: Journeys, env: WorkflowEnvironment) -> str:
    customer = "hist-can"
    await _filled(j, env, customer, refills=0)
    for n in range(15):
        await j.send(customer, "refill_ready", event_id=f"noise-{n}", rx_id="rx1", store_name="x")
    await _step(j, customer, "wait_for_reminder")
    await env.sleep(timedelta(days=28))
    await _step(j, customer, "await_order")
    return customer


async def refill_faulted_continued_and_ended(j: Journeys, env: WorkflowEnvironment) -> str:
    """Issue 17: a pickup without its date faults the next cycle; events keep coming while it waits for an
    operator (it continues-as-new, faulted), and the operator ends it."""
    customer = "hist-fault"
    await _to_pickup(j, env, customer)
    await j.send(customer, "refill_picked_up", rx_id="rx1")  # no picked_up_at
    await j.settled(RX, customer, "rx1", until=lambda s: s.status == "faulted")
    handle = j.handle(RX, customer, "rx1")
    first_run = await _run_id(env, handle.id)
    for n in range(15):
        await j.send(customer, "refill_ready", event_id=f"noise-{n}", rx_id="rx1", store_name="x")
    while await _run_id(env, handle.id) == first_run:  # it continues-as-new at the 40th history event
        await asyncio.sleep(0.05)
    await j.settled(RX, customer, "rx1", until=lambda s: s.status == "faulted")
    await handle.execute_update("resume", ResumeInput(action="end"))
    await handle.result()
    return customer


async def refill_lean_time_zone_from_a_send(j: Journeys, env: WorkflowEnvironment) -> str:
    """Issue 18, on a journey started with today's starter: no search-attribute upserts, sends carrying only
    what their template reads, and the second reminder's local time taken from the zone the ready notice's send
    reported (no second profile load). Cancelled while waiting for the second reminder."""
    customer = "hist-lean"
    await _filled(j, env, customer, refills=2)
    await env.sleep(timedelta(days=28))
    await _step(j, customer, "await_order")
    await j.send(customer, "refill_ordered", rx_id="rx1")
    await _step(j, customer, "await_ready")
    await j.send(customer, "refill_ready", rx_id="rx1", store_name="Elm St")
    await _step(j, customer, "await_pickup")
    await env.sleep(timedelta(days=1))
    now = await env.get_current_time()
    await j.send(customer, "refill_picked_up", rx_id="rx1", picked_up_at=now.isoformat())
    await _step(j, customer, "wait_for_reminder")
    await j.send(customer, "prescription_cancelled", rx_id="rx1")
    await j.handle(RX, customer, "rx1").result()
    return customer


async def refill_started_before_lean(j: Journeys, env: WorkflowEnvironment) -> str:
    """Issue 18: a journey a starter from before the setting started (no ``search_by_step`` in its input) asks
    the ``lean-journeys`` patch at its first rest and clears the search attributes it had set."""
    customer = "hist-before-lean"
    before = JourneyClient(j.client, j.catalog, task_queue=j.journeys.task_queue, search_by_step=None)
    j.add_customer(customer, first_name="Ann", timezone="America/New_York", email="ann@example.com")
    now = await env.get_current_time()
    properties = {"rx_id": "rx1", "days_supply": 30, "refills_remaining": 1, "filled_at": now.isoformat()}
    routed = await before.send_event(
        customer, JourneyEvent(id="filled-1", type="prescription_filled", properties=properties)
    )
    j.started |= {r.workflow_id for r in routed if r.workflow_id}
    await env.sleep(timedelta(days=28))
    await _step(j, customer, "await_order")
    await j.send(customer, "prescription_cancelled", rx_id="rx1")
    await j.handle(RX, customer, "rx1").result()
    return customer


async def _run_id(env: WorkflowEnvironment, workflow_id: str) -> str:
    """The current run, from the raw describe: the SDK's parses the search attributes, and the time-skipping
    server hands an unset datetime attribute back in a form it cannot parse."""
    request = DescribeWorkflowExecutionRequest(
        namespace=env.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    answer = await env.client.workflow_service.describe_workflow_execution(request)
    return answer.workflow_execution_info.execution.run_id


SCENARIOS: dict[str, tuple[Scenario, int | None]] = {
    "pharmacy_refill_faulted_continued_and_ended": (refill_faulted_continued_and_ended, 40),
    "pharmacy_refill_two_cycles_with_voicemail": (refill_two_cycles_with_voicemail, None),
    "pharmacy_refill_cancelled_mid_wait": (refill_cancelled_mid_wait, None),
    "pharmacy_refill_continued_as_new": (refill_continued_as_new, 40),
    "pharmacy_refill_lean_time_zone_from_a_send": (refill_lean_time_zone_from_a_send, None),
    "pharmacy_refill_started_before_lean": (refill_started_before_lean, None),
}


async def main(only: list[str]) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client, check_existing=False)
    try:
        for name, (scenario, threshold) in SCENARIOS.items():
            if only and name not in only:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                queue = f"record-{uuid.uuid4().hex[:8]}"
                async with running_journeys(
                    env.client,
                    Path(tmp),
                    queue,
                    database_url=f"sqlite:///{tmp}/journeys.db",
                    continue_as_new_after_events=threshold,
                ) as j:
                    customer = await scenario(j, env)
                    handle = j.handle(RX, customer, "rx1")
                    history = await handle.fetch_history()
                    runs = [history]
                    # Earlier runs of a journey that continued-as-new: each is replayed on its own.
                    while (
                        previous := runs[-1]
                        .events[0]
                        .workflow_execution_started_event_attributes.continued_execution_run_id
                    ):
                        runs.append(await env.client.get_workflow_handle(handle.id, run_id=previous).fetch_history())
                    for index, run in enumerate(reversed(runs)):
                        suffix = f"_run{index + 1}" if len(runs) > 1 else ""
                        (HERE / f"{name}{suffix}.json").write_text(run.to_json())
                        print(f"recorded {name}{suffix}: {len(run.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
