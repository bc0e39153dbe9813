"""The reference ``bench.cost`` compares the interpreter with: the pharmacy refill story hand-written in temporalio.

What an engineer would write for ``journeys/pharmacy_refill.yaml`` without journeys, idiomatically: one workflow
per prescription started with the filled prescription as its input, one signal per event type, durable waits as
``workflow.wait_condition`` with a timeout, one activity per message sent (the reminder goes by push and by email:
two), and one activity to look up the customer's time zone. The same sends at the same times as the map:

- the reminder (push and email) 3 days before the supply runs out, at 10:00 in the customer's zone;
- the ready notice (push) when the refill is ready;
- a voicemail 5 days after ready if the refill was not picked up (then 14 more days to pick it up);
- the next cycle on pickup, while refills remain; the journey ends on ``prescription_cancelled`` or
  ``account_closed``, or when the customer does not order (10 days) or the pharmacy does not fill (7 days).

Two variants (``RefillInput.search_by_step``): plain, and one that upserts the step as a search attribute each
time it comes to rest at a new wait, which is what it takes to search by step in the Temporal UI.

The activities are in-process fakes registered by the bench only (:data:`ACTIVITIES`): the cost of a workflow is
what its history records, the same with a fake as with a real provider. The pacing (:func:`pharmacy_year`) reads
the workflow's ``step`` query, which writes nothing to history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from contracts import search_attributes as sa

DEFAULT_ZONE = "America/New_York"


# ------------------------------------------------------------------------------------------- contracts


@dataclass
class RefillInput:
    """The filled prescription: what the ``prescription_filled`` event carries."""

    customer_id: str
    rx_id: str
    days_supply: int
    refills_remaining: int
    filled_at: datetime
    search_by_step: bool = False


@dataclass
class Ready:
    store_name: str


@dataclass
class PickedUp:
    picked_up_at: datetime


@dataclass
class SendInput:
    """One message on one channel. The activity loads the contact details and the name itself."""

    idempotency_key: str
    customer_id: str
    channel: str
    template: str
    supply_ends: datetime | None = None
    store_name: str | None = None


@dataclass
class SendResult:
    provider_message_id: str


@dataclass
class Where:
    """The ``step`` query's answer: where the workflow rests, and until when (pacing only)."""

    step: str
    until: datetime | None
    done: bool


# ------------------------------------------------------------------------------------------- activities (fakes)


@activity.defn
async def lookup_time_zone(customer_id: str) -> str:
    """A real one reads the customer's profile; the bench's customer lives in Chicago."""
    return "America/Chicago"


@activity.defn
async def send_message(input: SendInput) -> SendResult:
    """A real one renders the template and calls the provider; the history is the same."""
    return SendResult(provider_message_id=uuid.uuid4().hex)


ACTIVITIES: list[Callable[..., Any]] = [lookup_time_zone, send_message]


# ------------------------------------------------------------------------------------------- workflow


@workflow.defn(name="HandwrittenRefill")
class HandwrittenRefill:
    def __init__(self) -> None:
        self.ordered = False
        self.ready: Ready | None = None
        self.picked_up: PickedUp | None = None
        self.closed: str | None = None
        self.step = "starting"
        self.until: datetime | None = None
        self.done = False

    @workflow.run
    async def run(self, input: RefillInput) -> str:
        zone = ZoneInfo(
            await workflow.execute_activity(
                lookup_time_zone, input.customer_id, start_to_close_timeout=timedelta(seconds=30)
            )
            or DEFAULT_ZONE
        )
        supply_ends = input.filled_at + timedelta(days=input.days_supply)
        refills = input.refills_remaining
        cycle = 0
        try:
            while True:
                cycle += 1
                reminder_day = (supply_ends - timedelta(days=3)).astimezone(zone).date()
                reminder = datetime.combine(reminder_day, time(10, 0), tzinfo=zone)
                await self.wait("wait_for_reminder", input, lambda: False, reminder - workflow.now())
                if self.closed:
                    return self.closed
                self.ordered = False  # an order from now on counts, even one that comes during the sends
                for channel in ("push", "email"):
                    await self.send(input, cycle, channel, "refill_reminder", supply_ends=supply_ends)
                if not await self.wait("await_order", input, lambda: self.ordered, timedelta(days=10)):
                    return self.closed or "not ordered"
                self.ready = None
                if not await self.wait("await_ready", input, lambda: self.ready is not None, timedelta(days=7)):
                    return self.closed or "not filled"
                assert self.ready is not None
                store = self.ready.store_name
                self.picked_up = None
                await self.send(input, cycle, "push", "refill_ready", store_name=store)
                if not await self.wait("await_pickup", input, lambda: self.picked_up is not None, timedelta(days=5)):
                    if self.closed:
                        return self.closed
                    await self.send(input, cycle, "voice", "refill_not_picked_up", store_name=store)
                    if not await self.wait(
                        "await_late_pickup", input, lambda: self.picked_up is not None, timedelta(days=14)
                    ):
                        return self.closed or "not picked up"
                assert self.picked_up is not None
                refills -= 1
                supply_ends = self.picked_up.picked_up_at + timedelta(days=input.days_supply)
                if refills <= 0:
                    return "no refills left"
        finally:
            self.done = True

    async def wait(self, step: str, input: RefillInput, until: Callable[[], bool], timeout: timedelta) -> bool:
        """Rest at ``step`` until ``until()`` holds (True) or ``timeout`` passes or the journey closes (False)."""
        if input.search_by_step and step != self.step:
            workflow.upsert_search_attributes([sa.STEP.value_set(step)])
        self.step, self.until = step, workflow.now() + timeout
        if timeout <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(lambda: until() or self.closed is not None, timeout=timeout)
        except TimeoutError:
            return False
        return self.closed is None

    async def send(self, input: RefillInput, cycle: int, channel: str, template: str, **data: object) -> None:
        key = f"{workflow.info().workflow_id}/{cycle}/{template}/{channel}"
        await workflow.execute_activity(
            send_message,
            SendInput(key, input.customer_id, channel, template, **data),  # type: ignore[arg-type]
            start_to_close_timeout=timedelta(seconds=60),
        )

    @workflow.signal
    def refill_ordered(self) -> None:
        self.ordered = True

    @workflow.signal
    def refill_ready(self, ready: Ready) -> None:
        self.ready = ready

    @workflow.signal
    def refill_picked_up(self, picked_up: PickedUp) -> None:
        self.picked_up = picked_up

    @workflow.signal
    def prescription_cancelled(self) -> None:
        self.closed = "cancelled"

    @workflow.signal
    def account_closed(self) -> None:
        self.closed = "account closed"

    @workflow.query
    def where(self) -> Where:
        return Where(self.step, self.until, self.done)


