"""A journey system in a test: maps, a SQLite database, a worker on its own task queue, the client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from journeymap import JourneyMap
from runtime.settings import Settings
from starter.catalog import load_catalog
from starter.client import JourneyClient, Routed
from storage import Customer, Delivery, make_engine
from workers.worker import journey_worker
from workflows.ids import journey_workflow_id
from workflows.models import JourneyEvent, JourneySnapshot

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Journeys:
    client: Client
    journeys: JourneyClient
    engine: Engine
    catalog: dict[str, JourneyMap]

    async def send(self, customer_id: str, type: str, event_id: str | None = None, **properties: Any) -> list[Routed]:
        event = JourneyEvent(id=event_id or uuid.uuid4().hex, type=type, properties=properties)
        return await self.journeys.send_event(customer_id, event)

    def handle(self, journey: str, customer_id: str, instance_key: str | None = None) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(journey_workflow_id(journey, customer_id, instance_key))

    async def state(self, journey: str, customer_id: str, instance_key: str | None = None) -> JourneySnapshot:
        return await self.handle(journey, customer_id, instance_key).query("state", result_type=JourneySnapshot)

    async def settled(
        self,
        journey: str,
        customer_id: str,
        instance_key: str | None = None,
        *,
        until: Callable[[JourneySnapshot], bool] | None = None,
    ) -> JourneySnapshot:
        """The journey's state once it rests (waiting, or ended) and ``until`` holds; fails after 15 s."""
        done = until or (lambda s: s.status not in ("entering", "active"))
        deadline = asyncio.get_running_loop().time() + 15
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

    def add_customer(self, customer_id: str, **traits: Any) -> None:
        with Session(self.engine) as session:
            session.add(Customer(id=customer_id, traits=traits))
            session.commit()

    def outbox(self, customer_id: str | None = None) -> list[Delivery]:
        with Session(self.engine) as session:
            query = select(Delivery).order_by(Delivery.id)  # type: ignore[arg-type]
            if customer_id is not None:
                query = query.where(Delivery.customer_id == customer_id)
            return list(session.exec(query))


@asynccontextmanager
async def running_journeys(
    client: Client, tmp_path: Path, task_queue: str, journeys_dir: Path = ROOT / "journeys"
) -> AsyncIterator[Journeys]:
    settings = Settings(data_dir=tmp_path, journeys_dir=journeys_dir, task_queue=task_queue)
    engine = make_engine(settings.database)
    catalog = load_catalog(journeys_dir)
    async with journey_worker(client, settings, engine):
        yield Journeys(client, JourneyClient(client, catalog, task_queue=task_queue), engine, catalog)
    engine.dispose()
