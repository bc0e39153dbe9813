"""Delivery inside running journeys, on the time-skipping server: receipts, caps across journeys, quiet hours."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.receipts import Receipt, apply_receipt
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from testkit.harness import running_journeys, write_journeys

TEMPLATES = {
    "welcome": "email:\n  subject: Welcome\n  html: <p>Welcome</p>\n  text: Welcome\n",
    "offer": (
        "email:\n  subject: An offer\n  html: <p>10% off. <a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>\n"
        "  text: '10% off. Unsubscribe: {{ unsubscribe_url }}'\n"
    ),
    "thanks": "push:\n  title: Thanks\n  body: Thanks for reading\n",
}

OPENED = """
name: opened
version: 1
entry: {events: [signup]}
steps:
  - id: welcome
    send: {channel: email, template: welcome, category: transactional}
  - id: await_open
    wait_for: {events: [email_opened], timeout: 3d, on_event: thank, on_timeout: end}
  - id: thank
    send: {channel: push, template: thanks, category: transactional}
"""

PROMO_NOW = """
name: promo_now
version: 1
entry: {events: [signup]}
steps:
  - id: offer
    send: {channel: email, template: offer, category: promotional}
"""

PROMO_LATER = """
name: promo_later
version: 1
entry: {events: [signup]}
steps:
  - id: wait_a_day
    wait: {duration: 1d}
  - id: first_offer
    send: {channel: email, template: offer, category: promotional}
  - id: receipt
    send: {channel: email, template: welcome, category: transactional}
  - id: wait_a_week
    wait: {duration: 7d}
  - id: second_offer
    send: {channel: email, template: offer, category: promotional}
"""


def journeys_dir(tmp_path: Path, *maps: str) -> Path:
    return write_journeys(tmp_path, {f"map{i}": text for i, text in enumerate(maps)}, TEMPLATES)


def zone_at_local_hour(now: datetime, hour: int) -> str:
    """A fixed-offset zone where it is now ``hour`` o'clock (to put a customer in the day or the night)."""
    offset = (hour - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    if offset == 0:
        return "Etc/UTC"
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"


async def test_an_open_receipt_moves_a_journey_waiting_for_email_opened(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, journeys_dir(tmp_path, OPENED), database_url=database_url
    ) as j:
        j.add_customer("c1", email="c1@example.test", push_token="tok")
        await j.send("c1", "signup")
        state = await j.settled("opened", "c1")
        assert (state.step, state.waiting_for) == ("await_open", ["email_opened"])
        [row] = j.outbox("c1")
        assert row.provider_message_id is not None
        result = apply_receipt(j.engine, Receipt(row.provider_message_id, "opened"))
        assert result is not None and result.customer_id == "c1"
        assert result.event.type == "email_opened"
        # The provider retries its webhook: the same receipt is the same event, and counts once.
        again = apply_receipt(j.engine, Receipt(row.provider_message_id, "opened"))
        assert again is not None and again.event.id == result.event.id
        await j.journeys.send_event(result.customer_id, result.event)
        await j.journeys.send_event(again.customer_id, again.event)
        final = await j.handle("opened", "c1").result()
        assert final.status == "completed"
        assert [(d.step, d.channel, d.status) for d in j.outbox("c1")] == [
            ("welcome", "email", "sent"),
            ("thank", "push", "sent"),
        ]
        [email] = [d for d in j.outbox("c1") if d.channel == "email"]
        assert email.receipt == "opened" and email.opened_at is not None


async def test_unknown_receipts_are_ignored(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, journeys_dir(tmp_path, OPENED), database_url=database_url
    ) as j:
        assert apply_receipt(j.engine, Receipt("no-such-message", "delivered")) is None


async def test_promotional_cap_holds_across_two_journeys_and_rolls_with_the_week(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("JOURNEYS_PROMOTIONAL_CAP", "1")
    monkeypatch.setenv("JOURNEYS_QUIET_HOURS_START", "00:00")
    monkeypatch.setenv("JOURNEYS_QUIET_HOURS_END", "00:00")
    folder = journeys_dir(tmp_path, PROMO_NOW, PROMO_LATER)
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("c1", email="c1@example.test")
        await j.send("c1", "signup")
        await j.settled("promo_now", "c1")
        await j.settled("promo_later", "c1", until=lambda s: s.step == "wait_a_day")
        await time_env.sleep(timedelta(days=1, hours=1))
        await j.settled("promo_later", "c1", until=lambda s: s.step == "wait_a_week")
        await time_env.sleep(timedelta(days=7, hours=1))
        result = await j.handle("promo_later", "c1").result()
        assert result.status == "completed"
        rows = [(d.journey, d.step, d.status, d.reason) for d in j.outbox("c1", status=None)]
        assert rows == [
            ("promo_now", "offer", "sent", None),
            ("promo_later", "first_offer", "suppressed", "frequency cap: 1 promotional in 7 days (cap 1)"),
            ("promo_later", "receipt", "sent", None),  # transactional: exempt, and the journey went on
            ("promo_later", "second_offer", "sent", None),  # a week after the first offer: room again
        ]


async def test_a_promotional_send_at_night_waits_for_eight_in_the_morning_local(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, journeys_dir(tmp_path, PROMO_NOW), database_url=database_url
    ) as j:
        now = await time_env.get_current_time()
        zone = zone_at_local_hour(now, 2)
        j.add_customer("c1", email="c1@example.test", timezone=zone)
        await j.send("c1", "signup")
        await j.settled("promo_now", "c1", until=lambda s: s.status == "waiting")
        assert j.outbox("c1", status=None) == []
        await time_env.sleep(timedelta(hours=7))
        result = await j.handle("promo_now", "c1").result()
        assert result.status == "completed"
        [row] = j.outbox("c1")
        assert row.status == "sent" and row.sent_at is not None
        local = row.sent_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (8, 0)


async def test_an_unsubscribe_holds_for_a_journey_already_in_flight(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("JOURNEYS_QUIET_HOURS_START", "00:00")
    monkeypatch.setenv("JOURNEYS_QUIET_HOURS_END", "00:00")
    folder = journeys_dir(tmp_path, PROMO_NOW, PROMO_LATER)
    keys = {"link_keys": "in-flight-link-key-0123456789"}
    async with running_journeys(
        time_env.client, tmp_path, task_queue, folder, database_url=database_url, settings_overrides=keys
    ) as j:
        j.add_customer("c1", email="c1@example.test")
        await j.send("c1", "signup")
        await j.settled("promo_now", "c1")
        await j.settled("promo_later", "c1", until=lambda s: s.step == "wait_a_day")
        [offer] = j.outbox("c1")
        found = re.search(r"/unsubscribe/\S+", offer.content["text"])
        assert found
        # While promo_later sleeps, the customer presses "Unsubscribe" on the first offer.
        app = create_app(Settings(api_keys="k", data_dir=tmp_path, **keys), ApiServices(j.journeys, j.engine))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
            answer = await http.post(found.group(0), content="List-Unsubscribe=One-Click")
            assert answer.status_code == 200
        await time_env.sleep(timedelta(days=1, hours=1))
        await j.settled("promo_later", "c1", until=lambda s: s.step == "wait_a_week")
        assert [(d.step, d.status, d.reason) for d in j.outbox("c1", status=None)] == [
            ("offer", "sent", None),
            ("first_offer", "suppressed", "unconsented: email/promotional revoked (unsubscribe_link)"),
            ("receipt", "sent", None),
        ]
