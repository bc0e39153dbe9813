"""What the API's routes need, built once per app: tests pass their own (a dev server's client, a temp database)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine
from temporalio.converter import PayloadCodec

from starter.api.bookkeeping import Bookkeeping
from starter.client import JourneyClient


@dataclass
class ApiServices:
    journeys: JourneyClient
    engine: Engine
    codec: PayloadCodec | None = None
    """The payload codec the codec server applies; None when no key is configured."""
    bookkeeping: Bookkeeping = field(init=False)
    """The per-message database work, batched across requests: built from ``engine``."""

    def __post_init__(self) -> None:
        self.bookkeeping = Bookkeeping(self.engine)


def get_services(request: Request) -> ApiServices:
    """The FastAPI dependency for routes (set on ``app.state`` by :func:`starter.api.app.create_app`)."""
    found: ApiServices = request.app.state.services
    return found
