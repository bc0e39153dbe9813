"""What a journey workflow answers the outside world: its ``state`` query and its result.

The CLI, the API, analytics and the tests read these; the workflow's own input and state stay in
:mod:`workflows.models`, since they carry the map.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["entering", "active", "waiting", "completed", "exited", "not_entered", "cooldown", "failed"]
ENDED: frozenset[str] = frozenset({"completed", "exited", "not_entered", "failed"})


class SendRecord(BaseModel):
    step: str
    visit: int
    idempotency_key: str
    delivered: list[str] = Field(default_factory=list)
    """Channels that took the message."""
    outcome: str
    at: datetime


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
