"""Several ``journeys api`` processes on one database: a message sent to two of them at once is routed once.

A backend whose request timed out sends it again, and behind a load balancer the retry may reach another API
process while the first is still handling it. Both processes are real (``python -m starter.cli api``, each on a
free port, one shared database: a SQLite file, or PostgreSQL under scripts/test); each message goes to both at
the same moment, and the journey's own history shows how many signals reached it. No worker runs: the signals
are in the history whether or not a worker handles them.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.ids import journey_workflow_id
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
