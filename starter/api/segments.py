"""Audiences over HTTP (issue 15): segment sizes, and the segments one customer is in.

Both read the membership table the event path and the Schedule keep (``audiences.membership``), never compute
it: a read costs one indexed query whatever the audience's size. Under ``/v1/``, so the API key guards them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from audiences.membership import segments_of, sizes
from starter.api.services import ApiServices


class SegmentSize(BaseModel):
    name: str
    description: str
    size: int
    """Current members."""


class SegmentSizes(BaseModel):
    segments: list[SegmentSize]


class Membership(BaseModel):
    name: str
    entered_at: datetime


class CustomerSegments(BaseModel):
    customer_id: str
    segments: list[Membership]


def segments_router(services: Callable[..., Awaitable[ApiServices]]) -> APIRouter:
    """``GET /v1/segments`` and ``GET /v1/customers/{customer_id}/segments``; ``services`` is the app's dependency."""
    router = APIRouter(tags=["audiences"])
    Services = Annotated[ApiServices, Depends(services)]

    @router.get("/v1/segments", response_model=SegmentSizes)
    async def segment_sizes(services: Services) -> SegmentSizes:
        """Every segment defined, with its current size."""

        def read() -> dict[str, int]:
            with services.engine.connect() as connection:
                return sizes(connection)

        counts = await asyncio.to_thread(read)
        defined = services.audiences.segments
        return SegmentSizes(
            segments=[
                SegmentSize(name=name, description=defined[name].description, size=counts.get(name, 0))
                for name in sorted(defined)
            ]
        )

    @router.get("/v1/customers/{customer_id}/segments", response_model=CustomerSegments)
    async def customer_segments(
        services: Services, customer_id: Annotated[str, Path(min_length=1, max_length=200)]
    ) -> CustomerSegments:
        """The segments the customer is in now, with when they entered each."""

        def read() -> list[tuple[str, datetime]]:
            with services.engine.connect() as connection:
                return segments_of(connection, customer_id)

        found = await asyncio.to_thread(read)
        return CustomerSegments(
            customer_id=customer_id, segments=[Membership(name=name, entered_at=at) for name, at in found]
        )

    return router
