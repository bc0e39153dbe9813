"""``journeys describe CUSTOMER``: what ops see of one customer's journeys."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from runtime.codec import AESGCMCodec, new_key_line, parse_keys
from runtime.connection import DATA_CONVERTER
from starter.cli import main
from testkit.harness import Journeys, running_journeys


def describe_against(
    dev_env: WorkflowEnvironment, database_url: str, monkeypatch: pytest.MonkeyPatch, *, codec_keys: str = ""
) -> None:
    """The environment the ``describe`` command reads: this test's server and database, these codec keys."""
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_CODEC_KEYS", codec_keys)


async def test_describe_lists_each_journey_with_its_step_wait_and_sends(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    customer = f"describe-{uuid.uuid4().hex[:8]}"
    describe_against(dev_env, database_url, monkeypatch)
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


async def _listed(client: Client, customer: str, count: int, status: str = "") -> None:
    query = f"JourneyCustomerId = '{customer}'" + (f" AND ExecutionStatus = '{status}'" if status else "")
    for _ in range(200):  # visibility is eventually consistent
        if len([w async for w in client.list_workflows(query)]) == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{query}: not {count} workflows")


async def _reminded(j: Journeys, customer: str) -> None:
    """A prescription whose supply runs out now: the reminder goes by push and email at once."""
    await j.send(
        customer,
        "prescription_filled",
        rx_id="rx-1",
        days_supply=30,
        refills_remaining=1,
        filled_at=(datetime.now(UTC) - timedelta(days=28)).isoformat(),
    )
    await j.settled("pharmacy_refill", customer, "rx-1", until=lambda s: s.step == "await_order")


async def test_an_ended_journey_still_shows_its_sends_from_the_ledger(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    customer = f"ended-{uuid.uuid4().hex[:8]}"
    describe_against(dev_env, database_url, monkeypatch)
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        await _reminded(j, customer)
        await j.send(customer, "prescription_cancelled", rx_id="rx-1")
        await j.handle("pharmacy_refill", customer, "rx-1").result()
        await _listed(dev_env.client, customer, 1, "Completed")

        assert await asyncio.to_thread(main, ["describe", customer, "--json"]) == 0
        [ended] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert ended["execution"] == "Completed"
        [send] = ended["sends"]
        assert (send["step"], send["visit"], send["outcome"]) == ("remind_refill", 1, "sent")
        assert sorted(send["delivered"]) == ["email", "push"]

        assert await asyncio.to_thread(main, ["describe", customer]) == 0
        text = capsys.readouterr().out
        assert "[Completed" in text and "sent:      remind_refill #1" in text


async def test_describe_without_the_workers_key_says_so_in_one_line(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    """The workers encrypt with 'acc-1'; ops run describe with only another key: the journey is still described
    (search attributes, ledger) with one line saying which key is missing, never a traceback."""
    customer = f"codec-{uuid.uuid4().hex[:8]}"
    workers_codec = AESGCMCodec(parse_keys(new_key_line("acc-1"), where="test"))
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=dataclasses.replace(DATA_CONVERTER, payload_codec=workers_codec),
    )
    describe_against(dev_env, database_url, monkeypatch, codec_keys=new_key_line("ops-1"))
    async with running_journeys(client, tmp_path, task_queue, database_url=database_url) as j:
        await _reminded(j, customer)
        await _listed(dev_env.client, customer, 1)

        assert await asyncio.to_thread(main, ["describe", customer]) == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and err == ""
        [note] = [line for line in out.splitlines() if "note:" in line]
        assert "payload was encrypted with key 'acc-1', which is not configured" in note
        assert "sent:      remind_refill #1" in out  # from the ledger
