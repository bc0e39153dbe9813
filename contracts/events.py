"""The event: what a backend tells journeys, the one shape the API, the client, the workflow and analytics share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from contracts.compact import Compact


class JourneyEvent(Compact):
    """Something a customer did or that happened to them, as a backend reports it."""

    id: str = Field(min_length=1, max_length=200)
    """The event's own id: the same id twice has effect once."""
    type: str = Field(min_length=1, max_length=128)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
