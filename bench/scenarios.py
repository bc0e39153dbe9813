"""Simulated customers for the built-in journeys: what one customer does in a year, on the time-skipping server.

Each scenario drives one customer through one journey the way a real one would (a prescription filled monthly,
picked up on time most months, late once), so the histories counted by ``bench.cost`` and replayed by
``bench.replay`` are real ones. A map under ``journeys/`` without a scenario here is reported as such.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from contracts.journey import JourneySnapshot
from testkit.harness import Journeys

Scenario = Callable[[Journeys, WorkflowEnvironment, str], Awaitable[list[str]]]
"""Plays a year for one customer; returns the workflow ids it touched."""

YEAR = timedelta(days=365)


async def _settle(j: Journeys, journey: str, customer: str, key: str | None, step: str) -> JourneySnapshot:
    return await j.settled(
        journey, customer, key, until=lambda s: s.step == step or s.status in ("completed", "exited")
    )


async def pharmacy_refill(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """A 30-day prescription with 11 refills: reminder, order, ready, pickup each month; one pickup is late
    (voicemail, then picked up), so every step kind of the map runs."""
    journey, rx = "pharmacy_refill", f"rx-{customer}"
    j.add_customer(customer, first_name="Sam", timezone="America/Chicago")
    start = await env.get_current_time()
    await j.send(
        customer, "prescription_filled", rx_id=rx, days_supply=30, refills_remaining=11, filled_at=start.isoformat()
    )
    for month in range(12):
        state = await _settle(j, journey, customer, rx, "wait_for_reminder")
        if state.status != "waiting":
            break
        assert state.wait_until is not None
        await env.sleep(state.wait_until - await env.get_current_time() + timedelta(minutes=1))
        await _settle(j, journey, customer, rx, "await_order")
        await env.sleep(timedelta(hours=20))
        await j.send(customer, "refill_ordered", rx_id=rx)
        await _settle(j, journey, customer, rx, "await_ready")
        await env.sleep(timedelta(hours=6))
        await j.send(customer, "refill_ready", rx_id=rx, store_name="Elm St")
        await _settle(j, journey, customer, rx, "await_pickup")
        if month == 4:  # late once: the voicemail goes out, then the pickup
            await env.sleep(timedelta(days=5, hours=1))
            await _settle(j, journey, customer, rx, "await_late_pickup")
        else:
            await env.sleep(timedelta(days=1))
        now = await env.get_current_time()
        await j.send(customer, "refill_picked_up", rx_id=rx, picked_up_at=now.isoformat(), event_id=uuid.uuid4().hex)
    return [j.handle(journey, customer, rx).id]


async def birthday(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """Signs up with a birthday on the profile; a year passes (one greeting)."""
    j.add_customer(customer, first_name="Sam", birthday="1990-07-14", email=f"{customer}@example.invalid")
    await j.send(customer, "signed_up")
    await env.sleep(YEAR)
    return [j.handle("birthday", customer).id]


async def monthly_statement(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """Twelve statements, one a month (each statement its own journey instance)."""
    j.add_customer(customer, email=f"{customer}@example.invalid")
    ids = []
    for month in range(12):
        await j.send(customer, "statement_ready", statement_id=f"st-{month}")
        ids.append(j.handle("monthly_statement", customer, f"st-{month}").id)
        await env.sleep(timedelta(days=30))
    await env.sleep(YEAR - timedelta(days=360))
    return ids


async def spending_limit(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """An opted-in customer who nears the limit six times a year, twice on the same day."""
    j.add_customer(customer, spending_alerts=True, phone="+15555550100")
    for month in range(6):
        await j.send(customer, "spending_limit_near")
        if month == 2:
            await env.sleep(timedelta(hours=2))
            await j.send(customer, "spending_limit_near")  # inside the one-day cooldown: no second SMS
        await env.sleep(timedelta(days=60))
    return [j.handle("spending_limit", customer).id]


async def order_updates(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """Four orders a year, each confirmed, shipped a day later and delivered two days after that."""
    j.add_customer(customer, email=f"{customer}@example.invalid", phone="+15555550100")
    ids = []
    for quarter in range(4):
        order = f"o-{quarter}"
        await j.send(customer, "order_placed", order_id=order)
        await env.sleep(timedelta(days=1))
        await j.send(customer, "order_shipped", order_id=order)
        await env.sleep(timedelta(days=2))
        await j.send(customer, "package_delivered", order_id=order)
        ids.append(j.handle("order_updates", customer, order).id)
        await env.sleep(timedelta(days=88))
    return ids


async def lifecycle(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """Signs up, buys five times in two months (a loyalty milestone), opens the app now and then, goes quiet
    (rescue, then lost, promotions paused) and comes back with an order in the autumn (welcome back)."""
    j.add_customer(customer, first_name="Sam", email=f"{customer}@example.invalid", phone="+15555550100")
    await j.send(customer, "signed_up")
    day = 0
    for when, event in [
        (5, "order_placed"),
        (20, "order_placed"),
        (35, "order_placed"),
        (50, "order_placed"),
        (70, "order_placed"),
        (90, "app_opened"),
        (120, "app_opened"),
        (300, "order_placed"),  # after 60 quiet days (rescue) and 30 more (lost)
    ]:
        await env.sleep(timedelta(days=when - day))
        day = when
        if event == "order_placed":
            await j.send(customer, event, order_id=f"o-{when}", amount=42)
        else:
            await j.send(customer, event)
    await env.sleep(YEAR - timedelta(days=day))
    return [j.handle("lifecycle", customer).id]


async def anniversary(j: Journeys, env: WorkflowEnvironment, customer: str) -> list[str]:
    """Signs up; a year and a day pass (one thank-you on the first anniversary, at 10:00 local time)."""
    j.add_customer(customer, first_name="Sam", email=f"{customer}@example.invalid", timezone="Europe/Berlin")
    await j.send(customer, "signed_up")
    await env.sleep(YEAR + timedelta(days=1))
    return [j.handle("anniversary", customer).id]


SCENARIOS: dict[str, Scenario] = {
    "pharmacy_refill": pharmacy_refill,
    "birthday": birthday,
    "monthly_statement": monthly_statement,
    "spending_limit": spending_limit,
    "order_updates": order_updates,
    "lifecycle": lifecycle,
    "anniversary": anniversary,
}
