"""Schema migrations: a database deployed before them is upgraded with every row kept, an empty one reaches head,
head matches storage/tables.py, and a worker or API refuses a database that ``journeys setup`` has not upgraded.

Every test takes ``database_url``, so ``scripts/test`` runs them on SQLite and again on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel
from temporalio.testing import WorkflowEnvironment

from contracts.errors import SchemaError
from starter.cli import main
from storage import Customer, make_engine
from storage.schema import BASELINE, BASELINE_TABLES, SchemaBehind, check, current, head, upgrade


def _when(name: str, *, nullable: bool = False, index: bool = False) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable, index=index)


def _text(name: str, length: int | None = None, **kw: Any) -> Column[Any]:
    return Column(name, String(length), nullable=kw.pop("nullable", False), **kw)


# Yesterday: storage/tables.py as `create_all` made it on main before migrations existed (issue 13), frozen here
# so that later changes to storage/tables.py do not move what "a database deployed then" means.
YESTERDAY = MetaData()
Table(
    "customer",
    YESTERDAY,
    _text("id", 200, primary_key=True),
    Column("traits", JSON, nullable=False),
    _when("updated_at"),
)
Table(
    "delivery",
    YESTERDAY,
    Column("id", Integer, primary_key=True),
    _text("idempotency_key", 400, index=True),
    _text("channel", 20),
    _text("delivery_key", 430, unique=True),
    _text("customer_id", 200, index=True),
    _text("journey", 64, index=True),
    _text("step", 64),
    _text("template", 64),
    _text("category", 20),
    _text("status", 20),
    _text("reason", nullable=True),
    _text("provider", 40),
    _text("provider_message_id", 200, nullable=True, index=True),
    Column("content", JSON, nullable=False),
    _when("created_at"),
    _when("updated_at"),
    _when("sent_at", nullable=True, index=True),
    Column("attempts", Integer, nullable=False),
    _text("receipt", 20, nullable=True),
    _when("delivered_at", nullable=True),
    _when("opened_at", nullable=True),
    _when("clicked_at", nullable=True),
)
Table(
    "consent",
    YESTERDAY,
    Column("id", Integer, primary_key=True),
    _text("customer_id", 200, index=True),
    _text("channel", 20),
    _text("category", 20),
    Column("granted", Boolean, nullable=False),
    _text("source", 40),
    _when("at"),
)
Table(
    "customeridentity",
    YESTERDAY,
    _text("kind", 20, primary_key=True),
    _text("value", 400, primary_key=True),
    _text("customer_id", 200, index=True),
    _when("linked_at"),
)
Table(
    "processedmessage",
    YESTERDAY,
    _text("message_id", 200, primary_key=True),
    _text("customer_id", 200),
    _text("kind", 20),
    Column("response", JSON, nullable=False),
    _when("received_at"),
)
Table(
    "event",
    YESTERDAY,
    Column("id", Integer, primary_key=True),
    _text("event_id", 200, unique=True),
    _text("customer_id", 200, index=True),
    _text("type", 128, index=True),
    Column("properties", JSON, nullable=False),
    _when("occurred_at", index=True),
    _when("recorded_at"),
)
Table(
    "journeyrun",
    YESTERDAY,
    _text("workflow_id", 400, primary_key=True),
    _text("journey", 64, index=True),
    _text("customer_id", 200, index=True),
    _text("status", 20),
    _text("step", 64, nullable=True),
    _text("end_reason", nullable=True),
    _when("entered_at", nullable=True),
    _when("goal_reached_at", nullable=True),
    Column("split_variants", JSON, nullable=False),
    _when("refreshed_at"),
)

AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ROWS: dict[str, list[dict[str, Any]]] = {
    "customer": [
        {"id": "c-1", "traits": {"first_name": "Zoë", "tags": ["vip"]}, "updated_at": AT},
        {"id": "c-2", "traits": {}, "updated_at": AT},
    ],
    "delivery": [
        {
            "id": 1,
            "idempotency_key": "journey/pharmacy_refill/c-1/abc/e-1/remind/1",
            "channel": "email",
            "delivery_key": "journey/pharmacy_refill/c-1/abc/e-1/remind/1#email",
            "customer_id": "c-1",
            "journey": "pharmacy_refill",
            "step": "remind",
            "template": "refill_reminder",
            "category": "transactional",
            "status": "sent",
            "reason": None,
            "provider": "smtp",
            "provider_message_id": "msg-1",
            "content": {"subject": "Time to refill"},
            "created_at": AT,
            "updated_at": AT,
            "sent_at": AT,
            "attempts": 1,
            "receipt": "opened",
            "delivered_at": AT,
            "opened_at": AT,
            "clicked_at": None,
        }
    ],
    "consent": [
        {"id": 1, "customer_id": "c-1", "channel": "sms", "category": "*", "granted": False, "source": "sms_stop"}
        | {"at": AT}
    ],
    "customeridentity": [
        {"kind": "email", "value": "zoe@example.test", "customer_id": "c-1", "linked_at": AT},
        {"kind": "anonymous_id", "value": "anon-9", "customer_id": "c-1", "linked_at": AT},
    ],
    "processedmessage": [
        {"message_id": "m-1", "customer_id": "c-1", "kind": "track", "response": {"journeys": []}, "received_at": AT}
    ],
    "event": [
        {
            "id": 1,
            "event_id": "e-1",
            "customer_id": "c-1",
            "type": "prescription_filled",
            "properties": {"rx_id": "rx-1", "days_supply": 30},
            "occurred_at": AT,
            "recorded_at": AT,
        }
    ],
    "journeyrun": [
        {
            "workflow_id": "journey/pharmacy_refill/c-1/abc",
            "journey": "pharmacy_refill",
            "customer_id": "c-1",
            "status": "waiting",
            "step": "wait_for_reminder",
            "end_reason": None,
            "entered_at": AT,
            "goal_reached_at": None,
            "split_variants": {"copy": "b"},
            "refreshed_at": AT,
        }
    ],
}


def _plain_engine(url: str) -> Any:
    return create_engine(url, poolclass=NullPool)


def _deployed_yesterday(url: str) -> None:
    """A database as today's code left it: ``create_all`` of yesterday's tables, rows in every one of them."""
    engine = _plain_engine(url)
    YESTERDAY.create_all(engine)
    with engine.begin() as connection:
        for table in YESTERDAY.sorted_tables:
            connection.execute(insert(table), ROWS[table.name])
    engine.dispose()


def _rows(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = _plain_engine(url)
    with engine.connect() as connection:
        found = {
            table.name: [dict(row._mapping) for row in connection.execute(select(table).order_by(*table.primary_key))]
            for table in YESTERDAY.sorted_tables
        }
    engine.dispose()
    return found


def _differences(url: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database and storage/tables.py: what a migration would do."""
    engine = _plain_engine(url)
    with engine.connect() as connection:
        found: list[Any] = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    return found


