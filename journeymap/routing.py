"""Which journeys an event reaches, and how: decided here once, for every path an event takes.

The client (``starter.client``) makes the Temporal calls a :class:`Target` names, the event API and the
command line go through it, the report (``analytics.collect``) finds the workflows the recorded triggers
started, and the benchmarks route as the client does. So a workflow id is never worked out twice.

A map reacts to the event types it names (trigger, ``wait_for``, ``exit_on``, goal) and to no other. For each
such map, in catalog order:

- ``start``: a trigger starts the customer's journey for its instance key, or reaches it if it runs
  (signal-with-start);
- ``signal``: any other event reaches the journey of its instance key, if the customer is in it;
- ``missing_instance_key``: a trigger of a keyed map without its key starts nothing;
- ``signal_every_instance``: any other event of a keyed map without its key is about the customer, not one
  instance (an account closed), and reaches every instance running.

Identity merges: a journey keeps the customer id it started under (its workflow id, its idempotency keys and its
delivery ledger rows all carry it, so moving it would risk a second send). When identify merged customer A into
B, B's events must still reach A's running journeys: the caller passes B's absorbed ids, and each target then
names the same instance under each of them too. Only merged customers have absorbed ids, so nobody else pays
for a signal that can find no journey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contracts.ids import journey_workflow_id
from journeymap.models import JourneyMap

Action = Literal["start", "signal", "signal_every_instance", "missing_instance_key"]


@dataclass(frozen=True)
class Target:
    """One journey an event reaches, and how."""

    journey: JourneyMap
    action: Action
    customer_ids: tuple[str, ...]
    """The customer first, then the ids merged into it: whose journeys may take the event."""
    instance_key: str | None = None
    workflow_ids: tuple[str, ...] = ()
    """For ``start`` and ``signal``: this instance's workflow under each of ``customer_ids``, in that order. A
    ``start`` goes to the first unless a journey under an absorbed id is running (it takes the trigger, as a
    running journey does: "once" and cooldowns hold across a merge)."""

    @property
    def workflow_id(self) -> str | None:
        """The workflow under the customer's own id, where a journey starts (None: no single instance)."""
        return self.workflow_ids[0] if self.workflow_ids else None


class Routes:
    """A catalog indexed by event type: routing an event is a dictionary look-up, not a walk over every map."""

    def __init__(self, catalog: Mapping[str, JourneyMap]) -> None:
        self._by_event_type: dict[str, list[JourneyMap]] = {}
        for journey in catalog.values():
            for event_type in sorted(journey.event_types()):
                self._by_event_type.setdefault(event_type, []).append(journey)
        self.entry_event_types: frozenset[str] = frozenset(
            event_type for journey in catalog.values() for event_type in journey.entry.events
        )
        """Every event type that triggers some journey."""

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type some map names."""
        return frozenset(self._by_event_type)

    def journeys_for(self, event_type: str) -> list[JourneyMap]:
        """The maps that name ``event_type``, in catalog order."""
        return list(self._by_event_type.get(event_type, ()))

    def targets(
        self,
        customer_id: str,
        event_type: str,
        properties: Mapping[str, Any],
        *,
        absorbed: Sequence[str] = (),
    ) -> list[Target]:
        """Where an event of ``customer_id`` goes: one target per map naming ``event_type``, in catalog order.

        ``absorbed``: the customer ids identify merged into ``customer_id``, whose running journeys hear its
        events too.
        """
        customers = (customer_id, *(a for a in dict.fromkeys(absorbed) if a != customer_id))
        return [_target(journey, customers, event_type, properties) for journey in self.journeys_for(event_type)]


def _target(journey: JourneyMap, customers: tuple[str, ...], event_type: str, properties: Mapping[str, Any]) -> Target:
    key_name = journey.entry.key
    trigger = event_type in journey.entry.events
    value = properties.get(key_name) if key_name else None
    if key_name and value is None:
        return Target(journey, "missing_instance_key" if trigger else "signal_every_instance", customers)
    key = str(value) if value is not None else None
    return Target(
        journey,
        "start" if trigger else "signal",
        customers,
        key,
        tuple(journey_workflow_id(journey.name, customer, key) for customer in customers),
    )
