"""Every step kind and journey-level rule, each in a small map, on the time-skipping server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.settings import DeliverySettings
from testkit.harness import running_journeys, write_journeys

NOTE = "sms:\n  text: 'Hi {{ profile.first_name | default(\"there\") }} ({{ journey.name }})'\n"


def journeys_dir(tmp_path: Path, maps: dict[str, str]) -> Path:
    return write_journeys(tmp_path, maps, {"note": NOTE})


def steps_sent(outbox: list[Any]) -> list[str]:
    return [d.step for d in outbox]


async def test_wait_duration_then_local_time_of_day(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "timed": """
name: timed
entry: {events: [signed_up]}
steps:
  - id: pause
    wait: {duration: 2d, at: "09:30"}
  - id: hello
    send: {channel: sms, template: note, category: transactional}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("t1", timezone="Asia/Tokyo")
        await j.send("t1", "signed_up")
        state = await j.settled("timed", "t1")
        now = await time_env.get_current_time()
        assert state.wait_until is not None
        local = state.wait_until.astimezone(ZoneInfo("Asia/Tokyo"))
        assert (local.hour, local.minute) == (9, 30)
        assert timedelta(days=2) <= state.wait_until - now < timedelta(days=3)
        await time_env.sleep(state.wait_until - now + timedelta(seconds=1))
        assert (await j.handle("timed", "t1").result()).status == "completed"
        assert steps_sent(j.outbox("t1")) == ["hello"]