# ------------------------------------------------------------------------------------------- the scenario


def workflow_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, letting the workflow build a ``ZoneInfo`` (the default wraps the class in a proxy)."""
    members = SandboxRestrictions.invalid_module_members_default.with_child_unrestricted("zoneinfo", "ZoneInfo")
    return SandboxedWorkflowRunner(
        restrictions=dataclasses.replace(SandboxRestrictions.default, invalid_module_members=members)
    )


@asynccontextmanager
async def handwritten_worker(client: Client) -> AsyncIterator[str]:
    """A worker for the hand-written workflow and its fake activities; yields its task queue."""
    queue = f"bench-handwritten-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[HandwrittenRefill],
        activities=ACTIVITIES,
        workflow_runner=workflow_runner(),
    ):
        yield queue


async def _at(handle: WorkflowHandle[Any, Any], step: str) -> Where:
    """Until the workflow rests at ``step`` (or has ended): the query costs nothing and writes nothing."""
    while True:
        where = await handle.query(HandwrittenRefill.where)
        if where.step == step or where.done:
            return where
        await asyncio.sleep(0.01)


async def pharmacy_year(env: WorkflowEnvironment, queue: str, customer: str, *, search_by_step: bool) -> list[str]:
    """``bench.scenarios.pharmacy_refill`` for the hand-written workflow: the same year, the same events at the
    same moments (30-day supply, 11 refills, one pickup late). Returns the workflow id it ran."""
    client = env.client
    start = await env.get_current_time()
    rx = f"rx-{customer}"
    handle = await client.start_workflow(
        HandwrittenRefill.run,
        RefillInput(customer, rx, days_supply=30, refills_remaining=11, filled_at=start, search_by_step=search_by_step),
        id=f"handwritten-refill-{rx}",
        task_queue=queue,
    )
    for month in range(12):
        where = await _at(handle, "wait_for_reminder")
        if where.done:
            break
        assert where.until is not None
        await env.sleep(where.until - await env.get_current_time() + timedelta(minutes=1))
        await _at(handle, "await_order")
        await env.sleep(timedelta(hours=20))
        await handle.signal(HandwrittenRefill.refill_ordered)
        await _at(handle, "await_ready")
        await env.sleep(timedelta(hours=6))
        await handle.signal(HandwrittenRefill.refill_ready, Ready("Elm St"))
        await _at(handle, "await_pickup")
        if month == 4:
            await env.sleep(timedelta(days=5, hours=1))
            await _at(handle, "await_late_pickup")
        else:
            await env.sleep(timedelta(days=1))
        await handle.signal(HandwrittenRefill.refill_picked_up, PickedUp(await env.get_current_time()))
    await handle.result()
    return [handle.id]


async def histories(env: WorkflowEnvironment, *, search_by_step: bool, customers: int = 1) -> list[WorkflowHistory]:
    """Each simulated customer's history (one run each: a year is far below the continue-as-new threshold)."""
    out = []
    async with handwritten_worker(env.client) as queue:
        for index in range(customers):
            for workflow_id in await pharmacy_year(
                env, queue, f"hw-{uuid.uuid4().hex[:6]}-{index}", search_by_step=search_by_step
            ):
                out.append(await env.client.get_workflow_handle(workflow_id).fetch_history())
    return out
