"""Several ``journeys api`` processes on one database: a message sent to two of them at once is routed once.

A backend whose request timed out sends it again, and behind a load balancer the retry may reach another API
process while the first is still handling it. Both processes are real (``python -m starter.cli api``, each on a
free port, one shared database: a SQLite file, or PostgreSQL under scripts/test); each message goes to both at
the same moment, and the journey's own history shows how many signals reached it. No worker runs: the signals
are in the history whether or not a worker handles them. How a copy waits, and what happens to the claim of a
request that failed or of a process that died, is tested on the bookkeeping itself (``starter.api.claims``).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from starter.api import claims
from starter.api.bookkeeping import Bookkeeping, Handled
from starter.api.models import MessageResult, TrackMessage
from storage import make_engine
from testkit.processes import free_port, journeys_env

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "duplicates-key"
MESSAGES = 12


@asynccontextmanager
async def api_processes(env: dict[str, str], count: int) -> AsyncIterator[list[str]]:
    """``count`` API processes, each on its own free port; yields their base URLs once all answer."""
    processes: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        for _ in range(count):
            port = free_port()
            processes.append(
                await asyncio.create_subprocess_exec(
                    *[sys.executable, "-m", "starter.cli", "api"],
                    cwd=ROOT,
                    env=env | {"JOURNEYS_API_PORT": str(port)},
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=10) as http:
            for url, process in zip(urls, processes, strict=True):
                for _ in range(600):
                    assert process.returncode is None, f"the API process for {url} exited"
                    try:
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _signals(client: Client, workflow_id: str) -> list[str]:
    """The ids of the events signalled to the journey (the start's signal included), from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ids = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payload = event.workflow_execution_signaled_event_attributes.input.payloads[0]
            (decoded,) = await client.data_converter.decode([payload], [dict])
            ids.append(str(decoded["id"]))
    return ids


async def _at_once(clients: list[httpx.AsyncClient], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The same message to every process at the same moment; their answers."""
    responses = await asyncio.gather(*(c.post("/v1/track", json=body) for c in clients))
    for response in responses:
        assert response.status_code == 200, response.text
    return [r.json() for r in responses]


async def test_two_api_processes_given_the_same_message_at_once_route_it_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    make_engine(database_url).dispose()  # `journeys setup`'s part: the API checks the schema, never creates it
    env = journeys_env(
        JOURNEYS_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        JOURNEYS_TASK_QUEUE=task_queue,
        JOURNEYS_DATA_DIR=str(tmp_path),
        JOURNEYS_DATABASE_URL=database_url,
        JOURNEYS_API_KEYS=API_KEY,
    )
    run = uuid.uuid4().hex[:8]
    customers = [f"dup-{run}-{i}" for i in range(MESSAGES)]
    workflow_ids = [journey_workflow_id("pharmacy_refill", c, f"rx-{c}") for c in customers]
    async with api_processes(env, 2) as urls:
        clients = [httpx.AsyncClient(base_url=url, auth=(API_KEY, ""), timeout=30) for url in urls]
        try:
            for client in clients:  # a connection open to each, so neither request waits for a handshake
                await client.get("/healthz")
            for kind in ("prescription_filled", "refill_ordered"):  # a start, then a signal to a running journey
                for customer in customers:
                    properties: dict[str, Any] = {"rx_id": f"rx-{customer}"}
                    if kind == "prescription_filled":
                        properties |= {"days_supply": 30, "refills_remaining": 1, "filled_at": "2026-11-01"}
                    body = {"messageId": f"{kind}-{customer}", "userId": customer, "event": kind}
                    answers = await _at_once(clients, body | {"properties": properties})
                    # One process routed it; the other answered with the first answer, marked a duplicate.
                    assert sorted(a.get("duplicate", False) for a in answers) == [False, True], answers
                    assert answers[0]["journeys"] == answers[1]["journeys"]
        finally:
            for client in clients:
                await client.aclose()
    try:
        for customer, workflow_id in zip(customers, workflow_ids, strict=True):
            signalled = await _signals(dev_env.client, workflow_id)
            assert signalled == [f"prescription_filled-{customer}", f"refill_ordered-{customer}"], workflow_id
    finally:
        for workflow_id in workflow_ids:
            await dev_env.client.get_workflow_handle(workflow_id).terminate("test finished")


async def test_a_claim_is_answered_released_or_taken_over_when_its_process_died(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim's life without Temporal: one request holds it and the others wait; its answer ends the wait;
    a released claim is claimed again (the backend's retry is routed); an abandoned one is taken over."""
    engine = make_engine(database_url)
    bookkeeping = Bookkeeping(engine)

    def track(message_id: str) -> TrackMessage:
        return TrackMessage(messageId=message_id, userId="u-claims", event="page_viewed")

    first, copy = await asyncio.gather(
        bookkeeping.before_routing(track("m-1")), bookkeeping.before_routing(track("m-1"))
    )
    assert (first.claim is not None, first.claimed_elsewhere) == (True, False)
    assert (copy.claim, copy.claimed_elsewhere) == (None, True)
    waiting = asyncio.create_task(claims.first_answer(engine, "m-1"))
    answer = MessageResult(message_id="m-1", type="track", customer_id=first.customer_id)
    await bookkeeping.after_routing(Handled(first.customer_id, JourneyEvent(id="m-1", type="page_viewed"), answer))
    assert await waiting == answer
    assert (await bookkeeping.before_routing(track("m-1"))).first == answer

    failed = await bookkeeping.before_routing(track("m-2"))
    assert failed.claim is not None
    await claims.release(engine, "m-2", failed.claim)  # routing failed: nothing was routed
    retried = await bookkeeping.before_routing(track("m-2"))
    assert retried.claim is not None and retried.first is None

    monkeypatch.setattr(claims, "LEASE", timedelta(0))  # the holder of m-2's claim died long ago
    assert await claims.first_answer(engine, "m-2") is None
    taken = await bookkeeping.before_routing(track("m-2"))
    assert taken.claim is not None and taken.claim != retried.claim
    engine.dispose()
