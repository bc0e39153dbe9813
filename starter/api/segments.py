"""Audiences over HTTP (issue 15): segment sizes, the segments one customer is in, and their scores.

The first two read the membership table the event path and the Schedule keep (``audiences.membership``), never
compute it: a read costs one indexed query whatever the audience's size. A customer's scores are computed at the
request (``audiences.scoring``, a few queries over that customer's events), explained event by event as
``journeys score`` does. Under ``/v1/``, so the API key guards them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from audiences.membership import segments_of, sizes
from audiences.scoring import LeadScoreExplained, Rfm, explain_customer
from starter.api.models import ErrorResponse
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


class ScoredEvent(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    points: float
    """Before decay: the sum of the points of every rule the event matches."""
    decayed: float
    """What is left of them now."""


class TraitPoints(BaseModel):
    trait: str
    rule: str
    points: float


class LeadScoreOut(BaseModel):
    name: str
    total: float
    events: list[ScoredEvent]
    traits: list[TraitPoints]
    """The trait rules the customer meets now."""


class CustomerValueOut(BaseModel):
    name: str
    group: str | None
    """The RFM group (docs/audiences.md); none without a purchase."""
    recency: int | None
    frequency: int | None
    monetary: int | None
    purchases: int
    value: float
    last_purchase: datetime | None


class CustomerScores(BaseModel):
    customer_id: str
    at: datetime
    lead_scores: list[LeadScoreOut]
    customer_values: list[CustomerValueOut]


def _scores_out(customer_id: str, at: datetime, found: list[LeadScoreExplained | Rfm]) -> CustomerScores:
    leads = [
        LeadScoreOut(
            name=item.name,
            total=round(item.total, 4),
            events=[
                ScoredEvent(
                    event_id=e.event_id,
                    type=e.type,
                    occurred_at=e.occurred_at.replace(tzinfo=e.occurred_at.tzinfo or UTC),
                    points=e.points,
                    decayed=round(e.decayed, 4),
                )
                for e in item.events
            ],
            traits=[TraitPoints(trait=t.trait, rule=t.rule, points=t.points) for t in item.traits],
        )
        for item in found
        if isinstance(item, LeadScoreExplained)
    ]
    values = [
        CustomerValueOut(
            name=item.name,
            group=item.group,
            recency=item.recency,
            frequency=item.frequency,
            monetary=item.monetary,
            purchases=item.purchases,
            value=round(item.money, 2),
            last_purchase=item.last_purchase.replace(tzinfo=item.last_purchase.tzinfo or UTC)
            if item.last_purchase
            else None,
        )
        for item in found
        if isinstance(item, Rfm)
    ]
    return CustomerScores(customer_id=customer_id, at=at, lead_scores=leads, customer_values=values)


def segments_router(services: Callable[..., Awaitable[ApiServices]]) -> APIRouter:
    """``GET /v1/segments``, ``GET /v1/customers/{customer_id}/segments`` and ``.../scores``; ``services`` is the
    app's dependency."""
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

    @router.get(
        "/v1/customers/{customer_id}/scores",
        response_model=CustomerScores,
        responses={404: {"model": ErrorResponse, "description": "no customer with this id: no profile and no event"}},
    )
    async def customer_scores(
        services: Services, customer_id: Annotated[str, Path(min_length=1, max_length=200)]
    ) -> CustomerScores:
        """The customer's lead scores (each event's points, before and after decay, and the trait rules met) and
        customer value (RFM scores and group), computed now. 404 for a customer with no profile and no event."""
        now = datetime.now(UTC)

        def read() -> list[LeadScoreExplained | Rfm]:
            with services.engine.connect() as connection:
                return explain_customer(connection, services.scores, customer_id, now)

        return _scores_out(customer_id, now, await asyncio.to_thread(read))

    return router
