"""The segment refresh's activity: one page of customers, set-based in the database, then the changes routed.

The page's membership changes and their events commit in one transaction first; then every segment event of this
page and moment is read back (from the page's stays: the event ids name them) and handed to ``announce`` (the event
routing, given by whoever builds the worker). A retry after a crash between the two finds no new change but
announces the recorded ones again: a journey drops an event id it has seen, so nobody is announced to twice and
nobody is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from temporalio import activity

from audiences.membership import MEMBERSHIP, Audiences, Change, Customers, page_end
from contracts.activities import RefreshSegmentsInput, RefreshSegmentsResult
from contracts.events import JourneyEvent

log = logging.getLogger("journeys.segments")

Announce = Callable[[str, JourneyEvent], Awaitable[Any]]
"""Route one customer's event to the journeys that name its type (``JourneyClient.send_event``)."""

HEARTBEAT_EVERY = 5.0
"""Seconds between heartbeats while the database works on a page."""


class SegmentActivities:
    def __init__(self, engine: Engine, audiences: Audiences, announce: Announce | None) -> None:
        self._engine = engine
        self._audiences = audiences
        self._announce = announce

    @activity.defn(name="refresh_segments")
    async def refresh_segments(self, input: RefreshSegmentsInput) -> RefreshSegmentsResult:
        names = self._audiences.scheduled() if input.segments is None else self._known(input.segments)
        work = asyncio.ensure_future(asyncio.to_thread(self._page, names, input))
        while not work.done():
            activity.heartbeat(input.after)
            await asyncio.wait({work}, timeout=HEARTBEAT_EVERY)
        upto, entered, exited, events = work.result()
        if self._announce is None:
            if events:
                log.warning("%d segment changes recorded but routed to no journey: no event routing", len(events))
        else:
            for index, (customer_id, event) in enumerate(events):
                if index % 100 == 0:
                    activity.heartbeat(input.after)
                await self._announce(customer_id, event)
        return RefreshSegmentsResult(upto=upto, entered=entered, exited=exited)

    def _known(self, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(self._audiences.segments))
        if unknown:
            log.warning("refresh of segments this worker does not know skipped: %s", ", ".join(unknown))
        return [name for name in names if name in self._audiences.segments]

    def _page(
        self, names: list[str], input: RefreshSegmentsInput
    ) -> tuple[str | None, int, int, list[tuple[str, JourneyEvent]]]:
        """Blocking: the page's changes in one transaction, then every segment event of the page at ``now``."""
        with self._engine.begin() as connection:
            upto = page_end(connection, after=input.after, size=input.page_size)
            page = Customers(after=input.after, upto=upto)
            changes = self._audiences.refresh(connection, names, now=input.now, customers=page) if names else []
        with self._engine.connect() as connection:
            events = _page_events(connection, page, input.now) if names else []
        entered = sum(1 for change in changes if change.entered)
        return upto, entered, len(changes) - entered, events


def _page_events(connection: Any, page: Customers, now: datetime) -> list[tuple[str, JourneyEvent]]:
    """Every segment change of the page's customers at ``now``, as the events ``refresh`` recorded (their ids name
    the stay). Read from the page's stays by customer id, so a page reads about its own customers only: reading
    the ``event`` table by moment read every change of the whole refresh so far, on every page."""
    rows = connection.execute(
        select(
            MEMBERSHIP.c.id,
            MEMBERSHIP.c.segment,
            MEMBERSHIP.c.customer_id,
            MEMBERSHIP.c.entered_at,
            MEMBERSHIP.c.exited_at,
        )
        .where(page.holds(MEMBERSHIP.c.customer_id), or_(MEMBERSHIP.c.entered_at == now, MEMBERSHIP.c.exited_at == now))
        .order_by(MEMBERSHIP.c.id)
    )
    found: list[tuple[str, JourneyEvent]] = []
    for stay, segment, customer, entered_at, exited_at in rows:
        moves = ([True] if entered_at == now else []) + ([False] if exited_at == now else [])
        for entered in moves:
            found.append((str(customer), Change(str(segment), str(customer), entered, now, int(stay)).event()))
    return found
