"""Fault injection with real processes on loopback: journeys finish, each message once, whatever dies.

A dev server on a SQLite file and ``journeys worker`` processes, all started here. Workers are SIGKILLed at
random moments (and replaced), the dev server is stopped and started again on the same file mid-run, and a
backend keeps sending events, retrying with the same event id when the server is away. In the random-kill run
the messages go to a real local HTTP provider (the signed webhook channel) that answers 503 with and without
Retry-After, then hangs past the workers' HTTP timeout, for a while, then recovers. Afterwards every journey has
completed, every expected message is in the ledger exactly once and sent, nothing is pending, and the provider
took each message exactly once, under the one idempotency key the ledger holds for it.

Bounded: a few dozen journeys whose waits are seconds long; each test takes well under two minutes.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.channels.webhook_channel import SIGNATURE_HEADER, verify_signature
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneySnapshot
from runtime.search_attributes import register_search_attributes
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import Delivery, make_engine
from testkit.harness import write_journeys
from testkit.processes import DevServer, Workers
from tests.delivery_fakes import Answer, FakeProvider, Request, provider_server

pytestmark = pytest.mark.fault

JOURNEY = "chaos_order"
STEPS = ["confirm", "followup", "thanks"]
"""The messages every customer must get, once each."""

WEBHOOK_SECRET = "fault-injection-secret"
HTTP_TIMEOUT_SECONDS = 1.0
"""The workers' HTTP client timeout in the provider-outage run; the provider's hang is longer."""
HANG_SECONDS = 3.0


def _map(channel: str) -> str:
    return f"""\
name: {JOURNEY}
version: 1
description: An order followed to delivery; short waits so a test can run many at once.
entry:
  events: [order_placed]
  reentry: after_end
steps:
  - id: confirm
    send: {{channel: {channel}, template: chaos_note, category: transactional}}
  - id: pause
    wait: {{duration: 3s}}
  - id: followup
    send: {{channel: {channel}, template: chaos_note, category: transactional}}
  - id: await_delivery
    wait_for: {{events: [order_delivered], timeout: 1h, on_timeout: end}}
  - id: thanks
    send: {{channel: {channel}, template: chaos_note, category: transactional}}
"""


TEMPLATE = """\
email:
  subject: About your order
  text: "Order news."
  html: "<p>Order news.</p>"
"""


@asynccontextmanager
async def system(
    tmp_path: Path, database_url: str, workers: int, *, channel: str = "email", extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[DevServer, Workers, Client]]:
    write_journeys(tmp_path, {JOURNEY: _map(channel)}, {"chaos_note": TEMPLATE})
    server = DevServer(tmp_path)
    server.start()
    pool: Workers | None = None
    try:
        client = await server.client()
        await register_search_attributes(client)
        make_engine(database_url).dispose()  # with the search attributes, what `journeys setup` does
        pool = Workers(tmp_path, server.address, f"fault-{uuid.uuid4().hex[:8]}", database_url, extra_env or {})
        for _ in range(workers):
            pool.start()
        yield server, pool, client
    finally:
        if pool is not None:
            pool.stop_all()
        server.stop()


class Outage:
    """A provider's bad spell, as real ones have them: every request gets the current phase's answer.

    The phases: 503 with ``Retry-After`` (the delivery activity asks Temporal to retry after that long), 503
    without (Temporal's backoff), and a hang longer than the workers' HTTP timeout after which the provider
    takes the message anyway, so the worker's retry must not make it arrive twice. ``None`` is healthy.
    """

    PHASES = ("503 retry-after", "503", "hang")

    def __init__(self) -> None:
        self.phase: str | None = None
        self.answered: Counter[str] = Counter()
        self.bad_signatures = 0
        self._lock = threading.Lock()

    def answer(self, request: Request) -> Answer:
        """Runs in the provider server's request thread."""
        signature = request.headers.get(SIGNATURE_HEADER.lower(), "")
        phase = self.phase
        with self._lock:
            self.answered[phase or "healthy"] += 1
            if not verify_signature(WEBHOOK_SECRET, signature, request.body):
                self.bad_signatures += 1
                return 400, {}, {"error": "bad signature"}
        if phase == "503 retry-after":
            return 503, {"Retry-After": "1"}, {"error": "overloaded"}
        if phase == "503":
            return 503, {}, {"error": "unavailable"}
        if phase == "hang":
            time.sleep(HANG_SECONDS)
        return 200, {"X-Message-Id": f"wh-{uuid.uuid4().hex}"}, {"received": True}

    async def run(self, provider: FakeProvider) -> None:
        """From the first message on, each phase in turn for at least 3 s and until it has answered 3 requests
        (at most 30 s: retries keep coming, only slower), then healthy again."""
        await _until(lambda: bool(provider.requests), timeout=120)
        loop = asyncio.get_running_loop()
        for phase in self.PHASES:
            self.phase = phase
            ends = loop.time() + 3

            def over(p: str = phase, e: float = ends) -> bool:
                return self.answered[p] >= 3 and loop.time() >= e

            await _until(over, timeout=30)
        self.phase = None


async def _until(condition: Callable[[], bool], *, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)


async def _send_until_accepted(journeys: JourneyClient, customer: str, event: JourneyEvent) -> None:
    """What a backend does: retry the same event (same id) until Temporal has it."""
    for _ in range(600):
        try:
            routed = await journeys.send_event(customer, event)
            if all(r.action in ("started_or_signalled", "signalled") for r in routed):
                return
        except RPCError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"event {event.type} of {customer} was never accepted")


