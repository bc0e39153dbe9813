"""Who is in which segment: computed by the database in a few set-based statements, never customer by customer.

For one segment and a set of customers (all of them, a page of them by key, or the few an event is about),
a refresh is two statements, whatever the number of customers::

    INSERT INTO segmentmembership (segment, customer_id, entered_at)
        SELECT :segment, customer.id, :now FROM customer
        WHERE <in the set> AND <the segment's condition> AND NOT <an open stay exists>      RETURNING customer_id
    UPDATE segmentmembership SET exited_at = :now
        WHERE segment = :segment AND exited_at IS NULL AND <in the set>
          AND NOT EXISTS (SELECT 1 FROM customer WHERE id = customer_id AND <the condition>)  RETURNING customer_id

The condition is each kind's SQL (:mod:`audiences.conditions`), compiled by SQLAlchemy for SQLite and PostgreSQL
alike. What ``RETURNING`` gives back are the customers who entered and left: each becomes a
``segment_entered.<segment>`` or ``segment_exited.<segment>`` event (property ``segment``), recorded in the
``event`` table by one more multi-row ``INSERT`` of what ``RETURNING`` gave, in the same transaction (so the report
and other segments see it) and returned for the caller to route to journeys. Its id names the stay
(``segment_entered.<segment>/<stay id>``): the same change announced twice has effect once. A unique index allows
one open stay per customer and segment, so two refreshes racing cannot open two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    String,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlmodel.sql.sqltypes import UTCDateTime

from audiences.conditions import Query
from audiences.definitions import Segment, dependencies, event_type, refresh_order
from contracts.events import JourneyEvent
from storage.driver import DriverStatement
from storage.tables import Customer, Event, SegmentMembership

CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]
MEMBERSHIP = SegmentMembership.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Customers:
    """Which customers a refresh looks at: everyone, those with ids in ``(after, upto]`` (a page), or ``only``."""

    after: str | None = None
    upto: str | None = None
    only: tuple[str, ...] | None = None

    def holds(self, column: ColumnElement[Any]) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if self.only is not None:
            parts.append(column.in_(self.only))
        if self.after is not None:
            parts.append(column > self.after)
        if self.upto is not None:
            parts.append(column <= self.upto)
        return and_(true(), *parts)


EVERYONE = Customers()


@dataclass(frozen=True)
class Change:
    """A customer entered or left a segment."""

    segment: str
    customer_id: str
    entered: bool
    at: datetime
    stay: int
    """The membership row: entering opened it, leaving closed it."""

    @property
    def event_type(self) -> str:
        return event_type(self.entered, self.segment)

    def event(self) -> JourneyEvent:
        """The change as the event journeys receive (and the ``event`` table holds)."""
        return JourneyEvent(
            id=f"{self.event_type}/{self.stay}",
            type=self.event_type,
            properties={"segment": self.segment},
            timestamp=self.at,
        )


def condition_sql(segment: Segment, now: datetime) -> ColumnElement[bool]:
    """The segment's condition on a ``customer`` row, as SQL."""
    return Query(CUSTOMER, now).where(segment.where)


def refresh(
    connection: Connection, segment: Segment, *, now: datetime, customers: Customers = EVERYONE
) -> list[Change]:
    """Bring ``segment``'s membership up to date for ``customers`` (in the caller's transaction)."""
    entering, exiting, _, _ = _statements(segment, now, customers.holds)
    entered = connection.execute(entering).all()
    exited = connection.execute(exiting).all()
    if entered:
        _record_rows(connection, segment.name, True, entered, now)
    if exited:
        _record_rows(connection, segment.name, False, exited, now)
    return _changes(segment.name, now, entered, exited)


