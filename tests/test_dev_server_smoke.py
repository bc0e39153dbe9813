"""The engine on a real dev server: ops find journeys by their search attributes, and read where they rest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from testkit.harness import running_journeys


@pytest.mark.parametrize("search_by_step", [False, True], ids=["default", "search-by-step"])
async def test_journey_visible_by_search_attributes(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str, search_by_step: bool
) -> None:
    """By default a journey is found by customer and name (set at start, free) and its page names its step and
    next wake-up (current details); ``JOURNEYS_SEARCH_BY_STEP`` also upserts step, status and wake-up."""
    setting = {"search_by_step": search_by_step}
    async with running_journeys(
        dev_env.client, tmp_path, task_queue, database_url=database_url, settings_overrides=setting
    ) as j:
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
        assert state.step == "wait_for_reminder" and state.wait_until is not None
        query = f"JourneyCustomerId = 'ops-1' AND JourneyName = 'pharmacy_refill' AND TaskQueue = '{task_queue}'"
        if search_by_step:
            query += " AND JourneyStatus = 'waiting'"
        found = []
        for _ in range(100):  # visibility is eventually consistent
            found = [w async for w in dev_env.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        assert len(found) == 1
        handle = j.handle("pharmacy_refill", "ops-1", "rx-ops")
        described = await handle.describe()
        assert "rx-ops" not in described.id  # the instance key is hashed: workflow ids are not encrypted
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "at step `wait_for_reminder`" in metadata.current_details
        assert f"until {state.wait_until.isoformat(timespec='minutes')}" in metadata.current_details
        if search_by_step:
            assert described.typed_search_attributes.get(sa.STEP) == "wait_for_reminder"
            assert described.typed_search_attributes.get(sa.WAIT_UNTIL) == state.wait_until
        else:
            assert described.typed_search_attributes.get(sa.STEP) is None
            assert described.typed_search_attributes.get(sa.STATUS) is None