async def _waiting_for_delivery(journeys: JourneyClient, customer: str) -> None:
    """Until the journey waits for ``order_delivered`` (an event it is not waiting for is dropped, by design)."""
    handle = journeys.temporal.get_workflow_handle(journey_workflow_id(JOURNEY, customer))
    for _ in range(1200):
        try:
            state = await handle.query("state", result_type=JourneySnapshot, rpc_timeout=timedelta(seconds=5))
            if state.step == "await_delivery":
                return
        except (RPCError, WorkflowQueryFailedError):
            pass  # no worker alive this instant, or the server is away
        await asyncio.sleep(0.25)
    raise AssertionError(f"the journey of {customer} never reached await_delivery")


async def _customer(journeys: JourneyClient, customer: str, rng: random.Random) -> None:
    await _send_until_accepted(journeys, customer, JourneyEvent(id=uuid.uuid4().hex, type="order_placed"))
    await _waiting_for_delivery(journeys, customer)
    await asyncio.sleep(rng.uniform(0, 2))
    delivered = JourneyEvent(id=uuid.uuid4().hex, type="order_delivered")
    await _send_until_accepted(journeys, customer, delivered)
    if rng.random() < 0.3:  # a backend that retries a delivered event anyway: it must have no effect
        await _send_until_accepted(journeys, customer, delivered)


async def _all_completed(client: Client, customers: list[str], timeout: float) -> list[str]:
    """The customers whose journey has not completed within ``timeout`` seconds (empty when all have)."""
    pending = list(customers)
    deadline = asyncio.get_running_loop().time() + timeout
    while pending and asyncio.get_running_loop().time() < deadline:
        still = []
        for customer in pending:
            try:
                described = await client.get_workflow_handle(journey_workflow_id(JOURNEY, customer)).describe()
                if described.status != WorkflowExecutionStatus.COMPLETED:
                    still.append(customer)
            except RPCError:
                still.append(customer)
        pending = still
        if pending:
            await asyncio.sleep(1)
    return pending


def _assert_each_message_once(database_url: str, customers: list[str]) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        rows = list(session.exec(select(Delivery).where(Delivery.journey == JOURNEY)))
    engine.dispose()
    per_message = Counter((r.customer_id, r.step) for r in rows)
    expected = {(c, step) for c in customers for step in STEPS}
    assert set(per_message) == expected, f"missing: {sorted(expected - set(per_message))[:5]}"
    assert [key for key, n in per_message.items() if n != 1] == []
    assert Counter(r.status for r in rows) == Counter({"sent": len(expected)})


