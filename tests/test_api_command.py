"""``journeys api`` as deployed (its own process, configured from the environment) and ``journeys track``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from contracts.ids import journey_workflow_id
from starter.cli import main
from storage import make_engine
from storage.tables import Event
from testkit.processes import free_port, journeys_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("workers", [1, 2])
async def test_api_process_serves_events_and_stops_on_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, workers: int, database_url: str
) -> None:
    """One process, or several on one port (``--workers``): each answers, and SIGTERM stops them all."""
    make_engine(database_url).dispose()  # `journeys setup`'s part: the API checks the schema, never creates it
    port = free_port()
    env = journeys_env()
    env |= {
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_API_KEYS": "deployed-key",
        "JOURNEYS_API_PORT": str(port),
    }
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "starter.cli", "api", "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

        async def track(customer: str) -> httpx.Response:
            # A connection of its own, so that with several processes more than one of them answers.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                body = {"userId": customer, "event": "refill_ordered", "properties": {"rx_id": "rx-1"}}
                return await fresh.post("/v1/track", auth=("deployed-key", ""), json=body)

        for response in await asyncio.gather(*(track(f"deployed-{i}") for i in range(8))):
            assert response.status_code == 200, response.text
            assert [r["action"] for r in response.json()["journeys"]] == ["not_in_journey"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        with pytest.raises(httpx.ConnectError):  # every process is gone: nothing listens any more
            await track("after-stop")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_api_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JOURNEYS_API_KEYS", "")
    assert main(["api"]) == 2
    assert "JOURNEYS_API_KEYS is empty" in capsys.readouterr().err


async def test_track_command_still_routes_events(
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["track", "track-cli-1", "refill_ordered", "rx_id=rx-1"]) == 0
    expected = journey_workflow_id("pharmacy_refill", "track-cli-1", "rx-1")
    assert f"pharmacy_refill: not_in_journey ({expected})" in capsys.readouterr().out
    # The event is recorded for the report, as the event API records it.
    engine = make_engine(database_url)
    with Session(engine) as session:
        recorded = [(e.customer_id, e.type) for e in session.exec(select(Event))]
    engine.dispose()
    assert recorded == [("track-cli-1", "refill_ordered")]
