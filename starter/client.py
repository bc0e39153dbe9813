"""The Python client backends use to send events to journeys.

An event reaches every journey whose map names its type (trigger, ``wait_for``, ``exit_on``, goal) and no
other. A trigger starts the customer's journey with signal-with-start (or signals the running one); other
events signal the journey only if the customer is in it. The event's own id makes a retried event harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts import search_attributes as sa
from contracts.events import JourneyEvent
from contracts.ids import TASK_QUEUE, journey_workflow_id
from journeymap import JourneyMap
from runtime.settings import Settings
from starter.catalog import load_catalog
from workflows.journey import JourneyWorkflow
from workflows.models import DeliveryRouting, JourneyInput

Action = Literal["started_or_signalled", "signalled", "not_in_journey", "missing_instance_key"]


@dataclass(frozen=True)
class Routed:
    """Where one event went."""

    journey: str
    workflow_id: str | None
    action: Action


class JourneyClient:
    """Routes events to journeys. Build it once (it holds the catalog) and share it."""

    def __init__(
        self,
        client: Client,
        catalog: dict[str, JourneyMap],
        *,
        task_queue: str = TASK_QUEUE,
        continue_as_new_after_events: int | None = None,
        delivery: DeliveryRouting | None = None,
    ) -> None:
        self._client = client
        self._catalog = catalog
        # Routing is a dictionary look-up per event, not a walk over every map's steps.
        self._by_event_type: dict[str, list[JourneyMap]] = {}
        for journey in catalog.values():
            for event_type in journey.event_types():
                self._by_event_type.setdefault(event_type, []).append(journey)
        self._task_queue = task_queue
        self._continue_as_new_after = continue_as_new_after_events
        self._delivery = delivery

    @classmethod
    def from_settings(
        cls, client: Client, settings: Settings, catalog: dict[str, JourneyMap] | None = None
    ) -> JourneyClient:
        """The client a deployment uses: its task queue, its delivery queues, its journeys folder."""
        return cls(
            client,
            catalog if catalog is not None else load_catalog(settings.journeys_dir),
            task_queue=settings.task_queue,
            delivery=delivery_routing(settings),
        )

    @property
    def catalog(self) -> dict[str, JourneyMap]:
        return self._catalog

    @property
    def temporal(self) -> Client:
        return self._client

    def journeys_for(self, event_type: str) -> list[JourneyMap]:
        """The maps that name ``event_type``, in catalog order (the catalog is fixed when the client is built)."""
        return list(self._by_event_type.get(event_type, ()))

    async def send_event(self, customer_id: str, event: JourneyEvent) -> list[Routed]:
        """Deliver ``event`` of ``customer_id`` to every journey that names its type."""
        routed: list[Routed] = []
        for journey in self.journeys_for(event.type):
            routed += await self.route(journey, customer_id, event)
        return routed

    async def route(self, journey: JourneyMap, customer_id: str, event: JourneyEvent) -> list[Routed]:
        """Deliver ``event`` to the customer's journey (or journeys) on this one map."""
        key_name = journey.entry.key
        instance_key = event.properties.get(key_name) if key_name else None
        if key_name and instance_key is None:
            if event.type in journey.entry.events:
                return [Routed(journey.name, None, "missing_instance_key")]
            # An event about the customer, not one instance (account closed): every running instance gets it.
            return await self._signal_all_instances(journey, customer_id, event)
        key = str(instance_key) if instance_key is not None else None
        workflow_id = journey_workflow_id(journey.name, customer_id, key)
        if event.type in journey.entry.events:
            await self._client.start_workflow(
                JourneyWorkflow.run,
                JourneyInput(
                    journey=journey,
                    customer_id=customer_id,
                    instance_key=key,
                    continue_as_new_after_events=self._continue_as_new_after,
                    delivery=self._delivery,
                ),
                id=workflow_id,
                task_queue=self._task_queue,
                start_signal="event",
                start_signal_args=[event],
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CUSTOMER_ID, customer_id),
                        SearchAttributePair(sa.JOURNEY_NAME, journey.name),
                        SearchAttributePair(sa.STATUS, "entering"),
                    ]
                ),
                static_summary=f"{journey.name} v{journey.version} for customer {customer_id}",
                static_details=journey.description or None,
            )
            return [Routed(journey.name, workflow_id, "started_or_signalled")]
        return [await self._signal(journey.name, workflow_id, event)]

    async def _signal(self, journey: str, workflow_id: str, event: JourneyEvent) -> Routed:
        try:
            await self._client.get_workflow_handle(workflow_id).signal("event", event)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return Routed(journey, workflow_id, "not_in_journey")
            raise
        return Routed(journey, workflow_id, "signalled")

    async def _signal_all_instances(self, journey: JourneyMap, customer_id: str, event: JourneyEvent) -> list[Routed]:
        query = (
            f"{sa.CUSTOMER_ID.name} = '{_quote(customer_id)}' AND {sa.JOURNEY_NAME.name} = '{journey.name}'"
            " AND ExecutionStatus = 'Running'"
        )
        routed = [
            await self._signal(journey.name, execution.id, event)
            async for execution in self._client.list_workflows(query)
        ]
        return routed or [Routed(journey.name, None, "not_in_journey")]


def delivery_routing(settings: Settings) -> DeliveryRouting | None:
    """Where journeys started with these settings send from (None: their own task queue)."""
    if not settings.delivery_task_queue:
        return None
    return DeliveryRouting(
        task_queue=settings.delivery_task_queue, rate_limited_channels=sorted(settings.delivery_rates())
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
