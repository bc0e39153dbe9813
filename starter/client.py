"""The Python client backends use to send events to journeys.

Where an event goes is decided by :mod:`journeymap.routing` (trigger: signal-with-start; other events: a signal
to the journey if the customer is in it; no instance key: every running instance). This module makes those
Temporal calls. The event's own id makes a retried event harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.broadcasts import BroadcastStart
from contracts import search_attributes as sa
from contracts.events import JourneyEvent
from contracts.ids import TASK_QUEUE, journey_workflow_id
from journeymap import JourneyMap
from journeymap.events import TrackingPlan
from journeymap.routing import Routes, Target
from runtime.settings import Settings
from starter.catalog import load_catalog, load_plan
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
    """Sends events to journeys. Build it once (it holds the catalog and its routes) and share it.

    Which journeys an event reaches is decided by :class:`journeymap.routing.Routes`; this class only makes the
    Temporal calls that decision names.
    """

    def __init__(
        self,
        client: Client,
        catalog: dict[str, JourneyMap],
        *,
        task_queue: str = TASK_QUEUE,
        continue_as_new_after_events: int | None = None,
        delivery: DeliveryRouting | None = None,
        plan: TrackingPlan | None = None,
        search_by_step: bool | None = False,
    ) -> None:
        self._client = client
        self._catalog = catalog
        self.routes = Routes(catalog)
        self.plan = plan
        """The events' declarations (``starter.catalog.load_plan``) the event API enforces; None: none."""
        self._task_queue = task_queue
        self._continue_as_new_after = continue_as_new_after_events
        self._delivery = delivery
        self._search_by_step = search_by_step
        """``JOURNEYS_SEARCH_BY_STEP``; None starts journeys as a starter from before the setting did (its
        journeys ask the workflow's ``lean-journeys`` patch: tests of that path)."""

    @classmethod
    def from_settings(
        cls, client: Client, settings: Settings, catalog: dict[str, JourneyMap] | None = None
    ) -> JourneyClient:
        """The client a deployment uses: its task queue, its delivery queues, its journeys folder (maps and plan)."""
        if catalog is None:
            catalog = load_catalog(settings.journeys_dir)
        return cls(
            client,
            catalog,
            task_queue=settings.task_queue,
            delivery=delivery_routing(settings),
            plan=load_plan(settings.journeys_dir, catalog),
            search_by_step=settings.search_by_step,
        )

    @property
    def catalog(self) -> dict[str, JourneyMap]:
        return self._catalog

    @property
    def task_queue(self) -> str:
        return self._task_queue

    @property
    def temporal(self) -> Client:
        return self._client

    def journeys_for(self, event_type: str) -> list[JourneyMap]:
        """The maps that name ``event_type``, in catalog order (the catalog is fixed when the client is built)."""
        return self.routes.journeys_for(event_type)

    async def send_event(self, customer_id: str, event: JourneyEvent, *, absorbed: Sequence[str] = ()) -> list[Routed]:
        """Deliver ``event`` of ``customer_id`` to every journey that names its type.

        ``absorbed``: the customer ids identify merged into ``customer_id``; their running journeys hear the
        event too (``starter.api.identities.absorbed_ids``).
        """
        routed: list[Routed] = []
        for target in self.routes.targets(customer_id, event.type, event.properties, absorbed=absorbed):
            routed += await self.deliver(target, event)
        return routed

    async def deliver(self, target: Target, event: JourneyEvent) -> list[Routed]:
        """Make the Temporal calls ``target`` names (for a caller that handles some targets its own way)."""
        name = target.journey.name
        if target.action == "missing_instance_key":
            return [Routed(name, None, "missing_instance_key")]
        if target.action == "signal_every_instance":
            return await self._signal_all_instances(name, target.customer_ids, event)
        own, *elsewhere = target.workflow_ids
        # Under an absorbed id a journey is found by signalling it: a signal that finds none writes no history,
        # and a running one takes the event as it would under the customer's own id.
        reached = [r for r in [await self._signal(name, w, event) for w in elsewhere] if r.action == "signalled"]
        if target.action == "signal":
            mine = await self._signal(name, own, event)
            # "not_in_journey" only when no journey of this customer, under any of its ids, took the event.
            return [mine, *reached] if mine.action == "signalled" or not reached else reached
        if reached:
            return reached  # the customer's journey for this instance runs under an absorbed id: no second one
        await self._start(target, event)
        return [Routed(name, own, "started_or_signalled")]

    async def _start(self, target: Target, event: JourneyEvent) -> None:
        journey, customer_id = target.journey, target.customer_ids[0]
        await self._client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(
                journey=journey,
                customer_id=customer_id,
                instance_key=target.instance_key,
                continue_as_new_after_events=self._continue_as_new_after,
                delivery=self._delivery,
                search_by_step=self._search_by_step,
            ),
            id=target.workflow_ids[0],
            task_queue=self._task_queue,
            start_signal="event",
            start_signal_args=[event],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=entry_search_attributes(
                journey.name, customer_id, search_by_step=self._search_by_step is not False
            ),
            static_summary=entry_summary(journey, customer_id),
            static_details=journey.description or None,
        )

    async def start_broadcast(self, start: BroadcastStart) -> bool:
        """Start one broadcast member's journey (``activities.broadcasts``); False when it was already started.

        The id names the map, the customer and the occurrence (the instance key), and a closed journey's id is not
        reused (``REJECT_DUPLICATE``): a retried page or a fan-out resumed after a crash starts nobody twice. A
        running one takes the trigger as a signal and drops it (its id is seen). ``start.delay`` holds the first
        workflow task back until the customer's local send time.
        """
        journey = self._catalog.get(start.journey)
        if journey is None:
            raise ApplicationError(f"no map named {start.journey!r} on this worker", type="InputError")
        workflow_id = journey_workflow_id(journey.name, start.customer_id, start.occurrence)
        try:
            await self._client.start_workflow(
                JourneyWorkflow.run,
                JourneyInput(
                    journey=journey,
                    customer_id=start.customer_id,
                    instance_key=start.occurrence,
                    continue_as_new_after_events=self._continue_as_new_after,
                    delivery=self._delivery,
                    search_by_step=self._search_by_step,
                ),
                id=workflow_id,
                task_queue=self._task_queue,
                start_signal="event",
                start_signal_args=[start.event],
                start_delay=start.delay,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=entry_search_attributes(
                    journey.name, start.customer_id, search_by_step=self._search_by_step is not False
                ),
                static_summary=entry_summary(journey, start.customer_id),
                static_details=journey.description or None,
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    async def _signal(self, journey: str, workflow_id: str, event: JourneyEvent) -> Routed:
        try:
            await self._client.get_workflow_handle(workflow_id).signal("event", event)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return Routed(journey, workflow_id, "not_in_journey")
            raise
        return Routed(journey, workflow_id, "signalled")

    async def _signal_all_instances(
        self, journey: str, customer_ids: Sequence[str], event: JourneyEvent
    ) -> list[Routed]:
        """One visibility query finds the running instances under the customer's id and every absorbed one."""
        customers = ", ".join(f"'{_quote(c)}'" for c in customer_ids)
        whose = f"= {customers}" if len(customer_ids) == 1 else f"IN ({customers})"
        query = (
            f"{sa.CUSTOMER_ID.name} {whose} AND {sa.JOURNEY_NAME.name} = '{journey}' AND ExecutionStatus = 'Running'"
        )
        routed = [
            await self._signal(journey, execution.id, event) async for execution in self._client.list_workflows(query)
        ]
        return routed or [Routed(journey, None, "not_in_journey")]


def entry_search_attributes(journey: str, customer_id: str, *, search_by_step: bool) -> TypedSearchAttributes:
    """The search attributes a journey starts with: free, unlike an upsert. With ``search_by_step`` the workflow
    upserts the rest (step, status, wake-up) at every rest; without, ``JourneyStatus`` is set only while faulted,
    so it is not set here (an ``entering`` that nothing updates would mislead)."""
    pairs = [SearchAttributePair(sa.CUSTOMER_ID, customer_id), SearchAttributePair(sa.JOURNEY_NAME, journey)]
    if search_by_step:
        pairs.append(SearchAttributePair(sa.STATUS, "entering"))
    return TypedSearchAttributes(pairs)


def entry_summary(journey: JourneyMap, customer_id: str) -> str:
    """The static summary the Temporal UI shows for a journey."""
    return f"{journey.name} v{journey.version} for customer {customer_id}"


def delivery_routing(settings: Settings) -> DeliveryRouting | None:
    """Where journeys started with these settings send from (None: their own task queue)."""
    if not settings.delivery_task_queue:
        return None
    return DeliveryRouting(
        task_queue=settings.delivery_task_queue, rate_limited_channels=sorted(settings.delivery_rates())
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