def _statements(
    segment: Segment, now: datetime, holds: Callable[[ColumnElement[Any]], ColumnElement[bool]]
) -> tuple[Any, Any, Any, Any]:
    """A refresh's four statements for the customers ``holds`` selects: open the stays of those who meet the
    condition (``RETURNING`` them), close those of who no longer does, and record each kind of change as events."""
    condition = condition_sql(segment, now)
    stay = MEMBERSHIP.alias("stay")
    open_stay = exists(
        select(1)
        .select_from(stay)
        .where(stay.c.segment == segment.name, stay.c.customer_id == CUSTOMER.c.id, stay.c.exited_at.is_(None))
    )
    entering = select(literal(segment.name), CUSTOMER.c.id, literal(now, UTCDateTime())).where(
        holds(CUSTOMER.c.id), condition, ~open_stay
    )
    still = exists(select(1).select_from(CUSTOMER).where(CUSTOMER.c.id == MEMBERSHIP.c.customer_id, condition))
    return (
        insert(MEMBERSHIP)
        .from_select(["segment", "customer_id", "entered_at"], entering)
        .returning(MEMBERSHIP.c.id, MEMBERSHIP.c.customer_id),
        update(MEMBERSHIP)
        .where(
            MEMBERSHIP.c.segment == segment.name,
            MEMBERSHIP.c.exited_at.is_(None),
            holds(MEMBERSHIP.c.customer_id),
            ~still,
        )
        .values(exited_at=now)
        .returning(MEMBERSHIP.c.id, MEMBERSHIP.c.customer_id),
        _record(segment.name, True, MEMBERSHIP.c.entered_at, now, holds),
        _record(segment.name, False, MEMBERSHIP.c.exited_at, now, holds),
    )


def _changes(segment: str, now: datetime, entered: Sequence[Any], exited: Sequence[Any]) -> list[Change]:
    return [Change(segment, str(c), True, now, int(i)) for i, c in entered] + [
        Change(segment, str(c), False, now, int(i)) for i, c in exited
    ]


class _Prepared:
    """One segment's refresh for the few customers of an event batch, built and compiled once per dialect and
    run on the driver's cursor (:class:`storage.driver.DriverStatement`) with this batch's moment and customers.

    Building the statements per batch cost ~650 us each in SQLAlchemy, against ~40 us for the database's work,
    and an event of a type five segments count ran up to fifteen of them (docs/benchmarks.md). What changes from
    one batch to the next is the customers (one expanding parameter) and the moment: every value that depends
    on it is the moment itself or the moment less a fixed length (``within: 30d``), which is checked here by
    building the statements at three moments; a segment whose values depend on the moment in any other way (a
    date cut to the day, a text) is refreshed the ordinary way (:meth:`for_dialect` gives None).
    """

    _MOMENTS = (
        datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC),
        datetime(2001, 3, 7, 9, 11, 13, 17000, tzinfo=UTC),
        datetime(2002, 5, 11, 17, 23, 29, 31000, tzinfo=UTC),
    )

    def __init__(self, name: str, statements: list[DriverStatement], shifts: list[dict[str, timedelta]]) -> None:
        self.name = name
        self._statements = statements
        self._shifts = shifts
        """Per statement: each parameter that moves with the moment, as its distance from it."""

    @classmethod
    def for_dialect(cls, segment: Segment, dialect: Dialect) -> _Prepared | None:
        only: BindParameter[Any] = bindparam("only", expanding=True)
        built = [
            [DriverStatement(s, dialect, "only") for s in _statements(segment, moment, lambda c: c.in_(only))]
            for moment in cls._MOMENTS
        ]
        first, *others = built
        base = cls._MOMENTS[0]
        shifts: list[dict[str, timedelta]] = []
        for index, statement in enumerate(first):
            moving: dict[str, timedelta] = {}
            for name, value in statement.values.items():
                for moment, other in zip(cls._MOMENTS[1:], others, strict=True):
                    if other[index].sql != statement.sql or set(other[index].values) != set(statement.values):
                        return None  # the moment changes the statement itself
                    again = other[index].values[name]
                    if again == value:
                        continue
                    if not (isinstance(value, datetime) and isinstance(again, datetime)):
                        return None
                    if again - moment != value - base:
                        return None
                    moving[name] = value - base
            shifts.append(moving)
        return cls(segment.name, first, shifts)

    def refresh(self, connection: Connection, now: datetime, customers: Sequence[str]) -> list[Change]:
        def run(index: int) -> list[tuple[Any, ...]]:
            values = {name: now + shift for name, shift in self._shifts[index].items()}
            return self._statements[index].rows(connection, values, customers)

        entered = run(0)
        exited = run(1)
        if entered:
            run(2)
        if exited:
            run(3)
        return _changes(self.name, now, entered, exited)


