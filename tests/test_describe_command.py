"""``journeys describe CUSTOMER``: what ops see of one customer's journeys."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.cli import main
from testkit.harness import running_journeys


async def test_describe_lists_each_journey_with_its_step_wait_and_sends(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    customer = f"describe-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.delenv("JOURNEYS_CODEC_KEYS", raising=False)
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        # Filled 28 days ago with 30 days' supply: the reminder is due now, then it waits for the order.
        for rx, days_ago in (("rx-1", 1), ("rx-2", 28)):
            await j.send(
                customer,
                "prescription_filled",
                rx_id=rx,
                days_supply=30,
                refills_remaining=1,
                filled_at=(datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
            )
        first = await j.settled("pharmacy_refill", customer, "rx-1")
        second = await j.settled("pharmacy_refill", customer, "rx-2", until=lambda s: s.step == "await_order")
        query = f"JourneyCustomerId = '{customer}'"
        for _ in range(200):  # visibility is eventually consistent
            if len([w async for w in dev_env.client.list_workflows(query)]) == 2:
                break
            await asyncio.sleep(0.1)

        assert await asyncio.to_thread(main, ["describe", customer, "--json"]) == 0
        found = {d["step"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
        assert set(found) == {"wait_for_reminder", "await_order"}
        waiting = found["wait_for_reminder"]
        assert waiting["journey"] == "pharmacy_refill"
        assert waiting["execution"] == "Running"
        assert datetime.fromisoformat(waiting["wait_until"]) == first.wait_until
        ordering = found["await_order"]
        assert ordering["waiting_for"] == ["refill_ordered"]
        assert [s["step"] for s in ordering["sends"]] == [s.step for s in second.sends] == ["remind_refill"]

        assert await asyncio.to_thread(main, ["describe", customer]) == 0
        text = capsys.readouterr().out
        assert "waits for: refill_ordered until" in text
        assert "sent:      remind_refill #1" in text
        assert "rx-1" not in text  # instance keys are hashed in ids, and not printed

    assert await asyncio.to_thread(main, ["describe", "nobody-" + customer]) == 0
    assert "no journeys for customer" in capsys.readouterr().out
