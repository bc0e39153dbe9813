"""Effectively once, with real processes: a worker SIGKILLed in the middle of a send, then restarted.

The worker is ``journeys worker`` in its own OS process against a real dev server, with the test's ledger
(SQLite, or PostgreSQL under scripts/test) and an HTTP email provider (Resend format) that answers slowly, so a
send is surely in flight when the kill lands. Afterwards every expected message has arrived, and no idempotency
key was delivered twice: the repeat of the interrupted request carried the same key and the provider dropped it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneyResult
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import Customer, Delivery, make_engine
from testkit.harness import write_journeys
from tests.delivery_fakes import FakeProvider, provider_server

MAP = """
name: onboarding
version: 1
entry: {events: [signup]}
steps:
  - id: welcome
    send: {channel: email, template: hello, category: transactional}
  - id: follow_up
    send: {channel: email, template: hello, category: transactional}
"""
TEMPLATE = "email:\n  subject: Hello\n  html: <p>Hello {{ profile.first_name }}</p>\n  text: Hello\n"
CUSTOMERS = [f"c{i}" for i in range(4)]


@pytest.fixture
def slow_provider() -> Iterator[FakeProvider]:
    with provider_server() as fake:
        fake.delay_seconds = 2.0
        yield fake


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "journeys"), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def _until(check: object, what: str, seconds: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_send_delivers_every_message_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, slow_provider: FakeProvider, database_url: str
) -> None:
    maps = write_journeys(tmp_path, {"onboarding": MAP}, {"hello": TEMPLATE})
    engine = make_engine(database_url)
    with Session(engine) as session:
        for c in CUSTOMERS:
            session.add(Customer(id=c, traits={"email": f"{c}@example.test", "first_name": c}))
        session.commit()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_JOURNEYS_DIR": str(maps),
        "JOURNEYS_EMAIL_PROVIDER": "http",
        "JOURNEYS_HTTP_EMAIL_URL": slow_provider.url,
        "JOURNEYS_HTTP_EMAIL_API_KEY": "test-key",
        "JOURNEYS_QUIET_HOURS_START": "00:00",
        "JOURNEYS_QUIET_HOURS_END": "00:00",
    }
    log = tmp_path / "worker.log"
    client = JourneyClient(dev_env.client, load_catalog(maps), task_queue=task_queue)
    worker = _worker(env, log)
    try:
        for c in CUSTOMERS:
            await client.send_event(c, JourneyEvent(id=f"signup-{c}", type="signup"))
        # A request has reached the provider, which is still "sending" it: kill the worker now.
        await _until(lambda: len(slow_provider.requests) > 0, "the first send to reach the provider")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        in_flight = {r.headers["idempotency-key"] for r in slow_provider.requests}
        with Session(engine) as session:
            pending = {d.delivery_key for d in session.exec(select(Delivery).where(Delivery.status == "pending"))}
        assert in_flight <= pending, "the killed sends were not yet recorded as sent"

        worker = _worker(env, log)
        for c in CUSTOMERS:
            handle = dev_env.client.get_workflow_handle(
                journey_workflow_id("onboarding", c, None), result_type=JourneyResult
            )
            result = await asyncio.wait_for(handle.result(), timeout=240)
            assert result.status == "completed", log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    expected = {f"{key}#email" for key in _keys(engine)}
    assert len(expected) == 2 * len(CUSTOMERS)
    delivered = Counter(r.headers["idempotency-key"] for r in slow_provider.delivered)
    assert set(delivered) == expected, "every expected message arrived"
    assert max(delivered.values()) == 1, "no idempotency key was delivered twice"
    requested = Counter(r.headers["idempotency-key"] for r in slow_provider.requests)
    assert all(requested[key] >= 2 for key in in_flight), "the interrupted sends were repeated, with their key"
    with Session(engine) as session:
        rows = list(session.exec(select(Delivery)))
        assert {(d.delivery_key, d.status) for d in rows} == {(k, "sent") for k in expected}
        assert all(d.attempts >= 2 for d in rows if d.delivery_key in in_flight)
    engine.dispose()


def _keys(engine: object) -> list[str]:
    with Session(engine) as session:  # type: ignore[arg-type]
        return [d.idempotency_key for d in session.exec(select(Delivery))]
