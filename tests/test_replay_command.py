"""``journeys replay``: real histories from a dev server, replayed against today's code and a changed one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

import starter.commands.replay as replay_command
from starter.cli import main
from testkit.harness import running_journeys


@workflow.defn(name="Journey", sandboxed=False)
class ChangedJourney:
    """A careless edit: the journey now sleeps before it loads the profile, a command the history lacks."""

    @workflow.run
    async def run(self, input: dict[str, Any]) -> None:
        await workflow.sleep(timedelta(minutes=1))

    @workflow.signal(name="event")
    def on_event(self, event: dict[str, Any]) -> None:
        pass


async def test_replay_passes_today_and_catches_a_non_deterministic_change(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    customer = f"replay-{uuid.uuid4().hex[:8]}"
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await j.send(
            customer,
            "prescription_filled",
            rx_id="rx-r",
            days_supply=30,
            refills_remaining=0,
            filled_at=(datetime.now(UTC) - timedelta(days=1)).isoformat(),
        )
        await j.settled("pharmacy_refill", customer, "rx-r")
    query = f"JourneyCustomerId = '{customer}'"
    for _ in range(200):  # visibility is eventually consistent
        if [w async for w in dev_env.client.list_workflows(query)]:
            break
        await asyncio.sleep(0.1)

    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.delenv("JOURNEYS_CODEC_KEYS", raising=False)
    assert await asyncio.to_thread(main, ["replay", "--query", query]) == 0
    assert "replayed 1 histories: 0 failed" in capsys.readouterr().out

    monkeypatch.setattr(replay_command, "WORKFLOWS", (ChangedJourney,))
    assert await asyncio.to_thread(main, ["replay", "--query", query]) == 1
    out = capsys.readouterr().out
    assert f"NON-DETERMINISTIC journey/pharmacy_refill/{customer}/" in out
    assert "replayed 1 histories: 1 failed" in out
