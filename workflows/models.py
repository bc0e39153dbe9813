"""The journey workflow's input and state: plain data, so a run can continue-as-new at any wait.

Fields only ever get added with defaults: recorded histories must still deserialize.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_serializer

from contracts.events import JourneyEvent
from contracts.journey import Fault, SendRecord, Status
from journeymap.models import JourneyMap

SEEN_EVENT_IDS = 2000
"""How many event ids a journey remembers to drop a retried event (and carries across continue-as-new)."""


class JourneyState(BaseModel):
    """Everything the interpreter knows; carried whole across continue-as-new."""

    status: Status = "entering"
    entry_id: str = ""
    """The id of the event that started this entry: part of every idempotency key."""
    entered_at: datetime | None = None
    step: str | None = None
    visits: dict[str, int] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] = Field(default_factory=dict)
    event: dict[str, Any] = Field(default_factory=dict)
    last_event_type: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    segments: list[str] = Field(default_factory=list)
    """The segments the customer was in when the profile was last read (``segments`` in expressions)."""
    scores: dict[str, Any] = Field(default_factory=dict)
    """The computed traits when the profile was last read (``scores`` in expressions): lead scores, RFM."""
    profile_stale: bool = False
    """Set when time has passed since the profile was read: a step that reads it reloads it first."""
    wait_until: datetime | None = None
    """Deadline of the current wait or wait_for, fixed when the step began (survives continue-as-new)."""
    waiting_for: list[str] = Field(default_factory=list)
    inbox: list[JourneyEvent] = Field(default_factory=list)
    """Events received and not yet handled, in arrival order."""
    seen_event_ids: list[str] = Field(default_factory=list)
    exit_event: str | None = None
    """Type of the exit_on event that ends the journey at its next step boundary."""
    goal_reached_at: datetime | None = None
    split_variants: dict[str, str] = Field(default_factory=dict)
    sends: list[SendRecord] = Field(default_factory=list)
    end_reason: str | None = None
    ended_at: datetime | None = None
    ended_status: Status | None = None
    """How the entry ended, kept while the re-entry cooldown runs (its status is ``cooldown`` meanwhile)."""
    runs: int = 1
    """Runs of this entry so far (continue-as-new count + 1)."""
    fault: Fault | None = None
    """The latest fault: a step that could not evaluate an expression or a template (open while faulted)."""
    lean: bool | None = None
    """For a chain started before issue 18's cheaper paths: whether it takes them, once a run has asked
    (:meth:`JourneyWorkflow.lean`); kept across continue-as-new."""
    time_zone_read_at: datetime | None = None
    """When the profile's time zone was last read, by a load or by a send that reported it."""
    flagged_faulted: bool = False
    """``JourneyStatus`` says ``faulted`` (set while faulted even when the step is not searchable)."""


class DeliveryRouting(BaseModel):
    """Where sends run when delivery has task queues of its own (``JOURNEYS_DELIVERY_TASK_QUEUE``)."""

    task_queue: str
    rate_limited_channels: list[str] = Field(default_factory=list)
    """Channels with a rate-limited queue ``<task_queue>-<channel>``: their sends go there, one per channel."""


class JourneyInput(BaseModel):
    """Start (or continue) one customer's journey. Events arrive as signals, the trigger included."""

    journey: JourneyMap
    """The map, pinned at entry: later edits do not change this run. Written without its defaults and its
    description (the start's static details carry it): it is in the history of every start and
    continue-as-new."""
    customer_id: str = Field(min_length=1, max_length=200)
    instance_key: str | None = None
    state: JourneyState | None = None
    """Set on continue-as-new."""
    delivery: DeliveryRouting | None = None
    """None: sends run on the journey's own task queue."""
    search_by_step: bool | None = None
    """Upsert ``JourneyStep``, ``JourneyStatus`` and ``JourneyWaitUntil`` at every rest (``JOURNEYS_SEARCH_BY_STEP``),
    an action each; False: only ``JourneyStatus = 'faulted'`` while faulted. None: started before the setting."""
    continue_as_new_after_events: int | None = Field(default=None, ge=20)
    """History length at which to continue-as-new at the next wait (tests use a small one); Temporal's
    suggestion is always followed too."""

    @field_serializer("journey")
    def _compact_map(self, journey: JourneyMap) -> dict[str, Any]:
        return journey.model_dump(mode="json", exclude_defaults=True, exclude={"description"})