def _record(
    segment: str,
    entered: bool,
    when: Any,
    now: datetime,
    holds: Callable[[ColumnElement[Any]], ColumnElement[bool]],
) -> Any:
    """The changes a refresh made as rows of the ``event`` table: the stays of the customers ``holds`` selects
    that it opened or closed at ``now``. One statement, so the event path's prepared re-check (a batch's few
    customers) runs it on the driver's cursor; :func:`refresh` writes from the rows ``RETURNING`` gave instead
    (:func:`_record_rows`)."""
    moment = literal(now, UTCDateTime())
    kind = event_type(entered, segment)
    changed = select(
        literal(f"{kind}/") + cast(MEMBERSHIP.c.id, String),
        MEMBERSHIP.c.customer_id,
        literal(kind),
        literal({"segment": segment}, JSON()),
        moment,
        moment,
    ).where(MEMBERSHIP.c.segment == segment, when == now, holds(MEMBERSHIP.c.customer_id))
    columns = ["event_id", "customer_id", "type", "properties", "occurred_at", "recorded_at"]
    return insert(EVENT).from_select(columns, changed)


def _record_rows(connection: Connection, segment: str, entered: bool, stays: Sequence[Any], now: datetime) -> None:
    """The stays this refresh opened or closed (``(id, customer_id)``, as ``RETURNING`` gave them) as rows of the
    ``event`` table, in one multi-row insert. From the rows in hand, not read back: reading back "this segment's
    stays changed at ``now``" scanned every stay the refresh had changed so far, on every page, so the refresh of
    a large audience grew with the square of its pages (docs/benchmarks.md)."""
    kind = event_type(entered, segment)
    rows = [
        {
            "event_id": f"{kind}/{stay}",
            "customer_id": str(customer),
            "type": kind,
            "properties": {"segment": segment},
            "occurred_at": now,
            "recorded_at": now,
        }
        for stay, customer in stays
    ]
    connection.execute(insert(EVENT), rows)


class Audiences:
    """A deployment's segments, indexed by what each depends on, so an event re-checks only what it can change."""

    def __init__(self, segments: dict[str, Segment]) -> None:
        self.segments = segments
        self.order = refresh_order(segments)
        self._dependencies = {name: dependencies(segment) for name, segment in segments.items()}
        self._readers: dict[str, set[str]] = {}
        for name, found in self._dependencies.items():
            for other in found.segments:
                self._readers.setdefault(other, set()).add(name)
        self.event_types = frozenset(e for found in self._dependencies.values() for e in found.events)
        """Every event type some segment counts: an event of another type re-checks nothing."""
        self._prepared: dict[tuple[str, str], _Prepared | None] = {}

    def _with_readers(self, names: Iterable[str]) -> list[str]:
        """``names`` and every segment reading them (through ``in_segment``), in refresh order."""
        wanted: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo += self._readers.get(name, ())
        return [name for name in self.order if name in wanted]

    def for_event(self, event_type: str) -> list[str]:
        """The segments an event of this type may change, in refresh order."""
        if event_type not in self.event_types:
            return []
        return self._with_readers(name for name, found in self._dependencies.items() if event_type in found.events)

    def for_traits(self, traits: Iterable[str]) -> list[str]:
        """The segments a change of these traits may change, in refresh order."""
        changed = set(traits)
        return self._with_readers(name for name, found in self._dependencies.items() if found.traits & changed)

    def for_consent(self) -> list[str]:
        """The segments a change of consent may change (those with a ``consent`` condition and their readers), in
        refresh order."""
        return self._with_readers(name for name, found in self._dependencies.items() if found.consent)

    def after_consent(self, connection: Connection, customer_ids: Iterable[str], *, now: datetime) -> list[Change]:
        """Re-check, for these customers only, the segments that read consent (in the caller's transaction): what
        an unsubscribe, a preference change or an SMS STOP changes at once, instead of at the Schedule's next run.
        Nothing at all when no segment reads consent."""
        names = self.for_consent()
        who = tuple(sorted(set(customer_ids)))
        if not names or not who:
            return []
        return self.refresh(connection, names, now=now, customers=Customers(only=who))

    def for_lists(self, lists: Iterable[str]) -> list[str]:
        names = set(lists)
        return self._with_readers(name for name, found in self._dependencies.items() if found.lists & names)

    def scheduled(self) -> list[str]:
        """The segments that can change with no event or identify to re-check them: time windows and relative
        dates; consent (an unsubscribe link or an SMS STOP does not pass through the event path); static lists (an
        import); and traits, which a journey's ``update_profile`` step also writes."""
        return self._with_readers(
            name
            for name, found in self._dependencies.items()
            if found.changes_with_time or found.consent or found.lists or found.traits
        )

    def refresh(
        self, connection: Connection, names: Sequence[str], *, now: datetime, customers: Customers = EVERYONE
    ) -> list[Change]:
        """Refresh ``names`` (in refresh order) for ``customers``, in one transaction of the caller's."""
        changes: list[Change] = []
        for name in [n for n in self.order if n in set(names)]:
            changes += refresh(connection, self.segments[name], now=now, customers=customers)
        return changes

    def recheck(self, connection: Connection, name: str, *, now: datetime, customers: Sequence[str]) -> list[Change]:
        """:meth:`refresh` of one segment for the few ``customers`` an event batch is about (the event API's
        path), with statements built once (:class:`_Prepared`) where the segment allows it."""
        dialect = connection.dialect
        key = (name, dialect.name)
        if key not in self._prepared:
            self._prepared[key] = _Prepared.for_dialect(self.segments[name], dialect)
        prepared = self._prepared[key]
        if prepared is None:
            return refresh(connection, self.segments[name], now=now, customers=Customers(only=tuple(customers)))
        return prepared.refresh(connection, now, customers)


