"""A change of consent re-checks, at once, the segments that read consent, for that customer only.

Consent is written outside the event path (the consent API, the preference center, an unsubscribe link, an
SMS STOP or START, a bounce or complaint, ``journeys consent``), so without this a ``consent`` condition would
wait for the Schedule's next refresh: a customer who unsubscribed from promotions would stay in a campaign's
audience, and a journey waiting on ``segment_exited.<segment>`` would not hear it, for up to an interval.

The re-check is the set-based refresh the event path runs (``audiences.membership``: two statements per
segment, restricted to the customer), and the changes are routed to journeys as ``segment_entered.<segment>`` /
``segment_exited.<segment>`` events like the event path's. A deployment with no segment reading consent pays
one dictionary look-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from audiences.definitions import load_segments
from audiences.membership import Audiences, Change
from runtime.connection import TemporalUnreachable, connect
from runtime.settings import Settings
from starter.client import JourneyClient


def recheck(engine: Engine, audiences: Audiences, customer_ids: Iterable[str]) -> list[Change]:
    """Blocking: the consent segments of these customers brought up to date, in one transaction; the changes
    (already recorded as events in the ``event`` table)."""
    who = list(customer_ids)
    if not audiences.for_consent() or not who:
        return []
    with engine.begin() as connection:
        return audiences.after_consent(connection, who, now=datetime.now(UTC))


async def route(journeys: JourneyClient, changes: list[Change]) -> None:
    """Each change to the journeys that name its event type, under the customer's own id."""
    for change in changes:
        await journeys.send_event(change.customer_id, change.event())


async def consent_changed(
    engine: Engine, audiences: Audiences, journeys: JourneyClient, customer_ids: Iterable[str]
) -> list[Change]:
    """After consent rows were committed for ``customer_ids``: re-check and route; the changes."""
    changes = await asyncio.to_thread(recheck, engine, audiences, list(customer_ids))
    await route(journeys, changes)
    return changes


def recheck_from_cli(settings: Settings, engine: Engine, customer_ids: Iterable[str]) -> str | None:
    """For ``journeys consent`` and ``journeys identify``, which write the database directly: re-check, and route
    the changes through the configured Temporal. When Temporal does not answer, nothing of the re-check is kept
    (the Schedule's next refresh finds and routes the same changes), so no change is recorded that no journey
    heard. A line to print, or None when nothing was to be said."""
    audiences = Audiences(load_segments(settings.segments_dir))
    if not audiences.for_consent():
        return None
    return asyncio.run(_recheck_and_route(settings, engine, audiences, list(customer_ids)))


async def _recheck_and_route(
    settings: Settings, engine: Engine, audiences: Audiences, customer_ids: list[str]
) -> str | None:
    with engine.connect() as connection:
        transaction = connection.begin()
        changes = audiences.after_consent(connection, customer_ids, now=datetime.now(UTC))
        if not changes:
            transaction.commit()
            return None
        try:  # before the commit: a change is kept only when it can be routed
            client = await connect(settings)
        except TemporalUnreachable as exc:
            transaction.rollback()
            names = ", ".join(sorted({change.segment for change in changes}))
            return f"segments {names}: re-checked at the Schedule's next run ({exc})"
        transaction.commit()
    await route(JourneyClient.from_settings(client, settings), changes)
    moves = ", ".join(f"{'entered' if c.entered else 'left'} {c.segment}" for c in changes)
    return f"segments: {moves}"
