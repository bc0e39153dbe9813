"""The event API's database work for each message, batched across the requests in flight.

Before a message goes to Temporal: was its ``messageId`` handled already (then its first answer is given again), or
is it being handled (its row is inserted first as a claim, so that of two API processes given it at once only one
routes it: ``starter.api.claims``), and which customer is it about. After Temporal took it: the event for the report
and the answer for that de-duplication (replacing the claim), in one transaction. Both kinds of work share one
:class:`~starter.api.batching.Batcher`, so at a few hundred requests a second the API makes a handful of thread hops
and transactions instead of two per message; each request still waits for its own rows to be committed before it is
answered (nothing is acknowledged that a crash could lose).

One batcher, not one per kind: two threads running SQLAlchemy at once beside the event loop fight over the GIL;
measured, look-ups and records run that way cost more than twice the sum of each alone (docs/benchmarks.md).
In one call the records go first, so a copy of a message whose first copy is being recorded is answered as
the duplicate it is.

Segments (issue 15) stay current on this path at little cost: in the records' transaction, only the segments that
count one of the batch's event types (or read one of an identify's traits, or consent an identify gave) are
re-checked, and only for the customers those messages are about (``audiences.membership``: two set-based statements
per segment, built once per segment and run on the driver's cursor, ``Audiences.recheck``). A batch of event types
no segment counts pays a dictionary look-up per message. The changes found go back to the caller, which routes
them to journeys as ``segment_entered.<segment>``/``segment_exited.<segment>`` events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Insert, Table, and_, bindparam, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, col, select

from analytics.events import event_values, record_event
from audiences.membership import Audiences, Change
from contracts.events import JourneyEvent
from starter.api.batching import Batcher
from starter.api.claims import CLAIM, claim_row, claimant, release_all
from starter.api.identities import ABSORBED, absorbed_ids, resolve_customer
from starter.api.models import IdentifyMessage, MessageResult, TrackMessage
from storage.driver import DriverInsert, DriverSelect
from storage.tables import Customer, CustomerIdentity, Event, ProcessedMessage, QuarantinedEvent, RefusedEventCount

Message = TrackMessage | IdentifyMessage
T = TypeVar("T")


@dataclass(frozen=True)
class Lookup:
    """What the API knows of a message before routing it."""

    first: MessageResult | None
    """The answer given when this ``messageId`` was handled before, else None."""
    customer_id: str
    absorbed: tuple[str, ...] = ()
    """For a track: the customer ids identify merged into ``customer_id`` (their journeys hear it too)."""
    claim: str | None = None
    """This request's claim on its ``messageId`` (``starter.api.claims``): to be released if routing fails."""
    claimed_elsewhere: bool = False
    """Another request holds the claim: its answer is to be awaited (``claims.first_answer``), nothing routed."""


@dataclass(frozen=True)
class Handled:
    """A message Temporal took, to be recorded."""

    customer_id: str
    event: JourneyEvent | None
    result: MessageResult
    quarantine: list[str] | None = None
    """Set for an event that broke its declaration under ``on_invalid: quarantine``: why. It is stored in
    ``quarantinedevent`` instead of ``event``."""
    traits: frozenset[str] = frozenset()
    """The traits an identify set: segments reading them are re-checked."""
    consent: bool = False
    """Whether an identify recorded consent words: segments reading consent are re-checked."""


@dataclass(frozen=True)
class Refused:
    """An event refused for breaking its declaration: counted by type (nothing else of it is kept)."""

    type: str
    problems: list[str]


Result = Lookup | Exception | list[Change] | None


@dataclass(frozen=True)
class _Read:
    """What the claims' transaction found for a batch's messages."""

    answered: dict[str, Any]
    """The stored row's ``response`` by ``messageId``: an earlier answer, or a claim (``starter.api.claims``)."""
    plain_users: set[str]
    """The user ids of the batch's plain tracks (a user id and nothing to link)."""
    known: dict[str, tuple[str, tuple[str, ...]]]
    """Those of them linked already: their customer and the ids merged into it."""


