"""Our own tests' harness: a journey system on a test session's server, a worker on its own task queue.

Older than :class:`starter.testing.JourneyEnvironment` (the public API, re-exported by ``testkit``), and built
on the same waits: the workflow's ``rested`` update, and a run's history streamed by the server; nothing here
polls the wall clock. Unlike the environment it takes any client (the dev server's too), and its ``send``
does not wait, so a test can send a burst of events before the journey handles them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneyResult, JourneySnapshot
from journeymap import JourneyMap
from runtime.settings import DeliverySettings, Settings
from starter.catalog import load_catalog
from starter.client import JourneyClient, Routed
from starter.testing import journey_system, ledger, next_run, rested
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

        Each journey first comes to rest (the ``rested`` update). The time-skipping test server holds a
        time-skipping lock for every activity and workflow task in flight and releases it when the worker
        reports back; when the workflow was terminated meanwhile it refuses that report ("Completed workflow"),
        so the lock is never released and time stops skipping for every later test on the server
        (temporalio/sdk-java#1138). A journey a test did not watch, the order_updates one an order starts, was
        still sending then on PostgreSQL, where a send takes longer.
        """
        for workflow_id in self.started:
            await rested(self.client, workflow_id)
        for workflow_id in self.started:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id).terminate("test finished")

    def handle(
        self, journey: str, customer_id: str, instance_key: str | None = None
    ) -> WorkflowHandle[JourneyWorkflow, JourneyResult]:
        workflow_id = journey_workflow_id(journey, customer_id, instance_key)
        return self.client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id)

    async def state(self, journey: str, customer_id: str, instance_key: str | None = None) -> JourneySnapshot:
        """The journey's state once it rests: :meth:`settled` without a condition."""
        return await self.settled(journey, customer_id, instance_key)

    async def settled(
        self,
        journey: str,
        customer_id: str,
        instance_key: str | None = None,
        *,
        until: Callable[[JourneySnapshot], bool] | None = None,
    ) -> JourneySnapshot:
        """The journey's state once it rests (waits for an event or a timer, or has ended), where ``until``
        must hold.

        Asked with the workflow's ``rested`` update, which answers once the journey has handled every event sent
        before it: no polling. A journey at rest changes only when an event comes or time is skipped, so an
        ``until`` that does not hold then never will: that fails at once, naming the state.
        """
        state = await rested(self.client, journey_workflow_id(journey, customer_id, instance_key))
        if state is None:
            raise AssertionError(f"{customer_id} never entered {journey}")
        if until is not None and not until(state):
            raise AssertionError(f"journey {journey} of {customer_id} rests, but not as expected: {state}")
        return state

    async def continued_as_new(self, journey: str, customer_id: str, instance_key: str | None, *, from_run: str) -> str:
        """The run that continued ``from_run``: read from that run's history, which the server streams as it grows.

        Not the ``state`` query nor the ``rested`` update: on the time-skipping test server either one arriving
        while the continuing workflow task is in flight goes to the closed run, is never answered, and leaves a
        time-skipping lock held, so time stops skipping for every later test on the server.
        """
        return await next_run(self.client, journey_workflow_id(journey, customer_id, instance_key), from_run)

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
