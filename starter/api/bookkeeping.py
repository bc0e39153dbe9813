"""The event API's database work for each message, batched across the requests in flight.

Before a message goes to Temporal: was its ``messageId`` handled already (then its first answer is given
again), and which customer is it about. After Temporal took it: the event for the report and the answer for
that de-duplication, in one transaction. Both run through a :class:`~starter.api.batching.Batcher`, so at a few
hundred requests a second the API makes a handful of thread hops and transactions instead of two per message;
each request still waits for its own rows to be committed before it is answered (nothing is acknowledged that
a crash could lose).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from analytics.events import event_values, record_event
from starter.api.batching import Batcher
from starter.api.identities import resolve_customer
from starter.api.models import IdentifyMessage, MessageResult, TrackMessage
from storage.tables import CustomerIdentity, Event, ProcessedMessage
from workflows.models import JourneyEvent

Message = TrackMessage | IdentifyMessage


@dataclass(frozen=True)
class Lookup:
    """What the API knows of a message before routing it."""

    first: MessageResult | None
    """The answer given when this ``messageId`` was handled before, else None."""
    customer_id: str


@dataclass(frozen=True)
class Handled:
    """A message Temporal took, to be recorded."""

    customer_id: str
    event: JourneyEvent | None
    result: MessageResult


class Bookkeeping:
    """The API's database work, one instance per app (it holds the batchers and the engine)."""

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self._lookups: Batcher[Message, Lookup | Exception] = Batcher(self._look_up, max_batch=max_batch)
        self._records: Batcher[Handled, None] = Batcher(self._record, max_batch=max_batch)

    async def before_routing(self, message: Message) -> Lookup:
        found = await self._lookups.submit(message)
        if isinstance(found, Exception):
            raise found
        return found

    async def after_routing(self, handled: Handled) -> None:
        """Recorded only after the journeys took the event: if Temporal was unreachable, the backend's retry is
        not mistaken for a duplicate."""
        await self._records.submit(handled)

    def _look_up(self, messages: list[Message]) -> list[Lookup | Exception]:
        """Blocking. The commonest message, a track by a known user id, costs its share of two reads by primary
        key for the whole batch, in SQL without the ORM (its bookkeeping cost more CPU than the reads). Anything
        with something to link (an anonymous id, traits, a new user) goes through :func:`resolve_customer`, one
        message at a time in arrival order, so two messages of one new customer link it once."""
        message_ids = {m.message_id for m in messages if m.message_id is not None}
        plain_users = {m.user_id for m in messages if _plain_track(m) and m.user_id is not None}
        with self.engine.connect() as connection:
            answered: dict[str, Any] = {}
            if message_ids:
                rows = connection.execute(
                    select(col(ProcessedMessage.message_id), col(ProcessedMessage.response)).where(
                        col(ProcessedMessage.message_id).in_(message_ids)
                    )
                )
                answered = {str(message_id): response for message_id, response in rows}
            known: dict[str, str] = {}
            if plain_users:
                rows = connection.execute(
                    select(col(CustomerIdentity.value), col(CustomerIdentity.customer_id)).where(
                        col(CustomerIdentity.kind) == "user_id", col(CustomerIdentity.value).in_(plain_users)
                    )
                )
                known = {str(value): str(customer_id) for value, customer_id in rows}
        found: list[Lookup | Exception] = []
        for message in messages:
            if message.message_id is not None and message.message_id in answered:
                first = MessageResult.model_validate(answered[message.message_id])
                found.append(Lookup(first, first.customer_id))
            elif _plain_track(message) and message.user_id in known:
                found.append(Lookup(None, known[str(message.user_id)]))
            else:
                try:
                    customer_id = resolve_customer(
                        self.engine,
                        user_id=message.user_id,
                        anonymous_id=message.anonymous_id,
                        traits=message.traits if isinstance(message, IdentifyMessage) else None,
                    )
                except Exception as error:
                    found.append(error)
                else:
                    found.append(Lookup(None, customer_id))
        return found

    def _record(self, handled: list[Handled]) -> list[None]:
        """Blocking. One transaction for the batch; a row that is there already (the same event recorded before,
        the same message handled at this very moment) is skipped, and its first version stands. The batcher runs
        one call at a time, so this process has one writer: on SQLite its threads never wait on each other."""
        now = datetime.now(UTC)
        events = [
            event_values(h.customer_id, h.event, at=h.event.timestamp or now) for h in handled if h.event is not None
        ]
        answers = [
            {
                "message_id": h.result.message_id,
                "customer_id": h.result.customer_id,
                "kind": h.result.type,
                "response": h.result.model_dump(),
                "received_at": now,
            }
            for h in handled
        ]
        ignoring = _insert_ignoring_duplicates(self.engine)
        if ignoring is None:
            self._record_one_by_one(handled)
            return [None] * len(handled)
        with self.engine.begin() as connection:
            if events:
                connection.execute(ignoring(_table(Event)), events)
            connection.execute(ignoring(_table(ProcessedMessage)), answers)
        return [None] * len(handled)

    def _record_one_by_one(self, handled: list[Handled]) -> None:
        """For a database without ``ON CONFLICT DO NOTHING``: each row keeps its first-wins rule alone."""
        for h in handled:
            if h.event is not None:
                record_event(self.engine, h.customer_id, h.event)
            _remember(self.engine, h.result)


def _plain_track(message: Message) -> bool:
    return isinstance(message, TrackMessage) and message.user_id is not None and message.anonymous_id is None


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _insert_ignoring_duplicates(engine: Engine) -> Any | None:
    """``INSERT ... ON CONFLICT DO NOTHING`` for this engine's dialect, as a function of the table (None: the
    dialect has none that SQLAlchemy builds)."""
    dialects: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(engine.dialect.name)
    if make is None:
        return None

    def ignoring(table: Table) -> Insert:
        statement: Insert = make(table).on_conflict_do_nothing()
        return statement

    return ignoring


def _remember(engine: Engine, result: MessageResult) -> None:
    with Session(engine) as session:
        session.add(
            ProcessedMessage(
                message_id=result.message_id,
                customer_id=result.customer_id,
                kind=result.type,
                response=result.model_dump(),
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # the same message handled at the same moment: its first answer stands