async def test_wait_until_yearly_birthday(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "birthday": """
name: birthday
entry: {events: [signed_up]}
steps:
  - id: until_birthday
    wait: {until: profile.birthday, yearly: true, at: "08:00"}
  - id: greet
    send: {channel: sms, template: note, category: transactional}
  - id: again
    goto: until_birthday
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        now = await time_env.get_current_time()
        birthday = (now + timedelta(days=40)).date().replace(year=1990)
        j.add_customer("b1", timezone="Europe/Paris", birthday=birthday.isoformat())
        await j.send("b1", "signed_up")
        state = await j.settled("birthday", "b1")
        assert state.wait_until is not None
        local = state.wait_until.astimezone(ZoneInfo("Europe/Paris"))
        assert (local.month, local.day, local.hour) == (birthday.month, birthday.day, 8)
        await time_env.sleep(timedelta(days=41))
        state = await j.settled("birthday", "b1", until=lambda s: len(s.sends) == 1 and s.status == "waiting")
        assert (
            state.wait_until is not None
            and state.wait_until.astimezone(ZoneInfo("Europe/Paris")).year == local.year + 1
        )


async def test_branch_set_goto_and_end(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "loop": """
name: loop
entry: {events: [start]}
variables:
  count: "0"
steps:
  - id: bump
    set: {count: vars.count + 1}
  - id: enough
    branch:
      - when: vars.count >= 3
        goto: finish
      - otherwise: nap
  - id: finish
    end: {reason: counted to three}
  - id: nap
    wait: {duration: 1h}
  - id: back
    goto: bump
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("l1")
        await j.send("l1", "start")
        await j.settled("loop", "l1")
        await time_env.sleep(timedelta(hours=3))
        result = await j.handle("loop", "l1").result()
        assert (result.status, result.end_reason) == ("completed", "counted to three")
        assert (await j.state("loop", "l1")).vars["count"] == 3


SPLIT = """
name: abtest
entry: {events: [start]}
goal: {events: [purchase], within: 7d}
steps:
  - id: ab
    split:
      variants:
        - {name: a, weight: 45, goto: send_a}
        - {name: b, weight: 45, goto: send_b}
      holdout: {weight: 10}
  - id: send_a
    send: {channel: sms, template: note, category: transactional}
    next: wait_purchase
  - id: send_b
    send: {channel: sms, template: note, category: transactional}
  - id: wait_purchase
    wait_for: {events: [purchase], timeout: 7d}
"""


async def test_split_is_deterministic_per_customer_with_a_holdout(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(tmp_path, {"abtest": SPLIT})
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        customers = [f"s{n}" for n in range(40)]
        for customer in customers:
            j.add_customer(customer)
            await j.send(customer, "start")
        variants = {c: (await j.settled("abtest", c)).split_variants["ab"] for c in customers}
        assert set(variants.values()) == {"a", "b", "holdout"}
        for customer, variant in variants.items():
            expected = {"a": ["send_a"], "b": ["send_b"], "holdout": []}[variant]
            assert steps_sent(j.outbox(customer)) == expected
        # A converting customer is counted as a goal; entering again lands in the same variant.
        some = next(c for c, v in variants.items() if v != "holdout")
        await j.send(some, "purchase")
        assert (await j.handle("abtest", some).result()).goal_reached
        await j.send(some, "start")
        state = await j.settled("abtest", some, until=lambda s: s.status == "waiting")
        assert state.split_variants["ab"] == variants[some]
        assert state.goal_reached_at is None  # a new entry, a new window


async def test_update_profile_writes_the_store_and_later_conditions_see_it(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "stage": """
name: stage
entry: {events: [start]}
steps:
  - id: mark
    update_profile: {set: {lifecycle_stage: "'welcome'", visits: "(profile.visits or 0) + 1"}}
  - id: check
    branch:
      - when: profile.lifecycle_stage == 'welcome'
        goto: hello
  - id: nothing
    end: {reason: not updated}
  - id: hello
    send: {channel: sms, template: note, category: transactional}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("p1", first_name="Ana", visits=4)
        await j.send("p1", "start")
        result = await j.handle("stage", "p1").result()
        assert result.status == "completed"
        assert {k: j.profile("p1")[k] for k in ("first_name", "visits", "lifecycle_stage")} == {
            "first_name": "Ana",
            "visits": 5,
            "lifecycle_stage": "welcome",
        }
        assert j.outbox("p1")[0].content["text"] == "Hi Ana (stage)"


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real local HTTP endpoint that records what it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body, "key": self.headers.get("Idempotency-Key")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_webhook_step_posts_with_the_idempotency_key(
    time_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    database_url: str,
    webhook_server: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook_server
    folder = journeys_dir(
        tmp_path,
        {
            "hook": f"""
name: hook
entry: {{events: [order_placed]}}
steps:
  - id: notify_crm
    webhook:
      url: {url}/crm
      body: {{order: trigger.order_id, total: trigger.total * 2}}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("w1")
        await j.send("w1", "order_placed", order_id="o-9", total=21)
        assert (await j.handle("hook", "w1").result()).status == "completed"
        assert len(received) == 1
        assert received[0]["path"] == "/crm" and received[0]["body"] == {"order": "o-9", "total": 42}
        assert received[0]["key"].startswith("journey/hook/w1/") and received[0]["key"].endswith("/notify_crm/1")


async def test_wait_for_without_timeout_waits_until_the_event(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "forever": """
name: forever
entry: {events: [start]}
exit_on:
  - event: unsubscribed
    when: event.list == 'all'
steps:
  - id: wait_pickup
    wait_for: {events: [picked_up], match: event.amount > 10}
  - id: thanks
    send: {channel: sms, template: note, category: transactional}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("f1")
        await j.send("f1", "start")
        state = await j.settled("forever", "f1")
        assert state.wait_until is None and state.waiting_for == ["picked_up"]
        await time_env.sleep(timedelta(days=400))
        await j.send("f1", "picked_up", amount=5)  # fails the match: ignored
        await j.send("f1", "unsubscribed", list="news")  # fails the exit condition: ignored
        assert (await j.state("forever", "f1")).status == "waiting"
        await j.send("f1", "picked_up", amount=50)
        assert (await j.handle("forever", "f1").result()).status == "completed"
        assert steps_sent(j.outbox("f1")) == ["thanks"]


async def test_entry_condition_false_means_not_entered(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "limit": """
name: limit
entry: {events: [spend], when: "profile.sms_alerts and event.ratio >= 0.9"}
steps:
  - id: alert
    send: {channel: sms, template: note, category: transactional}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("e1", sms_alerts=False)
        j.add_customer("e2", sms_alerts=True)
        await j.send("e1", "spend", ratio=0.95)
        await j.send("e2", "spend", ratio=0.95)
        assert (await j.handle("limit", "e1").result()).status == "not_entered"
        assert (await j.handle("limit", "e2").result()).status == "completed"
        assert j.outbox("e1") == [] and steps_sent(j.outbox("e2")) == ["alert"]


REENTRY = """
name: re_{mode}
entry: {{events: [visit], reentry: {rule}}}
steps:
  - id: hello
    send: {{channel: sms, template: note, category: transactional}}
"""


async def test_reentry_rules(time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "once": REENTRY.format(mode="once", rule="once"),
            "again": REENTRY.format(mode="again", rule="after_end"),
            "cool": REENTRY.format(mode="cool", rule="{cooldown: 7d}"),
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("r1")
        await j.send("r1", "visit")
        for journey in ("re_again",):
            await j.handle(journey, "r1").result()
        await j.settled("re_once", "r1", until=lambda s: s.status == "completed")
        await j.settled("re_cool", "r1", until=lambda s: s.status == "cooldown")
        await j.send("r1", "visit")  # second visit, at once
        await j.settled("re_again", "r1", until=lambda s: len(s.sends) == 1 and s.status == "completed")
        for journey in ("re_once", "re_cool"):  # the second visit reached them too: once they rest, they refused it
            await j.settled(journey, "r1")
        counts = {name: 0 for name in ("re_once", "re_again", "re_cool")}
        for delivery in j.outbox("r1"):
            counts[delivery.journey] += 1
        assert counts == {"re_once": 1, "re_again": 2, "re_cool": 1}
        await time_env.sleep(timedelta(days=8))  # the cooldown is over: the cool journey closes
        await j.handle("re_cool", "r1").result()
        await j.send("r1", "visit")
        await j.settled("re_cool", "r1", until=lambda s: s.status == "cooldown" and len(s.sends) == 1)
        await j.settled("re_again", "r1", until=lambda s: s.status == "completed")
        await j.settled("re_once", "r1")
        counts = {name: 0 for name in counts}
        for delivery in j.outbox("r1"):
            counts[delivery.journey] += 1
        assert counts == {"re_once": 1, "re_again": 3, "re_cool": 2}
        assert (await j.state("re_once", "r1")).status == "completed"  # open, idle, still refusing


async def test_trigger_without_its_instance_key_is_reported_not_started(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        routed = await j.send("k1", "prescription_filled", days_supply=30)
        assert [(r.journey, r.action) for r in routed] == [("pharmacy_refill", "missing_instance_key")]
        assert await j.send("k1", "no_journey_knows_this") == []


async def test_an_exit_right_behind_the_trigger_still_ends_the_journey(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer("x1")
        now = await time_env.get_current_time()
        await j.send(
            "x1", "prescription_filled", rx_id="r", days_supply=30, refills_remaining=1, filled_at=now.isoformat()
        )
        await j.send("x1", "prescription_cancelled", rx_id="r")
        result = await j.handle("pharmacy_refill", "x1", "r").result()
        assert result.status == "exited"
        assert j.outbox("x1", status=None) == []


async def test_after_a_wait_conditions_read_todays_profile(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "vip": """
name: vip
entry: {events: [start]}
steps:
  - id: later
    wait: {duration: 30d}
  - id: is_vip
    branch:
      - when: profile.tier == 'gold'
        goto: gold
      - otherwise: end
  - id: gold
    send: {channel: sms, template: note, category: transactional}
""",
        },
    )
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("v1", tier="silver")
        await j.send("v1", "start")
        await j.settled("vip", "v1")
        from sqlmodel import Session

        from storage import Customer

        with Session(j.engine) as session:  # the customer was upgraded during the wait
            customer = session.get(Customer, "v1")
            assert customer is not None
            customer.traits = {**customer.traits, "tier": "gold"}
            session.add(customer)
            session.commit()
        await time_env.sleep(timedelta(days=31))
        assert (await j.handle("vip", "v1").result()).status == "completed"
        assert steps_sent(j.outbox("v1")) == ["gold"]


async def test_send_first_that_works_and_on_failure(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    folder = journeys_dir(
        tmp_path,
        {
            "fallback": """
name: fallback
entry: {events: [start]}
steps:
  - id: alert
    send: {channels: [push, sms], mode: first, template: note2, category: transactional, on_failure: by_email}
  - id: done
    end: {reason: alerted}
  - id: by_email
    send: {channel: email, template: note2, category: transactional}
""",
        },
    )
    (folder / "templates" / "note2.yaml").write_text(
        "push: {title: Hi, body: Hello}\nsms: {text: Hello}\nemail: {subject: Hi, html: <p>Hello</p>, text: Hello}\n"
    )
    strict = DeliverySettings(outbox_requires_address=True)  # as a real provider would: no address, no send
    async with running_journeys(
        time_env.client, tmp_path, task_queue, folder, delivery=strict, database_url=database_url
    ) as j:
        j.add_profile("m1", phone="+15555550101")  # no device token: push cannot reach
        j.add_profile("m2", email="m2@example.com")  # neither push nor sms can reach
        await j.send("m1", "start")
        await j.send("m2", "start")
        first = await j.handle("fallback", "m1").result()
        second = await j.handle("fallback", "m2").result()
        assert (first.end_reason, [d.channel for d in j.outbox("m1")]) == ("alerted", ["sms"])
        assert [d.channel for d in j.outbox("m2")] == ["email"]
        assert second.end_reason == "reached the end"
        suppressed = j.outbox("m2", status="suppressed")
        assert sorted(d.channel for d in suppressed) == ["push", "sms"]


async def test_sends_on_a_rate_limited_channel_run_on_its_own_task_queue(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """Temporal enforces a task queue's rate limit across all workers: that is how a provider's limit holds."""
    folder = journeys_dir(
        tmp_path, {"both": REENTRY.format(mode="both", rule="once").replace("channel: sms", "channels: [sms, email]")}
    )
    (folder / "templates" / "note.yaml").write_text(NOTE + "email: {subject: Hi, html: <p>Hi</p>, text: Hi}\n")
    overrides = {"delivery_task_queue": f"{task_queue}-delivery", "delivery_rate_limits": "sms=50"}
    async with running_journeys(
        time_env.client, tmp_path, task_queue, folder, settings_overrides=overrides, database_url=database_url
    ) as j:
        j.add_customer("q1")
        await j.send("q1", "visit")
        await j.settled("re_both", "q1", until=lambda s: s.status == "completed")
        assert sorted(d.channel for d in j.outbox("q1")) == ["email", "sms"]
        history = await j.handle("re_both", "q1").fetch_history()
        queues = sorted(
            e.activity_task_scheduled_event_attributes.task_queue.name
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "send_message"
        )
        assert queues == [f"{task_queue}-delivery", f"{task_queue}-delivery-sms"]