def test_yesterdays_frozen_copy_is_the_baseline_and_holds_rows_in_every_table() -> None:
    """The premise of the tests below: every table of the baseline is frozen here, with rows to lose."""
    assert set(YESTERDAY.tables) == set(ROWS) == BASELINE_TABLES
    assert all(ROWS.values())


def test_a_database_deployed_before_migrations_is_adopted_and_upgraded_keeping_every_row(database_url: str) -> None:
    _deployed_yesterday(database_url)
    before = _rows(database_url)
    assert sum(len(rows) for rows in before.values()) == sum(len(rows) for rows in ROWS.values())

    engine = make_engine(database_url, create=False)
    with pytest.raises(SchemaBehind):  # a worker would refuse it until `journeys setup` has run
        check(engine)
    change = upgrade(engine)
    assert (change.before, change.after, change.adopted) == (None, head(), True)
    assert str(change).startswith(f"database: tables made before migrations, stamped at {BASELINE}")
    check(engine)
    engine.dispose()

    assert _rows(database_url) == before
    assert _differences(database_url) == []  # the baseline stamped on it is what create_all had made
    engine = make_engine(database_url)  # what every command does: nothing left to do, the rows read back
    with Session(engine) as session:
        customer = session.get(Customer, "c-1")
        assert customer is not None and customer.traits == {"first_name": "Zoë", "tags": ["vip"]}
    engine.dispose()


