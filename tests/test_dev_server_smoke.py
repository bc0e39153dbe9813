"""The engine on a real dev server: ops find journeys by their search attributes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from testkit.harness import running_journeys


async def test_journey_visible_by_search_attributes(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        filled = datetime.now(UTC) - timedelta(days=1)
        await j.send(
            "ops-1",
            "prescription_filled",
            rx_id="rx-ops",
            days_supply=30,
            refills_remaining=0,
            filled_at=filled.isoformat(),
        )
        state = await j.settled("pharmacy_refill", "ops-1", "rx-ops")
        assert state.step == "wait_for_reminder"
        query = "JourneyCustomerId = 'ops-1' AND JourneyName = 'pharmacy_refill' AND JourneyStatus = 'waiting'"
        found = []
        for _ in range(100):  # visibility is eventually consistent
            found = [w async for w in dev_env.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        assert len(found) == 1
        described = await j.handle("pharmacy_refill", "ops-1", "rx-ops").describe()
        assert described.typed_search_attributes.get(sa.STEP) == "wait_for_reminder"
        assert described.typed_search_attributes.get(sa.WAIT_UNTIL) == state.wait_until
        assert "rx-ops" not in described.id  # the instance key is hashed: workflow ids are not encrypted