def _alone(connection: Connection, step: Callable[[], T]) -> T | Exception:
    """``step`` in a transaction of its own; the exception it raised, if it did."""
    try:
        with connection.begin():
            return step()
    except Exception as error:
        return error


class Bookkeeping:
    """The API's database work, one instance per app (it holds the batchers and the engine)."""

    def __init__(self, engine: Engine, *, max_batch: int = 500, audiences: Audiences | None = None) -> None:
        self.engine = engine
        self._audiences = audiences or Audiences({})
        # Built once: building a statement cost more CPU than running it, at a few messages a call. The hot ones
        # (every message's look-up and record) run on the driver's cursor (storage.driver).
        ignoring = _insert_ignoring_duplicates(engine)
        self._inserts = (
            None
            if ignoring is None
            else (
                DriverInsert(ignoring(_table(Event)), engine.dialect, _EVENT_KEYS),
                DriverInsert(_answering(engine), engine.dialect, _ANSWER_KEYS),
            )
        )
        # The look-up claims each messageId first (starter.api.claims); the record above replaces the claim.
        self._claims = (
            None if ignoring is None else DriverInsert(ignoring(_table(ProcessedMessage)), engine.dialect, _ANSWER_KEYS)
        )
        self._answers = DriverSelect(_ANSWERS, engine.dialect, "message_ids")
        self._users = DriverSelect(_USERS, engine.dialect, "user_ids")
        self._new_users = None if ignoring is None else (ignoring(_table(Customer)), ignoring(_table(CustomerIdentity)))
        self._quarantine = None if ignoring is None else ignoring(_table(QuarantinedEvent))
        self._count_refused = _count_refused(engine)
        self._work: Batcher[Message | Handled | Refused, Result] = Batcher(self._run, max_batch=max_batch)

    async def before_routing(self, message: Message) -> Lookup:
        found = await self._work.submit(message)
        if isinstance(found, Exception):
            raise found
        assert isinstance(found, Lookup)
        return found

    async def after_routing(self, handled: Handled) -> list[Change]:
        """Recorded only after the journeys took the event: if Temporal was unreachable, the backend's retry is
        not mistaken for a duplicate. Returns the segment changes of this message's customer found meanwhile."""
        done = await self._work.submit(handled)
        if isinstance(done, Exception):
            raise done
        return done if isinstance(done, list) else []

    async def refused(self, refused: Refused) -> None:
        """Count a refused event; answered once the count is committed, like every other record."""
        failed = await self._work.submit(refused)
        if isinstance(failed, Exception):
            raise failed

    def _run(self, work: list[Message | Handled | Refused]) -> list[Result]:
        """Blocking. The records, then the claims and look-ups, in one transaction: at the few messages a batch
        holds under load a commit cost more than all their rows (on SQLite about 60 us of CPU against ~15 us a
        statement, docs/benchmarks.md). Should it fail, each kind runs again in a transaction of its own, so that
        a failure of one kind fails only its own submitters."""
        handled = [item for item in work if isinstance(item, Handled | Refused)]
        messages = [item for item in work if not isinstance(item, Handled | Refused)]
        batch = uuid.uuid4().hex  # a claim's token: this batch and the message's place in it
        tokens = [
            f"{batch}.{i}" if m.message_id is not None and self._claims is not None else None
            for i, m in enumerate(messages)
        ]
        written: list[Change] | Exception
        read: _Read | Exception
        with self.engine.connect() as connection:
            try:
                with connection.begin():
                    written = self._record(connection, handled)
                    read = self._claim(connection, messages, tokens)
            except Exception:
                written = _alone(connection, lambda: self._record(connection, handled))
                read = _alone(connection, lambda: self._claim(connection, messages, tokens))
            found = self._look_up(connection, messages, tokens, read) if messages else []
        changes: dict[str, list[Change]] = {}
        for change in written if isinstance(written, list) else []:
            changes.setdefault(change.customer_id, []).append(change)
        recorded = written if isinstance(written, Exception) else None
        lookups = iter(found)
        results: list[Result] = []
        for item in work:
            if not isinstance(item, Handled | Refused):
                results.append(next(lookups))
            elif recorded is not None or isinstance(item, Refused):
                results.append(recorded)
            else:  # a customer's changes go back to the first of their messages, to be routed once
                results.append(changes.pop(item.customer_id, None))
        return results

    def _claim(self, connection: Connection, messages: list[Message], tokens: list[str | None]) -> _Read:
        """Blocking, in the caller's transaction. The commonest message, a track by a known user id, costs its
        share of one insert (its ``messageId``'s claim) and two reads by primary key for the whole batch, on the
        driver's cursor (``storage.driver``: SQLAlchemy's execution path cost several times the reads); the ids
        merged into its customer come with the second read."""
        message_ids = {m.message_id for m in messages if m.message_id is not None}
        plain_users = {m.user_id for m in messages if _plain_track(m) and m.user_id is not None}
        answered: dict[str, Any] = {}
        if message_ids and self._claims is not None:
            # Claims first (starter.api.claims): the first request for an id, here or in another process, wins.
            now = datetime.now(UTC)
            claims = [
                claim_row(m.message_id, t, now) for m, t in zip(messages, tokens, strict=True) if m.message_id and t
            ]
            self._claims.execute_many(connection, claims)
        if message_ids:
            rows = self._answers.rows(connection, list(message_ids))
            answered = {str(message_id): response for message_id, response in rows}
        known = self._customers_of(connection, plain_users) if plain_users else {}
        return _Read(answered, plain_users, known)

    def _look_up(
        self, connection: Connection, messages: list[Message], tokens: list[str | None], read: _Read | Exception
    ) -> list[Lookup | Exception]:
        """Blocking, after the claims' transaction. A track by a user id not linked yet costs its share of one more
        transaction (:meth:`_link_new_users`). Anything else with something to link (an anonymous id, traits) goes
        through :func:`resolve_customer`, one message at a time in arrival order, so two messages of one new
        customer link it once; then one read finds the ids merged into their customers."""
        if isinstance(read, Exception):
            return [read] * len(messages)  # its transaction rolled back: nothing was claimed
        claimed = [(m.message_id, t) for m, t in zip(messages, tokens, strict=True) if m.message_id and t]
        try:
            found, failed = self._customers(connection, messages, tokens, read.answered, read.plain_users, read.known)
        except Exception as error:
            if claimed:
                release_all(connection, claimed)  # nothing of this batch is routed: the backend's retries must be
            return [error] * len(messages)
        if failed:
            release_all(connection, failed)
        return found

    def _customers(
        self,
        connection: Connection,
        messages: list[Message],
        tokens: list[str | None],
        answered: dict[str, Any],
        plain_users: set[str],
        known: dict[str, tuple[str, tuple[str, ...]]],
    ) -> tuple[list[Lookup | Exception], list[tuple[str, str]]]:
        """Blocking. Each message's look-up (see :meth:`_look_up`), and the claims of those that failed."""
        new_users = plain_users - set(known)
        if new_users and self._new_users is not None:
            known |= self._link_new_users(connection, new_users)
        found: list[Lookup | Exception] = []
        failed: list[tuple[str, str]] = []
        resolved: list[tuple[int, str]] = []
        """(index, customer) of the tracks resolved one by one, whose merged ids are still to be read."""
        for message, token in zip(messages, tokens, strict=True):
            holder = claimant(answered.get(message.message_id)) if message.message_id is not None else None
            if holder is not None and holder != token:
                found.append(Lookup(None, "", claimed_elsewhere=True))
            elif message.message_id is not None and message.message_id in answered and holder is None:
                first = MessageResult.model_validate(answered[message.message_id])
                found.append(Lookup(first, first.customer_id))
            elif _plain_track(message) and message.user_id in known:
                found.append(Lookup(None, *known[str(message.user_id)], claim=token))
            else:
                try:
                    customer_id = resolve_customer(
                        self.engine,
                        user_id=message.user_id,
                        anonymous_id=message.anonymous_id,
                        traits=message.profile_traits() if isinstance(message, IdentifyMessage) else None,
                    )
                except Exception as error:
                    found.append(error)
                    if message.message_id is not None and token is not None:
                        failed.append((message.message_id, token))
                else:
                    if isinstance(message, TrackMessage):
                        resolved.append((len(found), customer_id))
                    found.append(Lookup(None, customer_id, claim=token))
        if resolved:
            with Session(self.engine) as session:
                absorbed = absorbed_ids(session, sorted({customer_id for _, customer_id in resolved}))
            for index, customer_id in resolved:
                before = found[index]
                claim = before.claim if isinstance(before, Lookup) else None
                found[index] = Lookup(None, customer_id, tuple(absorbed.get(customer_id, ())), claim=claim)
        return found, failed

    def _link_new_users(self, connection: Connection, user_ids: set[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Blocking. A first event from a user id nobody linked yet makes that id a customer of its own (as
        :func:`resolve_customer` would), for the whole batch in one transaction: a first contact is the commonest
        message of an import or a launch, and the ORM path cost ~2 ms of CPU each. Rows someone else wrote
        meanwhile (an identify, another API process) are kept, and the mapping is read back, so theirs wins."""
        assert self._new_users is not None
        insert_customers, insert_identities = self._new_users
        now = datetime.now(UTC)
        ids = sorted(user_ids)
        with connection.begin():
            connection.execute(insert_customers, [{"id": i, "traits": {}, "updated_at": now} for i in ids])
            connection.execute(
                insert_identities, [{"kind": "user_id", "value": i, "customer_id": i, "linked_at": now} for i in ids]
            )
        with connection.begin():
            return self._customers_of(connection, user_ids)

    def _customers_of(self, connection: Connection, user_ids: set[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
        """The customer each of these user ids is linked to, with the ids merged into it (ids not linked are
        absent)."""
        customers: dict[str, str] = {}
        merged: dict[str, list[str]] = {}
        for value, customer_id, absorbed in self._users.rows(connection, list(user_ids)):
            customers[str(value)] = str(customer_id)
            if absorbed is not None:
                merged.setdefault(str(value), []).append(str(absorbed))
        return {value: (customer, tuple(sorted(merged.get(value, ())))) for value, customer in customers.items()}

    def _record(self, connection: Connection, work: list[Handled | Refused]) -> list[Change]:
        """Blocking, in the caller's transaction (one for the batch); a row that is there already (the same event
        recorded before, the same message handled at this very moment) is skipped, and its first version stands.
        The batcher runs one call at a time, so this process has one writer: on SQLite its threads never wait on
        each other. Refused events add to their type's count, one statement per batch. Returns the segment changes
        the batch made (:meth:`_recheck`, in the same transaction)."""
        if not work:
            return []
        now = datetime.now(UTC)
        handled = [h for h in work if isinstance(h, Handled)]
        refusals = _refusals([r for r in work if isinstance(r, Refused)], now)
        events = [
            {**event_values(h.customer_id, h.event, at=h.event.timestamp or now), "recorded_at": now}
            for h in handled
            if h.event is not None and h.quarantine is None
        ]
        quarantined = [
            {
                **event_values(h.customer_id, h.event, at=h.event.timestamp or now),
                "problems": h.quarantine,
                "received_at": now,
            }
            for h in handled
            if h.event is not None and h.quarantine is not None
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
        if self._inserts is None or self._quarantine is None or self._count_refused is None:
            self._record_one_by_one(handled, refusals)
            return []
        insert_events, insert_answers = self._inserts
        insert_events.execute_many(connection, events)
        insert_answers.execute_many(connection, answers)
        if quarantined:
            connection.execute(self._quarantine, quarantined)
        if refusals:
            connection.execute(self._count_refused, refusals)
        return self._recheck(connection, [h for h in handled if h.quarantine is None], now)

    def _recheck(self, connection: Connection, handled: list[Handled], now: datetime) -> list[Change]:
        """Each segment the batch's events or traits may change, for the customers they are about."""
        who: dict[str, set[str]] = {}
        for h in handled:
            names = self._audiences.for_event(h.event.type) if h.event is not None else []
            names += self._audiences.for_traits(h.traits) if h.traits else []
            names += self._audiences.for_consent() if h.consent else []
            for name in names:
                who.setdefault(name, set()).add(h.customer_id)
        changes: list[Change] = []
        for name in (n for n in self._audiences.order if n in who):
            changes += self._audiences.recheck(connection, name, now=now, customers=sorted(who[name]))
        return changes

    def _record_one_by_one(self, handled: list[Handled], refusals: list[dict[str, Any]]) -> None:
        """For a database without ``ON CONFLICT DO NOTHING``: each row keeps its first-wins rule alone."""
        for h in handled:
            if h.event is not None and h.quarantine is None:
                record_event(self.engine, h.customer_id, h.event)
            elif h.event is not None and h.quarantine is not None:
                _quarantine(self.engine, h.customer_id, h.event, h.quarantine)
            _remember(self.engine, h.result)
        with Session(self.engine) as session:
            for refusal in refusals:
                row = session.get(RefusedEventCount, refusal["type"]) or RefusedEventCount(type=refusal["type"])
                row.count += refusal["count"]
                row.last_problem, row.last_at = refusal["last_problem"], refusal["last_at"]
                session.add(row)
            session.commit()


_EVENT_KEYS = ("event_id", "customer_id", "type", "properties", "occurred_at", "recorded_at")
_ANSWER_KEYS = ("message_id", "customer_id", "kind", "response", "received_at")

_ANSWERS = select(col(ProcessedMessage.message_id), col(ProcessedMessage.response)).where(
    col(ProcessedMessage.message_id).in_(bindparam("message_ids", expanding=True))
)
_MERGED = aliased(CustomerIdentity)
_USERS = (
    select(col(CustomerIdentity.value), col(CustomerIdentity.customer_id), col(_MERGED.value))
    .outerjoin(
        _MERGED, and_(col(_MERGED.kind) == ABSORBED, col(_MERGED.customer_id) == col(CustomerIdentity.customer_id))
    )
    .where(
        col(CustomerIdentity.kind) == "user_id", col(CustomerIdentity.value).in_(bindparam("user_ids", expanding=True))
    )
)
"""Each user id's customer, and (a row each) the ids merged into it: one read, by index, for the hot path."""


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


def _answering(engine: Engine) -> Any:
    """The answer's insert, which also replaces a claim on its ``messageId`` (``starter.api.claims``), never an
    answer: the first answer stands (None: a dialect without ``ON CONFLICT``)."""
    dialects: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(engine.dialect.name)
    if make is None:
        return None
    table = _table(ProcessedMessage)
    statement = make(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.message_id],
        set_={key: statement.excluded[key] for key in ("customer_id", "kind", "response", "received_at")},
        where=table.c.kind == literal_column(f"'{CLAIM}'"),
    )


