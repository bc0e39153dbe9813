"""What journeys rely on from the database, on SQLite and on PostgreSQL alike.

Every test here takes the ``database_url`` fixture: ``scripts/test`` runs them on a SQLite file, then again on
a throwaway PostgreSQL server (``scripts/postgres``).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, bindparam, insert, text
from sqlmodel import Session, SQLModel, col, select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.delivery import DeliveryActivities
from activities.rendering import TemplateRenderer
from analytics.events import record_event
from contracts.activities import SendMessageInput
from contracts.events import JourneyEvent
from starter.api.bookkeeping import Bookkeeping, Handled
from starter.api.models import MessageResult, TrackMessage
from storage import Customer, Delivery, make_engine
from storage.driver import DriverInsert, DriverSelect
from storage.tables import CustomerIdentity, Event, ProcessedMessage
from testkit.harness import ROOT, running_journeys


def test_profile_traits_round_trip_with_nested_and_non_ascii_values(database_url: str) -> None:
    engine = make_engine(database_url)
    traits = {"first_name": "Zoë", "city": "München", "tags": ["vip", "生日"], "points": 12.5, "nested": {"a": [1]}}
    with Session(engine) as session:
        session.add(Customer(id="c-1", traits=traits))
        session.commit()
    with Session(engine) as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None
        assert customer.traits == traits
    engine.dispose()


def test_make_engine_on_an_existing_database_keeps_its_rows(database_url: str) -> None:
    """A process restarting against the same database finds what was recorded before (the schema is at head)."""
    first = make_engine(database_url)
    with Session(first) as session:
        session.add(Customer(id="c-2", traits={"locale": "en"}))
        session.commit()
    first.dispose()
    second = make_engine(database_url)
    with Session(second) as session:
        assert [c.id for c in session.exec(select(Customer))] == ["c-2"]
    second.dispose()


def test_processes_starting_together_on_an_empty_database_all_start(database_url: str) -> None:
    """Several processes (``journeys setup`` or ``dev``, tests) started at once each upgrade the schema: none of
    them dies of finding a table another one created a moment before. Repeated on an emptied database to meet
    the race."""
    starters = 6
    for _ in range(5):
        cleaner = make_engine(database_url, create=False)
        SQLModel.metadata.drop_all(cleaner)
        with cleaner.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        cleaner.dispose()
        barrier = threading.Barrier(starters)

        def start(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            make_engine(database_url).dispose()

        with ThreadPoolExecutor(starters) as pool:
            for started in [pool.submit(start) for _ in range(starters)]:
                started.result()
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(Customer(id="c-0", traits={}))
        session.commit()
    engine.dispose()


async def test_the_event_apis_bookkeeping_records_each_message_once(database_url: str) -> None:
    """The event API's batched writes: copies of one message in one batch, and an event recorded before by
    another path, leave one row each; a later look-up finds the first answer and the customer."""
    engine = make_engine(database_url)
    record_event(engine, "c-5", JourneyEvent(id="m-old", type="page_viewed"))
    bookkeeping = Bookkeeping(engine)

    batch = [_handled("m-1", "c-5"), _handled("m-1", "c-5"), _handled("m-2", "c-6"), _handled("m-old", "c-5")]
    await asyncio.gather(*(bookkeeping.after_routing(h) for h in batch))
    with Session(engine) as session:
        events = sorted((e.event_id, e.customer_id) for e in session.exec(select(Event)))
        answers = sorted(m.message_id for m in session.exec(select(ProcessedMessage)))
    assert events == [("m-1", "c-5"), ("m-2", "c-6"), ("m-old", "c-5")]
    assert answers == ["m-1", "m-2", "m-old"]
    again = await bookkeeping.before_routing(TrackMessage(messageId="m-2", userId="u-6", event="page_viewed"))
    assert again.first is not None and again.customer_id == "c-6"
    engine.dispose()


async def test_a_record_that_fails_leaves_the_look_ups_of_its_batch_standing(database_url: str) -> None:
    """Records and look-ups of one batch share a transaction (one commit); when a record fails, its submitter
    gets the error and the look-ups of the same batch still claim their messages and find their customers."""
    engine = make_engine(database_url)
    bookkeeping = Bookkeeping(engine)
    await bookkeeping.before_routing(TrackMessage(messageId="m-link", userId="u-7", event="page_viewed"))  # links u-7
    broken = Handled(
        "c-8",
        JourneyEvent(id="m-broken", type="page_viewed", properties={"not_json": object()}),
        MessageResult(message_id="m-broken", type="track", customer_id="c-8"),
    )
    failed, looked_up = await asyncio.gather(
        bookkeeping.after_routing(broken),
        bookkeeping.before_routing(TrackMessage(messageId="m-next", userId="u-7", event="page_viewed")),
        return_exceptions=True,
    )
    assert isinstance(failed, Exception)
    assert not isinstance(looked_up, BaseException) and looked_up.customer_id == "u-7" and looked_up.claim
    with Session(engine) as session:
        assert session.get(ProcessedMessage, "m-next") is not None  # the claim was committed
        assert session.get(ProcessedMessage, "m-broken") is None
        assert session.exec(select(Event).where(col(Event.event_id) == "m-broken")).first() is None
    engine.dispose()


async def test_the_bookkeeping_stores_rows_as_the_orm_does(database_url: str) -> None:
    """The bookkeeping writes on the driver's cursor (``storage.driver``): what it stores reads back exactly as
    what the ORM stored, times and nested non-ASCII properties included."""
    engine = make_engine(database_url)
    at = datetime(2026, 11, 30, 9, 15, 7, 123456, tzinfo=UTC)
    properties = {"city": "München", "tags": ["vip", "生日"], "amount": 12.5, "nested": {"a": [1, None]}}
    record_event(engine, "c-orm", JourneyEvent(id="by-orm", type="purchase", properties=properties, timestamp=at))
    event = JourneyEvent(id="by-api", type="purchase", properties=properties, timestamp=at)
    answer = MessageResult(message_id="by-api", type="track", customer_id="c-api")
    await Bookkeeping(engine).after_routing(Handled("c-api", event, answer))
    with Session(engine) as session:
        rows = {e.event_id: e for e in session.exec(select(Event))}
        stored = session.get(ProcessedMessage, "by-api")
    assert rows["by-api"].properties == rows["by-orm"].properties == properties
    assert rows["by-api"].occurred_at == rows["by-orm"].occurred_at
    assert rows["by-api"].occurred_at.replace(tzinfo=UTC) == at
    assert rows["by-api"].recorded_at is not None
    assert stored is not None and MessageResult.model_validate(stored.response) == answer
    engine.dispose()


def test_a_driver_insert_refuses_rows_missing_a_column_sqlalchemy_would_fill(database_url: str) -> None:
    engine = make_engine(database_url)
    table: Table = Event.__table__  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="recorded_at"):
        DriverInsert(insert(table), engine.dialect, ["event_id", "customer_id", "type", "properties", "occurred_at"])
    engine.dispose()


async def test_driver_selects_read_what_sqlalchemy_reads_for_any_number_of_keys(database_url: str) -> None:
    engine = make_engine(database_url)
    bookkeeping = Bookkeeping(engine)
    await asyncio.gather(*(bookkeeping.after_routing(_handled(f"m-{i}", f"c-{i}")) for i in range(5)))
    statement = select(ProcessedMessage.message_id, ProcessedMessage.response).where(
        col(ProcessedMessage.message_id).in_(bindparam("ids", expanding=True))
    )
    driver = DriverSelect(statement, engine.dialect, "ids")
    with engine.connect() as connection:
        for ids in (["m-0"], ["m-1", "m-2"], ["m-3", "absent", "m-4"], ["m-0"], [f"m-{i}" for i in range(5)]):
            expected = sorted(tuple(row) for row in connection.execute(statement, {"ids": ids}))
            assert sorted(driver.rows(connection, ids)) == expected
            assert all(isinstance(response, dict) for _, response in expected)
    with pytest.raises(ValueError, match="no parameter 'message_ids'"):
        DriverSelect(statement, engine.dialect, "message_ids")
    engine.dispose()


def _handled(message_id: str, customer_id: str) -> Handled:
    event = JourneyEvent(id=message_id, type="page_viewed", properties={"path": "/rx"})
    return Handled(customer_id, event, MessageResult(message_id=message_id, type="track", customer_id=customer_id))


async def test_the_bookkeeping_records_before_it_looks_up_in_one_call(database_url: str) -> None:
    """A copy of a message that arrives while its first copy is being recorded is answered as the duplicate it
    is, so it is not sent to the journeys a second time."""
    engine = make_engine(database_url)
    bookkeeping = Bookkeeping(engine)
    copy = TrackMessage(messageId="m-7", userId="u-7", event="page_viewed")
    recorded, found = await asyncio.gather(
        bookkeeping.after_routing(_handled("m-7", "c-7")), bookkeeping.before_routing(copy)
    )
    assert recorded == []  # no segment counts page views: nothing changed
    assert found.first is not None and found.first.message_id == "m-7" and found.customer_id == "c-7"
    engine.dispose()


async def test_first_events_of_new_users_make_each_a_customer_once(database_url: str) -> None:
    """A batch of first contacts (an import, a launch): each new user id becomes its own customer, linked once
    however many of its messages arrive together; a profile that existed under that id keeps its traits."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(Customer(id="u-old-profile", traits={"timezone": "Europe/Paris"}))
        session.commit()
    bookkeeping = Bookkeeping(engine)
    users = ["u-new-1", "u-new-2", "u-new-1", "u-old-profile"]
    found = await asyncio.gather(
        *(
            bookkeeping.before_routing(TrackMessage(messageId=f"m-{i}", userId=user, event="page_viewed"))
            for i, user in enumerate(users)
        )
    )
    assert [f.customer_id for f in found] == users
    with Session(engine) as session:
        identities = sorted((i.value, i.customer_id) for i in session.exec(select(CustomerIdentity)))
        customers = {c.id: c.traits for c in session.exec(select(Customer))}
    assert identities == [(u, u) for u in ("u-new-1", "u-new-2", "u-old-profile")]
    assert customers == {"u-new-1": {}, "u-new-2": {}, "u-old-profile": {"timezone": "Europe/Paris"}}
    again = await bookkeeping.before_routing(TrackMessage(messageId="m-9", userId="u-new-2", event="page_viewed"))
    assert again.customer_id == "u-new-2"
    engine.dispose()


