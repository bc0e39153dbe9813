"""What the API's routes need, built once per app: tests pass their own (a dev server's client, a temp database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from temporalio.converter import PayloadCodec

from audiences.definitions import load_segments
from audiences.membership import Audiences
from audiences.scores import ScoreDefinition, load_scores, scores_beside
from runtime.connection import connect
from runtime.settings import Settings
from starter.api.bookkeeping import Bookkeeping
from starter.api.contract import EventContract
from starter.client import JourneyClient
from storage import make_engine
from storage.schema import check


@dataclass
class ApiServices:
    journeys: JourneyClient
    engine: Engine
    codec: PayloadCodec | None = None
    """The payload codec the codec server applies; None when no key is configured."""
    audiences: Audiences = field(default_factory=lambda: Audiences({}))
    """The deployment's segments: the events and identifies that may change them re-check them."""
    scores: dict[str, ScoreDefinition] = field(default_factory=dict)
    """The deployment's computed traits (``journeys/scores/``), for ``GET /v1/customers/{id}/scores``."""
    bookkeeping: Bookkeeping = field(init=False)
    """The per-message database work, batched across requests: built from ``engine``."""
    contract: EventContract = field(init=False)
    """The tracking plan's validators, built once from the journeys' plan."""

    def __post_init__(self) -> None:
        self.bookkeeping = Bookkeeping(self.engine, audiences=self.audiences)
        self.contract = EventContract(self.journeys.plan)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[ApiServices]:
    """The services of a deployed API, from ``JOURNEYS_*``: the catalog and the segments (raises
    ``MapValidationError`` naming every broken map or segment), the Temporal client (raises
    ``TemporalUnreachable``) and the database engine (raises ``SchemaBehind`` when the database needs
    ``journeys setup``)."""
    journeys = JourneyClient.from_settings(await connect(settings), settings)
    scores = load_scores(scores_beside(settings.segments_dir))
    audiences = Audiences(load_segments(settings.segments_dir, scores=scores))
    engine = make_engine(settings.database, create=False)
    try:
        check(engine)
        yield ApiServices(journeys, engine, journeys.temporal.data_converter.payload_codec, audiences, scores)
    finally:
        engine.dispose()


def get_services(request: Request) -> ApiServices:
    """The FastAPI dependency for routes."""
    return app_services(request.app)


def app_services(app: Starlette) -> ApiServices:
    """The app's services (set on ``app.state`` by :func:`starter.api.app.create_app`)."""
    found: ApiServices = app.state.services
    return found