def test_an_empty_database_is_upgraded_to_head_and_matches_the_tables(database_url: str) -> None:
    """Also the guard that a change to storage/tables.py comes with its migration (``python -m storage.migrations``)."""
    engine = make_engine(database_url, create=False)
    change = upgrade(engine)
    assert (change.before, change.after, change.adopted) == (None, head(), False)
    assert str(change) == f"database: upgraded from an empty database to {head()}"
    assert str(upgrade(engine)) == f"database: at head ({head()})"
    with engine.connect() as connection:
        assert current(connection) == head()
    engine.dispose()
    assert _differences(database_url) == [], 'storage/tables.py changed: python -m storage.migrations "what changed"'


def test_the_start_check_refuses_a_database_behind_in_one_line(database_url: str) -> None:
    engine = make_engine(database_url, create=False)
    with pytest.raises(SchemaBehind) as behind:
        check(engine)
    assert str(behind.value) == (
        f"the database schema is at no revision, this version of journeys needs revision {head()}: "
        "run `journeys setup` to upgrade it"
    )
    upgrade(engine)
    check(engine)
    engine.dispose()


def test_a_database_at_a_revision_this_version_does_not_know(database_url: str) -> None:
    """Upgraded by a newer version (a rollback): the older workers may start (migrations add), but this
    version cannot upgrade it and says so in one line."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    check(engine)
    with pytest.raises(SchemaError, match=r"from revision f00d: .*f00d"):
        upgrade(engine)
    engine.dispose()


def test_only_some_of_the_tables_and_no_revision_is_refused(database_url: str) -> None:
    engine = _plain_engine(database_url)
    YESTERDAY.tables["customer"].create(engine)
    engine.dispose()
    engine = make_engine(database_url, create=False)
    with pytest.raises(SchemaError, match="lacks consent, customeridentity, delivery, event, journeyrun"):
        upgrade(engine)
    assert "alembic_version" not in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize(
    "command", [["worker"], ["api", "--port", "0"], ["api", "--workers", "2", "--port", "0"]], ids=" ".join
)
def test_worker_and_api_refuse_a_database_setup_has_not_upgraded(
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    command: list[str],
) -> None:
    _deployed_yesterday(database_url)
    before = _rows(database_url)
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_API_KEYS", "k")
    monkeypatch.delenv("JOURNEYS_CODEC_KEYS", raising=False)
    assert main(command) == 1  # in the main thread: the API installs its signal handlers before it checks
    err = capsys.readouterr().err
    assert err == (
        f"journeys {command[0]}: the database schema is at no revision, this version of journeys needs revision "
        f"{head()}: run `journeys setup` to upgrade it\n"
    )
    assert _rows(database_url) == before  # refused, and nothing touched
    engine = _plain_engine(database_url)
    assert "alembic_version" not in inspect(engine).get_table_names()
    engine.dispose()


async def test_setup_upgrades_the_database_and_says_what_it_did(
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    _deployed_yesterday(database_url)
    before = _rows(database_url)
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.delenv("JOURNEYS_CODEC_KEYS", raising=False)
    assert await asyncio.to_thread(main, ["setup"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"database: tables made before migrations, stamped at {BASELINE}"), out
    assert await asyncio.to_thread(main, ["setup"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"database: at head ({head()})",
        "search attributes already registered",
        "segment refresh: schedule journeys-segment-refresh/journeys every 1h (updated)",
        "broadcast flu_shot_reminder: schedule journeys-broadcast/journeys/flu_shot_reminder, every year on "
        "September 1 at 10:00 in each customer's time zone (updated)",
    ]
    assert _rows(database_url) == before