def _refusals(refused: list[Refused], now: datetime) -> list[dict[str, Any]]:
    """The count rows to add: one per event type, however many of it a batch refused."""
    by_type: dict[str, dict[str, Any]] = {}
    for item in refused:
        row = by_type.setdefault(item.type, {"type": item.type, "count": 0, "last_at": now})
        row["count"] += 1
        row["last_problem"] = "; ".join(item.problems)[:400]
    return list(by_type.values())


def _count_refused(engine: Engine) -> Any | None:
    """``INSERT ... ON CONFLICT (type) DO UPDATE SET count = count + excluded.count``: SQLite and PostgreSQL
    both have it, so concurrent API processes add to one row without losing a count (None: another dialect)."""
    dialects: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(engine.dialect.name)
    if make is None:
        return None
    table = _table(RefusedEventCount)
    statement = make(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.type],
        set_={
            "count": table.c.count + statement.excluded.count,
            "last_problem": statement.excluded.last_problem,
            "last_at": statement.excluded.last_at,
        },
    )


def _quarantine(engine: Engine, customer_id: str, event: JourneyEvent, problems: list[str]) -> None:
    with Session(engine) as session:
        session.add(QuarantinedEvent(**event_values(customer_id, event), problems=problems))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # the same event quarantined before: its first copy stands


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