def _assert_provider_took_each_once(
    provider: FakeProvider, outage: Outage, database_url: str, customers: list[str]
) -> None:
    """Counted at the provider: each (customer, step) delivered once, under the ledger's key for it."""
    assert all(outage.answered[phase] > 0 for phase in Outage.PHASES), f"no outage seen: {dict(outage.answered)}"
    assert outage.bad_signatures == 0
    per_message = Counter((r.json()["customer_id"], r.json()["step"]) for r in provider.delivered)
    expected = {(c, step) for c in customers for step in STEPS}
    assert set(per_message) == expected, f"never delivered: {sorted(expected - set(per_message))[:5]}"
    assert [key for key, n in per_message.items() if n != 1] == []
    engine = make_engine(database_url)
    with Session(engine) as session:
        ledger = {r.delivery_key for r in session.exec(select(Delivery).where(Delivery.journey == JOURNEY))}
    engine.dispose()
    assert {r.headers["idempotency-key"] for r in provider.delivered} == ledger


async def test_workers_killed_at_random_server_restarted_and_provider_down_lose_and_repeat_nothing(
    tmp_path: Path, database_url: str
) -> None:
    rng = random.Random(6)
    customers = [f"chaos-{i}" for i in range(30)]
    outage = Outage()
    with provider_server() as provider:
        provider.answer = outage.answer
        env = {
            "JOURNEYS_WEBHOOK_PROVIDER": "http",
            "JOURNEYS_WEBHOOK_URL": f"{provider.url}/hooks/journeys",
            "JOURNEYS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "JOURNEYS_HTTP_TIMEOUT_SECONDS": str(HTTP_TIMEOUT_SECONDS),
        }
        async with system(tmp_path, database_url, workers=2, channel="webhook", extra_env=env) as (
            server,
            workers,
            client,
        ):
            journeys = JourneyClient(
                client, load_catalog(tmp_path / "journeys"), task_queue=workers.env["JOURNEYS_TASK_QUEUE"]
            )
            backend = asyncio.gather(*(_customer(journeys, c, rng) for c in customers))
            supervisor = asyncio.create_task(workers.supervise(2))
            faults = asyncio.create_task(outage.run(provider))
            loop = asyncio.get_running_loop()
            chaos_ends = loop.time() + 20
            restarted = False
            try:
                while loop.time() < chaos_ends:
                    await asyncio.sleep(rng.uniform(0.5, 2.5))
                    alive = workers.alive()
                    if alive:
                        workers.kill(rng.choice(alive))
                    if not restarted and loop.time() > chaos_ends - 12:
                        server.stop()
                        await asyncio.sleep(2)
                        server.start()
                        restarted = True
                await backend
                await faults
                assert restarted and workers.killed >= 5
                # A send killed mid-flight is retried after its heartbeat timeout (15 s), one that met the
                # outage after Temporal's backoff: allow for a few of those.
                assert await _all_completed(client, customers, timeout=150) == []
            finally:
                supervisor.cancel()
                faults.cancel()
    _assert_each_message_once(database_url, customers)
    _assert_provider_took_each_once(provider, outage, database_url, customers)


async def test_one_of_three_workers_dies_and_the_others_finish_its_journeys(tmp_path: Path, database_url: str) -> None:
    rng = random.Random(7)
    customers = [f"trio-{i}" for i in range(30)]
    async with system(tmp_path, database_url, workers=3) as (_server, workers, client):
        journeys = JourneyClient(
            client, load_catalog(tmp_path / "journeys"), task_queue=workers.env["JOURNEYS_TASK_QUEUE"]
        )
        backend = asyncio.gather(*(_customer(journeys, c, rng) for c in customers))
        await asyncio.sleep(4)  # journeys are spread over the three workers' caches by now
        workers.kill(workers.alive()[0])
        await backend
        assert len(workers.alive()) == 2, f"a worker exited on its own:\n{workers.log_tail()}"
        assert await _all_completed(client, customers, timeout=150) == []
    _assert_each_message_once(database_url, customers)
