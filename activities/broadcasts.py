"""The broadcast's activities: one page of members read by key, filtered, and their journeys started.

A page is read in one statement: the members of the segment with an open stay and a customer id after the last
one done (``ORDER BY customer_id LIMIT n`` on the open-stay index, never ``OFFSET``, so page 10,000 costs what
page 1 does), with, for each, whether their latest word allows the message's category on one of the channels and
how many promotional messages they were sent in the cap's window. Members who left the segment before their turn
are not on the page; those without consent or at their cap are counted as skipped and not sent.

Each remaining member's journey starts through ``start`` (``starter.client.JourneyClient.start_broadcast``,
given by whoever builds the worker) under the id ``journey/<map>/<customer>/<digest of the occurrence>``: a
retried page finds it started and starts nobody twice. "At 10:00 in each customer's own time zone" is a start
delay: the journey's first task waits for the customer's local 10:00 on the occurrence's date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Boolean, false, func, or_, select, true
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from temporalio import activity
from temporalio.exceptions import ApplicationError

from audiences.conditions.base import Query, kind_of
from audiences.conditions.consent import ConsentCondition
from audiences.jsonsql import json_text
from audiences.membership import MEMBERSHIP
from contracts.broadcasts import (
    OCCURRENCE_PROPERTY,
    BroadcastPageInput,
    BroadcastPageResult,
    SegmentSizeInput,
    broadcast_event_type,
)
from contracts.events import JourneyEvent
from journeymap.timing import customer_zone
from runtime.settings import DeliverySettings
from storage.tables import Customer, Delivery

CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
CONCURRENCY = 32
"""Journey starts in flight at once within a page (the rate limit itself is the workflow's)."""


@dataclass(frozen=True)
class BroadcastStart:
    """One member's journey to start: the map, the customer, the trigger, the occurrence, when."""

    journey: str
    customer_id: str
    event: JourneyEvent
    occurrence: str
    delay: timedelta | None


StartJourney = Callable[[BroadcastStart], Awaitable[bool]]
"""Start one member's journey; True if it started, False if it was already there (a retried page)."""


class BroadcastActivities:
    def __init__(
        self, engine: Engine, delivery: DeliverySettings, start: StartJourney | None, *, concurrency: int = CONCURRENCY
    ) -> None:
        self._concurrency = concurrency
        self._engine = engine
        self._delivery = delivery
        self._start = start

    @activity.defn(name="segment_size")
    async def segment_size(self, input: SegmentSizeInput) -> int:
        return await asyncio.to_thread(self._size, input.segment)

    def _size(self, segment: str) -> int:
        with self._engine.connect() as connection:
            query = select(func.count()).where(MEMBERSHIP.c.segment == segment, MEMBERSHIP.c.exited_at.is_(None))
            return int(connection.execute(query).scalar_one())

    @activity.defn(name="start_broadcast_page")
    async def start_broadcast_page(self, input: BroadcastPageInput) -> BroadcastPageResult:
        if self._start is None:
            raise ApplicationError("this worker cannot start journeys (no client given)", type="InputError")
        rows, upto = await asyncio.to_thread(self._page, input)
        skipped: dict[str, int] = {}
        chosen: list[tuple[str, str | None]] = []
        for customer_id, zone, allowed, capped in rows:
            reason = "consent" if not allowed else "capped" if capped else None
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                chosen.append((customer_id, zone))
        gate = asyncio.Semaphore(self._concurrency)
        start = self._start

        async def one(customer_id: str, zone: str | None) -> None:
            async with gate:
                await start(_start_of(input, customer_id, zone))

        pending = [asyncio.ensure_future(one(customer_id, zone)) for customer_id, zone in chosen]
        try:
            while pending:
                activity.heartbeat(input.after)
                done, _ = await asyncio.wait(pending, timeout=5.0)
                for task in done:
                    task.result()  # a start that failed fails the page: the retry starts nobody twice
                pending = [task for task in pending if not task.done()]
        finally:
            for task in pending:
                task.cancel()
        return BroadcastPageResult(upto=upto, started=len(chosen), skipped=skipped)

    def _page(self, input: BroadcastPageInput) -> tuple[list[tuple[str, str | None, bool, bool]], str | None]:
        """Blocking: the page's members by key, with their zone, consent and cap (one statement)."""
        query = Query(customer=CUSTOMER, now=input.now)
        statement = (
            select(
                MEMBERSHIP.c.customer_id,
                json_text(CUSTOMER.c.traits, "timezone"),
                self._consents(input, query),
                self._capped(input),
            )
            .select_from(MEMBERSHIP.join(CUSTOMER, CUSTOMER.c.id == MEMBERSHIP.c.customer_id))
            .where(MEMBERSHIP.c.segment == input.segment, MEMBERSHIP.c.exited_at.is_(None))
            .order_by(MEMBERSHIP.c.customer_id)
            .limit(input.page_size)
        )
        if input.after is not None:
            statement = statement.where(MEMBERSHIP.c.customer_id > input.after)
        with self._engine.connect() as connection:
            rows = [(str(c), z, bool(a), bool(k)) for c, z, a, k in connection.execute(statement)]
        upto = rows[-1][0] if len(rows) == input.page_size else None
        return rows, upto

    def _consents(self, input: BroadcastPageInput, query: Query) -> ColumnElement[bool]:
        """The latest word allows the category on one of the channels (as a send reads it)."""
        if input.category == "transactional" or not input.channels:
            return true()
        unset = not self._delivery.promotional_requires_opt_in
        each = [
            kind_of(condition).sql(condition, query)
            for condition in (
                ConsentCondition.model_validate(
                    {"consent": {"channel": channel, "category": input.category, "unset": unset}}
                )
                for channel in input.channels
            )
        ]
        return or_(false(), *each)

    def _capped(self, input: BroadcastPageInput) -> ColumnElement[Any]:
        """At the promotional cap already: the next promotional message would be refused."""
        cap = self._delivery.promotional_cap
        if input.category != "promotional" or cap <= 0:
            return false()
        since = input.now - timedelta(days=self._delivery.promotional_cap_days)
        stamp = func.coalesce(DELIVERY.c.sent_at, DELIVERY.c.created_at)
        sent = (
            select(func.count())
            .where(
                DELIVERY.c.customer_id == MEMBERSHIP.c.customer_id,
                DELIVERY.c.category == "promotional",
                DELIVERY.c.status.in_(("pending", "sent")),
                stamp >= since,
            )
            .scalar_subquery()
        )
        return func.coalesce(sent >= cap, false(), type_=Boolean)


def _start_of(input: BroadcastPageInput, customer_id: str, zone: str | None) -> BroadcastStart:
    event = JourneyEvent(
        id=f"{input.occurrence}/{customer_id}",
        type=broadcast_event_type(input.broadcast),
        properties={OCCURRENCE_PROPERTY: input.occurrence},
        timestamp=input.now,
    )
    delay = None
    if input.local_time and input.local_date:
        delay = local_delay(input.local_date, input.local_time, customer_zone(zone, input.default_timezone))
    return BroadcastStart(input.journey, customer_id, event, input.occurrence, delay)


def local_delay(day: date, at: str, zone: Any, *, now: datetime | None = None) -> timedelta | None:
    """How long until ``at`` (HH:MM) on ``day`` in ``zone``; None when that moment has passed."""
    hour, minute = (int(part) for part in at.split(":"))
    moment = datetime.combine(day, time(hour, minute), tzinfo=zone)
    left = moment - (now or datetime.now(UTC))
    return left if left > timedelta(0) else None


__all__ = ["BroadcastActivities", "BroadcastStart", "StartJourney", "local_delay"]