async def test_a_failed_record_fails_its_own_request_not_the_look_ups_beside_it(database_url: str) -> None:
    engine = make_engine(database_url)
    _table_of(Event).drop(engine)  # the records of this call cannot be written
    bookkeeping = Bookkeeping(engine)
    outcomes = await asyncio.gather(
        bookkeeping.after_routing(_handled("m-8", "c-8")),
        bookkeeping.before_routing(TrackMessage(messageId="m-9", userId="u-9", event="page_viewed")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], Exception)
    assert not isinstance(outcomes[1], BaseException) and outcomes[1].customer_id == "u-9"
    with Session(engine) as session:
        assert session.get(ProcessedMessage, "m-8") is None, "nothing half-written: the answer went with the event"
    engine.dispose()


def _table_of(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


async def test_racing_attempts_of_one_send_record_it_once(database_url: str) -> None:
    """Retries of the same send (same business key) arriving at once leave one ledger row per channel, sent."""
    engine = make_engine(database_url)
    delivery = DeliveryActivities(engine, TemplateRenderer(ROOT / "journeys" / "templates"))
    send = SendMessageInput(
        idempotency_key="pharmacy_refill/c-3/rx-9/1/notify_ready/0",
        journey="pharmacy_refill",
        step="notify_ready",
        customer_id="c-3",
        channels=["push"],
        template="refill_ready",
        category="transactional",
        variables={"vars": {"store_name": "Elm St"}},
    )
    env = ActivityEnvironment()
    results = await asyncio.gather(*(env.run(delivery.send_message, send) for _ in range(8)))
    assert all(r.delivered == ["push"] for r in results)
    with Session(engine) as session:
        rows = list(session.exec(select(Delivery)))
    assert [(r.channel, r.status) for r in rows] == [("push", "sent")]
    assert "Elm St" in rows[0].content["body"]
    engine.dispose()


async def test_pharmacy_reminder_lands_in_the_configured_database(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        assert j.engine.url.render_as_string(hide_password=False) == database_url
        j.add_customer("c-4", first_name="Ana", timezone="America/Chicago")
        now = await time_env.get_current_time()
        await j.send(
            "c-4", "prescription_filled", rx_id="rx-4", days_supply=30, refills_remaining=0, filled_at=now.isoformat()
        )
        await j.settled("pharmacy_refill", "c-4", "rx-4")
        await time_env.sleep(timedelta(days=28))
        await j.settled("pharmacy_refill", "c-4", "rx-4", until=lambda s: s.step == "await_order")
        assert sorted((d.step, d.channel, d.status) for d in j.outbox("c-4")) == [
            ("remind_refill", "email", "sent"),
            ("remind_refill", "push", "sent"),
        ]
