"""Broadcasts over HTTP (issue 15): the definitions, an occurrence's progress, and start, pause, resume, cancel.

The same operations as ``journeys broadcast`` (``starter.broadcasts``), under ``/v1/`` so the API key guards
them. An unknown broadcast or occurrence is a 400 naming it; acting on a closed occurrence is a 400 saying it is
closed. The definitions are read from ``JOURNEYS_JOURNEYS_DIR/broadcasts`` at the first request that needs them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from audiences.broadcasts import Broadcast
from contracts.broadcasts import BroadcastProgress
from runtime.settings import Settings
from starter.api.models import ErrorResponse
from starter.api.services import ApiServices
from starter.broadcasts import control, find_occurrence, load_all, named, occurrences, progress_of, start_occurrence

Name = Annotated[str, Path(min_length=1, max_length=64)]


class BroadcastDefinition(BaseModel):
    name: str
    description: str
    journey: str
    segment: str
    when: str
    """In words: ``every year on September 1 at 10:00 in each customer's time zone``."""


class BroadcastList(BaseModel):
    broadcasts: list[BroadcastDefinition]


class OccurrenceStatus(BaseModel):
    occurrence: str
    status: str
    """Temporal's: running, completed, canceled, terminated, failed ..."""
    started_at: datetime | None = None
    progress: BroadcastProgress | None = None


class OccurrenceList(BaseModel):
    occurrences: list[OccurrenceStatus]


class StartRequest(BaseModel):
    occurrence: str | None = None
    """A label for this occurrence (default: the time now); a label already used is refused."""


def broadcasts_router(services: Callable[..., Awaitable[ApiServices]], settings: Settings) -> APIRouter:
    router = APIRouter(
        tags=["broadcasts"],
        responses={
            400: {"model": ErrorResponse, "description": "an unknown broadcast or occurrence, or a closed occurrence"}
        },
    )
    Services = Annotated[ApiServices, Depends(services)]
    loaded: dict[str, dict[str, Broadcast]] = {}

    def definitions() -> dict[str, Broadcast]:
        if "all" not in loaded:
            loaded["all"] = load_all(settings)
        return loaded["all"]

    @router.get("/v1/broadcasts", response_model=BroadcastList)
    async def list_broadcasts(services: Services) -> BroadcastList:
        """Every broadcast defined: which map, to which segment, when."""
        return BroadcastList(
            broadcasts=[
                BroadcastDefinition(
                    name=b.name,
                    description=b.description,
                    journey=b.journey,
                    segment=b.segment,
                    when=b.when.describe(),
                )
                for _, b in sorted(definitions().items())
            ]
        )

    @router.get("/v1/broadcasts/{name}/occurrences", response_model=OccurrenceList)
    async def list_occurrences(services: Services, name: Name) -> OccurrenceList:
        """The broadcast's occurrences, newest first, with the progress each recorded."""
        named(definitions(), name)
        found = await occurrences(services.journeys.temporal, name)
        return OccurrenceList(
            occurrences=[
                OccurrenceStatus(
                    occurrence=o.workflow_id, status=o.status, started_at=o.started_at, progress=o.progress
                )
                for o in found
            ]
        )

    @router.post("/v1/broadcasts/{name}/start", response_model=OccurrenceStatus, status_code=202)
    async def start(services: Services, name: Name, request: StartRequest | None = None) -> OccurrenceStatus:
        """Send the broadcast now: one occurrence, which fans out to the segment's members."""
        broadcast = named(definitions(), name)
        handle = await start_occurrence(
            services.journeys.temporal, settings, broadcast, request.occurrence if request else None
        )
        return OccurrenceStatus(occurrence=handle.id, status="running")

    @router.get("/v1/broadcasts/{name}/status", response_model=OccurrenceStatus)
    async def status(
        services: Services, name: Name, occurrence: Annotated[str | None, Query(max_length=200)] = None
    ) -> OccurrenceStatus:
        """An occurrence's progress (the newest running one unless ``occurrence`` names one)."""
        named(definitions(), name)
        handle = await find_occurrence(services.journeys.temporal, name, occurrence)
        state, progress = await progress_of(handle)
        return OccurrenceStatus(occurrence=handle.id, status=state, progress=progress)

    @router.post("/v1/broadcasts/{name}/{action}", response_model=OccurrenceStatus)
    async def act(
        services: Services,
        name: Name,
        action: Literal["pause", "resume", "cancel"],
        occurrence: Annotated[str | None, Query(max_length=200)] = None,
    ) -> OccurrenceStatus:
        """Pause (between pages), resume or cancel an occurrence (the newest running one by default)."""
        named(definitions(), name)
        handle = await find_occurrence(services.journeys.temporal, name, occurrence)
        await control(handle, action)
        state, progress = await progress_of(handle)
        return OccurrenceStatus(occurrence=handle.id, status=state, progress=progress)

    return router
