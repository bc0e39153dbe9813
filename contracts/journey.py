"""What a journey workflow answers the outside world: its ``state`` query and its result.

The CLI, the API, analytics and the tests read these; the workflow's own input and state stay in
:mod:`workflows.models`, since they carry the map.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["entering", "active", "waiting", "completed", "exited", "not_entered", "cooldown", "failed", "faulted"]
"""``faulted``: a step could not evaluate an expression or render a template, and the journey waits for an
operator (``journeys resume``) or a corrected event, as its map says (docs/events.md)."""
ENDED: frozenset[str] = frozenset({"completed", "exited", "not_entered", "failed"})


class SendRecord(BaseModel):
    step: str
    visit: int
    idempotency_key: str
    delivered: list[str] = Field(default_factory=list)
    """Channels that took the message."""
    outcome: str
    at: datetime


class Fault(BaseModel):
    """Why a step could not go on: an expression or a template could not be evaluated with the data it had."""

    step: str | None
    """The step; None at entry (the map's variables)."""
    where: str
    """The expression or template: ``next_cycle.set.supply_ends``, ``remind_refill.send.template``."""
    message: str
    at: datetime
    on_error: str
    """What the map said to do: ``operator``, ``corrected_event``, or the step it went to."""
    event_type: str | None = None
    """The type of ``event`` when it happened (a corrected event of this type retries the step)."""
    resolved: str | None = None
    """How it was resolved (``retried by an operator``, ``corrected event``, ``went to X``); None while open."""


class ResumeInput(BaseModel):
    """The ``resume`` update: what an operator decides for a faulted journey."""

    action: Literal["retry", "goto", "end"] = "retry"
    step: str | None = None
    """With ``goto``: the step to go to."""


class JourneyResult(BaseModel):
    status: Status
    end_reason: str | None = None
    goal_reached: bool = False
    sends: int = 0


class JourneySnapshot(BaseModel):
    """What the ``state`` query returns: where the journey is and what it waits for."""

    journey: str
    version: int
    customer_id: str
    status: Status
    step: str | None
    waiting_for: list[str]
    wait_until: datetime | None
    entered_at: datetime | None
    goal_reached_at: datetime | None
    split_variants: dict[str, str]
    sends: list[SendRecord]
    vars: dict[str, Any]
    end_reason: str | None
    visits: dict[str, int] = Field(default_factory=dict)
    """How often each step was entered in this entry (steps never entered are absent)."""
    fault: Fault | None = None
    """The latest fault of this entry (open while ``status`` is ``faulted``)."""