def page_end(connection: Connection, *, after: str | None, size: int) -> str | None:
    """The id of the last customer of the page of ``size`` after ``after`` (keyset); None: the rest is one page."""
    query = select(CUSTOMER.c.id).order_by(CUSTOMER.c.id).offset(size - 1).limit(1)
    if after is not None:
        query = query.where(CUSTOMER.c.id > after)
    found = connection.execute(query).scalar()
    return None if found is None else str(found)


def sizes(connection: Connection) -> dict[str, int]:
    """Current members per segment (segments nobody is in are absent)."""
    rows = connection.execute(
        select(MEMBERSHIP.c.segment, func.count())
        .where(MEMBERSHIP.c.exited_at.is_(None))
        .group_by(MEMBERSHIP.c.segment)
    )
    return {str(segment): int(count) for segment, count in rows}


def members(
    connection: Connection, segment: str, *, limit: int, after: str | None = None
) -> list[tuple[str, datetime]]:
    """Current members of ``segment`` by customer id (keyset pages), with when each entered."""
    query = (
        select(MEMBERSHIP.c.customer_id, MEMBERSHIP.c.entered_at)
        .where(MEMBERSHIP.c.segment == segment, MEMBERSHIP.c.exited_at.is_(None))
        .order_by(MEMBERSHIP.c.customer_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(MEMBERSHIP.c.customer_id > after)
    return [(str(customer), entered) for customer, entered in connection.execute(query)]


def segments_of(connection: Connection, customer_id: str) -> list[tuple[str, datetime]]:
    """The segments ``customer_id`` is in now, with when they entered each."""
    rows = connection.execute(
        select(MEMBERSHIP.c.segment, MEMBERSHIP.c.entered_at)
        .where(MEMBERSHIP.c.customer_id == customer_id, MEMBERSHIP.c.exited_at.is_(None))
        .order_by(MEMBERSHIP.c.segment)
    )
    return [(str(segment), entered) for segment, entered in rows]


@dataclass(frozen=True)
class Preview:
    """Who a segment would hold now, computed without writing: for ``journeys segments preview``."""

    count: int
    sample: list[str]
    seconds: float


def preview(connection: Connection, segment: Segment, *, now: datetime, sample: int = 10) -> Preview:
    started = time.perf_counter()
    condition = condition_sql(segment, now)
    count = connection.execute(select(func.count()).select_from(CUSTOMER).where(condition)).scalar_one()
    ids = connection.execute(select(CUSTOMER.c.id).where(condition).order_by(CUSTOMER.c.id).limit(sample)).scalars()
    return Preview(int(count), [str(i) for i in ids], time.perf_counter() - started)
