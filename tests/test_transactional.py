"""Channel-aligned transactional journeys, every path: orders, statements, spending alerts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.journey import JourneySnapshot
from testkit.harness import Journeys, running_journeys
from tests.test_lifecycle import CONTACT


def fresh() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def sent(j: Journeys, customer_id: str, journey: str) -> list[tuple[str, str]]:
    return [(d.template, d.channel) for d in j.outbox(customer_id) if d.journey == journey]


def resting(step: str) -> Callable[[JourneySnapshot], bool]:
    return lambda s: s.step == step and s.status == "waiting"


def ended(s: JourneySnapshot) -> bool:
    return s.status in ("completed", "exited", "cooldown")


async def test_order_confirmed_and_shipped_by_email_arrived_by_sms_once(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = fresh()
        j.add_customer(c, first_name="Lea", **CONTACT)
        routed = await j.send(c, "order_placed", order_id="o1", amount=42.5)
        # An order starts (or reaches) these two; lapsed_rescue, whose goal it is, has no journey for her to signal.
        assert {r.journey for r in routed if r.action == "started_or_signalled"} == {"order_updates", "lifecycle"}
        await j.settled("order_updates", c, "o1", until=resting("await_shipment"))
        confirmation = j.outbox(c)[0]
        assert (confirmation.template, confirmation.channel, confirmation.category) == (
            "order_confirmed",
            "email",
            "transactional",
        )
        assert "o1" in confirmation.content["subject"] and "42.50" in confirmation.content["text"]

        await j.send(c, "order_shipped", order_id="o1", carrier="UPS")
        await j.settled("order_updates", c, "o1", until=resting("await_delivery"))
        assert "UPS" in next(d for d in j.outbox(c) if d.template == "shipment_confirmed").content["text"]
        await j.send(c, "package_delivered", order_id="o1")
        state = await j.settled("order_updates", c, "o1", until=ended)
        assert (state.status, state.end_reason) == ("cooldown", "reached the end")
        assert sent(j, c, "order_updates") == [
            ("order_confirmed", "email"),
            ("shipment_confirmed", "email"),
            ("package_arrived", "sms"),
        ]

        # The backend sends the same order again (a new event id): within the cooldown it confirms nothing.
        await j.send(c, "order_placed", order_id="o1", amount=42.5)
        await j.settled("order_updates", c, "o1", until=ended)
        assert len(sent(j, c, "order_updates")) == 3


async def test_order_not_shipped_or_not_delivered_ends_after_thirty_days(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = fresh()
        j.add_customer(c, **CONTACT)
        await j.send(c, "order_placed", order_id="o2")
        await j.send(c, "order_placed", order_id="o3")
        await j.settled("order_updates", c, "o2", until=resting("await_shipment"))
        await j.settled("order_updates", c, "o3", until=resting("await_shipment"))
        await j.send(c, "order_shipped", order_id="o3")
        await j.settled("order_updates", c, "o3", until=resting("await_delivery"))
        await time_env.sleep(timedelta(days=30, hours=1))
        for order in ("o2", "o3"):
            state = await j.settled("order_updates", c, order, until=ended)
            assert state.end_reason == "reached the end"
        templates = [d.template for d in j.outbox(c) if d.journey == "order_updates"]
        assert sorted(templates) == ["order_confirmed", "order_confirmed", "shipment_confirmed"]


async def test_cancelled_order_exits_at_once(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = fresh()
        j.add_customer(c, **CONTACT)
        await j.send(c, "order_placed", order_id="o4")
        await j.settled("order_updates", c, "o4", until=resting("await_shipment"))
        await j.send(c, "order_cancelled", order_id="o4")
        state = await j.settled("order_updates", c, "o4", until=ended)
        assert state.end_reason == "exit event order_cancelled"
        await j.send(c, "order_shipped", order_id="o4")
        await time_env.sleep(timedelta(days=1))
        assert sent(j, c, "order_updates") == [("order_confirmed", "email")]


async def test_monthly_statement_by_email_one_per_statement(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = fresh()
        j.add_customer(c, first_name="Lea", **CONTACT)
        await j.send(c, "statement_ready", statement_id="s-2026-10", period="October 2026", balance=120.5)
        await j.send(c, "statement_ready", statement_id="s-2026-11", period="November 2026")
        for key in ("s-2026-10", "s-2026-11"):
            await j.settled("monthly_statement", c, key, until=ended)
        rows = [d for d in j.outbox(c) if d.journey == "monthly_statement"]
        assert sorted((d.channel, d.content["subject"]) for d in rows) == [
            ("email", "Your statement for November 2026"),
            ("email", "Your statement for October 2026"),
        ]
        assert any("120.50" in d.content["text"] for d in rows)


async def test_spending_limit_sms_only_for_opted_in_customers_at_most_daily(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        opted, silent = fresh(), fresh()
        j.add_customer(opted, spending_alerts=True, **CONTACT)
        j.add_customer(silent, **CONTACT)
        await j.send(opted, "spending_limit_near", percent_used=92)
        await j.send(silent, "spending_limit_near", percent_used=92)
        state = await j.settled("spending_limit", silent)
        assert (state.status, state.end_reason) == ("not_entered", "entry condition not met")
        await j.settled("spending_limit", opted, until=ended)
        assert sent(j, opted, "spending_limit") == [("spending_limit_near", "sms")]
        assert "92%" in j.outbox(opted)[0].content["text"]

        await j.send(opted, "spending_limit_near", percent_used=97)  # same day: absorbed by the cooldown
        await time_env.sleep(timedelta(days=1, hours=1))
        await j.send(opted, "spending_limit_near", percent_used=99)
        await j.settled("spending_limit", opted, until=ended)  # the next entry's run, once it has sent
        texts = [d.content["text"] for d in j.outbox(opted)]
        assert len(texts) == 2 and "99%" in texts[1]
        assert j.outbox(silent) == []
