"""A ``messageId`` claimed before it is routed, so that API processes sharing a database route it once.

A backend whose request timed out sends the message again, and behind a load balancer the retry may reach
another API process while the first still handles it. Looking the id up before routing and recording it after
(what the API did alone) let both processes miss it and route it twice: two signals, two billable actions, and
for a trigger whose journey ended meanwhile a second journey. So the look-up inserts the message's row first,
as a claim (``kind = 'claim'``, the claimant's token in ``customer_id`` and ``response``), in the look-up's own
transaction (``starter.api.bookkeeping``); the unique ``message_id`` lets one claim in. Its holder routes the
message and the record replaces the claim with the answer. Whoever finds another's claim waits here for the
answer and gives it as a duplicate's.

A claim whose holder failed before routing is released (deleted), so the backend's retry is routed. One whose
holder died (a SIGKILLed process) is taken over after :data:`LEASE`: if the holder was in fact still routing,
the message reaches its journeys twice, and the journey drops the second copy by its event id.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.engine import Engine

from starter.api.models import MessageResult
from storage.tables import ProcessedMessage

CLAIM = "claim"
"""``ProcessedMessage.kind`` of a claim: the message is being routed, its answer is not known yet."""
LEASE = timedelta(seconds=30)
"""How long a claim holds without an answer before another process may take the message over."""
POLL_SECONDS = 0.05


def claim_row(message_id: str, token: str, now: datetime) -> dict[str, object]:
    return {
        "message_id": message_id,
        "customer_id": token,
        "kind": CLAIM,
        "response": {CLAIM: token},
        "received_at": now,
    }


def claimant(response: object) -> str | None:
    """The token of the claim a stored ``response`` is, or None for an answer."""
    return str(response[CLAIM]) if isinstance(response, dict) and CLAIM in response else None


async def release(engine: Engine, message_id: str, token: str) -> None:
    """Give up this claim (routing failed): the backend's retry is routed afresh."""
    await asyncio.to_thread(_delete, engine, message_id, token)


async def first_answer(engine: Engine, message_id: str) -> MessageResult | None:
    """Wait while another's claim holds ``message_id``: the answer once its holder recorded one, or None once
    the claim is released or abandoned (older than :data:`LEASE`, then deleted here), to be claimed again."""
    while True:
        row = await asyncio.to_thread(_read, engine, message_id)
        if row is None:
            return None
        kind, holder, response, received_at = row
        if kind != CLAIM:
            return MessageResult.model_validate(response)
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        if datetime.now(UTC) - received_at > LEASE:
            await asyncio.to_thread(_delete, engine, message_id, holder)
            return None
        await asyncio.sleep(POLL_SECONDS)


def _read(engine: Engine, message_id: str) -> tuple[str, str, object, datetime] | None:
    table = ProcessedMessage.__table__  # type: ignore[attr-defined]
    statement = select(table.c.kind, table.c.customer_id, table.c.response, table.c.received_at).where(
        table.c.message_id == message_id
    )
    with engine.connect() as connection:
        row = connection.execute(statement).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _delete(engine: Engine, message_id: str, token: str) -> None:
    with engine.connect() as connection:
        release_all(connection, [(message_id, token)])


def release_all(connection: Connection, claims: list[tuple[str, str]]) -> None:
    """Delete these (message id, token) claims, in a transaction of their own: a claim taken over meanwhile
    (another token) is left alone."""
    table = ProcessedMessage.__table__  # type: ignore[attr-defined]
    statement = delete(table).where(
        table.c.message_id == bindparam("m"), table.c.kind == CLAIM, table.c.customer_id == bindparam("t")
    )
    with connection.begin():
        connection.execute(statement, [{"m": m, "t": t} for m, t in claims])
