"""``journeys worker`` as deployed: configured from the environment, metrics for Prometheus, SIGTERM stops it."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.events import JourneyEvent
from contracts.journey import JourneySnapshot
from runtime.settings import Settings
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import make_engine
from testkit.processes import free_port, journeys_env
from workers.worker import delivery_queues

ROOT = Path(__file__).resolve().parent.parent


async def test_worker_runs_journeys_exports_metrics_and_stops_on_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    make_engine(database_url).dispose()  # `journeys setup`'s part: the worker checks the schema, never creates it
    metrics_port = free_port()
    env = journeys_env()
    env |= {
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_METRICS_PORT": str(metrics_port),
        "JOURNEYS_DELIVERY_TASK_QUEUE": f"{task_queue}-delivery",
        "JOURNEYS_DELIVERY_RATE_LIMITS": "sms=2,voice=0.5",
        "JOURNEYS_WORKER_MAX_CACHED_WORKFLOWS": "7",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", "worker", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        lines: list[str] = []
        while not lines or "worker running" not in lines[-1]:
            line = await asyncio.wait_for(process.stderr.readline(), 60)
            assert line, "worker exited:\n" + "".join(lines)
            lines.append(line.decode())
        assert f"{task_queue}-delivery-sms" in lines[-1]
        # The cache size reached the SDK's worker (bench.memory prints the size from this line).
        assert "(caching up to 7 journeys)" in lines[-1]

        journeys = JourneyClient(dev_env.client, load_catalog(ROOT / "journeys"), task_queue=task_queue)
        filled = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        event = JourneyEvent(
            id="w-1",
            type="prescription_filled",
            properties={"rx_id": "rx-w", "days_supply": 30, "refills_remaining": 0, "filled_at": filled},
        )
        [routed] = await journeys.send_event("worker-1", event)
        assert routed.workflow_id is not None
        handle = dev_env.client.get_workflow_handle(routed.workflow_id)
        for _ in range(300):
            state = await handle.query("state", result_type=JourneySnapshot)
            if state.status == "waiting":
                break
            await asyncio.sleep(0.05)
        assert state.step == "wait_for_reminder"

        async with httpx.AsyncClient() as http:
            metrics = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200
        assert "temporal_workflow_task" in metrics.text or "temporal_request" in metrics.text

        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        assert "worker stopped" in rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_delivery_rate_limits_are_checked() -> None:
    settings = Settings(delivery_task_queue="d", delivery_rate_limits="sms=1, voice=0.2")
    assert delivery_queues(settings) == {"d": None, "d-sms": 1.0, "d-voice": 0.2}
    assert delivery_queues(Settings(delivery_rate_limits="sms=1")) == {}
    with pytest.raises(ValueError, match="'sms=fast': write CHANNEL=PER_SECOND"):
        delivery_queues(Settings(delivery_task_queue="d", delivery_rate_limits="sms=fast"))
