"""Our own tests' harness: a journey system on a test session's server, a worker on its own task queue.

Older than :class:`starter.testing.JourneyEnvironment` (the public API, re-exported by ``testkit``), which
waits with the workflow's ``rested`` update instead of polling; new tests use that.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneyResult, JourneySnapshot
from journeymap import JourneyMap
from runtime.settings import DeliverySettings, Settings
from starter.catalog import load_catalog
from starter.client import JourneyClient, Routed
from starter.testing import journey_system, ledger
from storage import Customer, Delivery
from workflows.journey import JourneyWorkflow

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Journeys:
    client: Client
    journeys: JourneyClient
    engine: Engine
    catalog: dict[str, JourneyMap]

    started: set[str] = field(default_factory=set)

    async def send(self, customer_id: str, type: str, event_id: str | None = None, **properties: Any) -> list[Routed]:
        event = JourneyEvent(id=event_id or uuid.uuid4().hex, type=type, properties=properties)
        routed = await self.journeys.send_event(customer_id, event)
        self.started |= {r.workflow_id for r in routed if r.workflow_id and r.action == "started_or_signalled"}
        return routed

    async def terminate_all(self) -> None:
        """End what the test left running, so the next test (same server) starts clean.

        Each journey first finishes what it is doing. The time-skipping test server holds a time-skipping lock
        for every activity and workflow task in flight and releases it when the worker reports back; when the
        workflow was terminated meanwhile it refuses that report ("Completed workflow"), so the lock is never
        released and time stops skipping for every later test on the server (temporalio/sdk-java#1138). A
        journey a test did not watch, the order_updates one an order starts, was still sending then on
        PostgreSQL, where a send takes longer.
        """
        for workflow_id in self.started:
            await self._at_rest(workflow_id)
        for workflow_id in self.started:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id).terminate("test finished")

    async def _at_rest(self, workflow_id: str, timeout: float = 30) -> None:
        """Until the workflow runs nothing (closed, or waiting with no activity pending); at most ``timeout`` s.

        The query is answered only after any workflow task in flight, so an activity that task schedules shows
        in the ``describe`` after it, and a journey waiting with no activity pending has nothing in flight.
        """
        handle = self.client.get_workflow_handle(workflow_id)
        request = DescribeWorkflowExecutionRequest(
            namespace=self.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                state: JourneySnapshot = await handle.query("state", result_type=JourneySnapshot)
                # Raw: describe() cannot parse the datetime search attributes the time-skipping server returns.
                described = await self.client.workflow_service.describe_workflow_execution(request)
            except (RPCError, WorkflowQueryFailedError):
                return
            info = described.workflow_execution_info
            if info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
                return
            if state.status not in ("entering", "active") and not described.pending_activities:
                return
            await asyncio.sleep(0.05)

    def handle(
        self, journey: str, customer_id: str, instance_key: str | None = None
    ) -> WorkflowHandle[JourneyWorkflow, JourneyResult]:
        workflow_id = journey_workflow_id(journey, customer_id, instance_key)
        return self.client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id)

    async def state(self, journey: str, customer_id: str, instance_key: str | None = None) -> JourneySnapshot:
        state: JourneySnapshot = await self.handle(journey, customer_id, instance_key).query(
            "state", result_type=JourneySnapshot
        )
        return state

    async def settled(
        self,
        journey: str,
        customer_id: str,
        instance_key: str | None = None,
        *,
        until: Callable[[JourneySnapshot], bool] | None = None,
    ) -> JourneySnapshot:
        """The journey's state once it rests (waiting, or ended) and ``until`` holds; fails after 30 s."""

        def done(state: JourneySnapshot) -> bool:
            return state.status not in ("entering", "active") and (until is None or until(state))

        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                state = await self.state(journey, customer_id, instance_key)
                if done(state):
                    return state
            except RPCError:
                state = None
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"journey {journey} of {customer_id} did not settle; last state: {state}")
            await asyncio.sleep(0.05)

    async def continued_as_new(self, journey: str, customer_id: str, instance_key: str | None, *, from_run: str) -> str:
        """The run that continued ``from_run``, once there is one; fails after 30 s.

        Watched with describe, not the ``state`` query: on the time-skipping test server a query that arrives
        while the continuing workflow task is in flight goes to the closed run, is never answered, and leaves a
        time-skipping lock held, so time stops skipping for every later test on the server.
        """
        handle = self.handle(journey, customer_id, instance_key)
        deadline = asyncio.get_running_loop().time() + 30
        while (run_id := (await handle.describe()).run_id) == from_run:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"journey {journey} of {customer_id} did not continue as new")
            await asyncio.sleep(0.05)
        assert run_id is not None
        return run_id

    def add_customer(self, customer_id: str, /, **traits: Any) -> None:
        """A customer reachable on every channel: an address for each, unless ``traits`` gives its own.

        The method takes no keyword of its own, so a shared dict of traits (``**CONTACT``) can be spread into
        it without a type checker fearing that a key lands on a flag.
        """
        addresses = {"email": f"{customer_id}@example.com", "phone": "+15555550100", "push_token": "tok"}
        self.add_profile(customer_id, **{**addresses, **traits})

    def add_profile(self, customer_id: str, /, **traits: Any) -> None:
        """A customer whose profile holds exactly ``traits``: no address unless given, for reachability tests."""
        with Session(self.engine) as session:
            session.add(Customer(id=customer_id, traits=traits))
            session.commit()

    def profile(self, customer_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            customer = session.get(Customer, customer_id)
            return dict(customer.traits) if customer else {}

    def outbox(self, customer_id: str | None = None, *, status: str | None = "sent") -> list[Delivery]:
        """Ledger rows (sent ones unless told otherwise), oldest first."""
        return ledger(self.engine, customer_id, status=status)


def write_journeys(tmp_path: Path, maps: dict[str, str], templates: dict[str, str]) -> Path:
    """A journeys folder under ``tmp_path``: ``<name>.yaml`` per map, ``templates/<name>.yaml`` per template."""
    folder = tmp_path / "journeys"
    (folder / "templates").mkdir(parents=True)
    for name, text in maps.items():
        (folder / f"{name}.yaml").write_text(text)
    for name, text in templates.items():
        (folder / "templates" / f"{name}.yaml").write_text(text)
    return folder


@asynccontextmanager
async def running_journeys(
    client: Client,
    tmp_path: Path,
    task_queue: str,
    journeys_dir: Path = ROOT / "journeys",
    *,
    database_url: str,
    continue_as_new_after_events: int | None = None,
    delivery: DeliverySettings | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Journeys]:
    """``database_url`` is required: a test passes the ``database_url`` fixture, so it runs on SQLite and again
    on PostgreSQL (``scripts/test``); a tool outside the suite passes its own."""
    settings = Settings(
        data_dir=tmp_path,
        journeys_dir=journeys_dir,
        task_queue=task_queue,
        database_url=database_url,
        **(settings_overrides or {}),
    )
    if delivery is not None:
        settings.delivery = delivery
    catalog = load_catalog(journeys_dir)
    async with journey_system(
        client, settings, catalog=catalog, continue_as_new_after_events=continue_as_new_after_events
    ) as (journey_client, engine):
        journeys = Journeys(client, journey_client, engine, catalog)
        try:
            yield journeys
        finally:
            await journeys.terminate_all()
