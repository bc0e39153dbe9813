"""The lifecycle journey, every path, on the time-skipping server.

Customers are picked by the split bucket the engine will give them, so each test knows its variant up front.
Each customer lives in a time zone where the test's sends fall in the daytime, so quiet hours never hold a
promotional message back here (they are the delivery layer's business, tested there).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.testing import WorkflowEnvironment

from contracts import search_attributes as sa
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id, split_bucket
from contracts.journey import JourneySnapshot
from testkit.harness import Journeys, running_journeys

JOURNEY = "lifecycle"
BANDS = {"standard": (0, 45), "offer": (45, 90), "reminder": (45, 90), "holdout": (90, 100)}
"""Bucket ranges of the variants, in the order the map lists them (weights 45/45/10)."""


CONTACT = {"email": "ana@example.test", "phone": "+15555550100", "push_token": "token-ana"}
"""Fictitious addresses on every channel, so "first that works" takes the first channel the map lists."""


def customer_for(split: str, variant: str) -> str:
    """A fresh customer id that the ``split`` step assigns to ``variant``."""
    low, high = BANDS[variant]
    if split == "rescue_split" and variant == "offer":
        low, high = 0, 45
    while True:
        candidate = f"c-{uuid.uuid4().hex[:10]}"
        if low <= split_bucket(JOURNEY, split, candidate, None, 100) < high:
            return candidate


def daytime_zone(now: datetime) -> str:
    """An ``Etc/GMT`` zone where ``now`` is early afternoon (the sign of those names is inverted, POSIX-style)."""
    offset = (13 - now.hour) % 24
    offset = offset - 24 if offset > 12 else offset
    offset = max(-12, min(14, offset))
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def add(j: Journeys, env: WorkflowEnvironment, customer_id: str, **traits: object) -> None:
    now = await env.get_current_time()
    j.add_customer(customer_id, first_name="Ana", timezone=daytime_zone(now), **CONTACT, **traits)


def templates(j: Journeys, customer_id: str) -> list[str]:
    return [d.template for d in j.outbox(customer_id) if d.journey == JOURNEY]


async def at(j: Journeys, customer_id: str, step: str) -> JourneySnapshot:
    return await j.settled(JOURNEY, customer_id, until=lambda s: s.step == step and s.status == "waiting")


STEP_SEARCH = {"search_by_step": True}
"""docs/lifecycle.md: a deployment that lists customers by stage (``JourneyStep = 'maintenance'``) sets
``JOURNEYS_SEARCH_BY_STEP``; without it the UI shows the stage on each journey's page (current details)."""


async def stage_search_attribute(j: Journeys, customer_id: str) -> object:
    """The JourneyStep search attribute, as ops see it in the Temporal UI (with :data:`STEP_SEARCH`).

    Read raw: the time-skipping server returns datetime attributes in a form ``describe()`` cannot parse.
    """
    response = await j.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=j.client.namespace,
            execution=WorkflowExecution(workflow_id=journey_workflow_id(JOURNEY, customer_id)),
        )
    )
    payload = response.workflow_execution_info.search_attributes.indexed_fields[sa.STEP.name]
    return json.loads(payload.data)


async def current_details(j: Journeys, customer_id: str) -> str:
    """The journey's current details, as the Temporal UI shows them on its page (no search attribute needed)."""
    handle = j.client.get_workflow_handle(journey_workflow_id(JOURNEY, customer_id))
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


# ------------------------------------------------------------------------------------------------ welcome


async def test_welcome_standard_no_app_runs_the_whole_series_into_maintenance(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, database_url=database_url, settings_overrides=STEP_SEARCH
    ) as j:
        c = customer_for("welcome_split", "standard")
        await add(j, time_env, c)
        routed = await j.send(c, "signed_up")
        assert (JOURNEY, "started_or_signalled") in [(r.journey, r.action) for r in routed]
        state = await at(j, c, "welcome_wait_invite")
        assert state.split_variants == {"welcome_split": "standard"}
        assert templates(j, c) == ["lifecycle_welcome"]
        profile = j.profile(c)
        assert (profile["lifecycle_stage"], profile["welcome_variant"]) == ("welcome", "standard")
        assert await stage_search_attribute(j, c) == "welcome_wait_invite"

        await time_env.sleep(timedelta(days=3, hours=1))
        await at(j, c, "welcome_wait_onboarding")
        invite = j.outbox(c)[-1]
        assert (invite.template, invite.channel) == ("lifecycle_app_invite", "sms")  # first that works

        await time_env.sleep(timedelta(days=4))
        await at(j, c, "welcome_wait_onboarding_offer")
        await time_env.sleep(timedelta(days=7))
        await at(j, c, "welcome_wait_end")
        offer = j.outbox(c)[-1]
        assert offer.template == "lifecycle_onboarding_offer"
        assert "WELCOME10" not in offer.content["text"]  # the standard variant gets no code

        await time_env.sleep(timedelta(days=16))
        state = await at(j, c, "maintenance")
        assert templates(j, c) == [
            "lifecycle_welcome",
            "lifecycle_app_invite",
            "lifecycle_onboarding_tips",
            "lifecycle_onboarding_offer",
        ]
        assert state.goal_reached_at is None
        assert j.profile(c)["lifecycle_stage"] == "maintenance"
        assert await stage_search_attribute(j, c) == "maintenance"


async def test_welcome_offer_with_app_skips_invite_and_first_purchase_reaches_goal(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = customer_for("welcome_split", "offer")
        await add(j, time_env, c, app_installed=True)
        await j.send(c, "signed_up")
        await at(j, c, "welcome_wait_invite")
        await time_env.sleep(timedelta(days=3, hours=1))
        await at(j, c, "welcome_wait_onboarding")
        assert templates(j, c) == ["lifecycle_welcome"]  # the app is installed: no invitation
        await time_env.sleep(timedelta(days=11))
        await at(j, c, "welcome_wait_end")
        assert "WELCOME10" in j.outbox(c)[-1].content["text"]

        await j.send(c, "order_placed", order_id="o1", amount=42.0)
        state = await at(j, c, "maintenance_after_purchase")
        assert state.goal_reached_at is not None
        assert state.vars["purchases"] == 1
        assert j.profile(c)["lifecycle_stage"] == "maintenance"

        await time_env.sleep(timedelta(days=5, hours=1))
        await at(j, c, "maintenance")
        assert templates(j, c)[-1] == "lifecycle_review_ask"


async def test_welcome_holdout_gets_only_the_welcome_and_converts_or_times_out(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        buyer, quiet = customer_for("welcome_split", "holdout"), customer_for("welcome_split", "holdout")
        for c in (buyer, quiet):
            await add(j, time_env, c)
            await j.send(c, "signed_up")
            state = await at(j, c, "welcome_holdout_wait")
            assert state.split_variants == {"welcome_split": "holdout"}
            assert j.profile(c)["welcome_variant"] == "holdout"
        await time_env.sleep(timedelta(days=10))
        await j.send(buyer, "order_placed", order_id="o1", amount=10)
        state = await at(j, buyer, "maintenance_after_purchase")
        assert state.goal_reached_at is not None

        await time_env.sleep(timedelta(days=21))
        state = await at(j, quiet, "maintenance")
        assert state.goal_reached_at is None
        assert templates(j, quiet) == ["lifecycle_welcome"]
        assert j.profile(quiet)["lifecycle_stage"] == "maintenance"
        assert templates(j, buyer) == ["lifecycle_welcome", "lifecycle_review_ask"]


async def test_customer_met_through_an_order_skips_the_welcome(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = customer_for("welcome_split", "standard")
        await add(j, time_env, c)
        await j.send(c, "order_placed", order_id="o1", amount=25)
        state = await at(j, c, "maintenance_after_purchase")
        assert state.split_variants == {}
        assert templates(j, c) == []
        assert j.profile(c)["lifecycle_stage"] == "maintenance"


# ------------------------------------------------------------------------------------------------ maintenance


async def test_maintenance_review_referral_once_and_loyalty_milestone(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = customer_for("welcome_split", "standard")
        await add(j, time_env, c)
        await j.send(c, "order_placed", order_id="o1", amount=20)
        await at(j, c, "maintenance_after_purchase")
        await time_env.sleep(timedelta(days=5, hours=1))
        await at(j, c, "maintenance")
        await j.send(c, "app_opened")  # app activity keeps the customer in maintenance
        await j.send(c, "order_placed", order_id="o2", amount=20)
        await j.send(c, "order_placed", order_id="o3", amount=20)
        await j.settled(JOURNEY, c, until=lambda s: s.vars.get("purchases") == 3 and s.status == "waiting")
        await time_env.sleep(timedelta(days=5, hours=1))
        await at(j, c, "maintenance")
        await j.send(c, "order_placed", order_id="o4", amount=20)
        await j.send(c, "order_placed", order_id="o5", amount=20)
        await j.settled(JOURNEY, c, until=lambda s: s.vars.get("purchases") == 5 and s.status == "waiting")
        await time_env.sleep(timedelta(days=5, hours=1))
        state = await at(j, c, "maintenance")
        assert state.vars == {"purchases": 5, "referral_asked": True}
        assert templates(j, c) == [
            "lifecycle_review_ask",
            "lifecycle_referral_ask",
            "lifecycle_loyalty_milestone",
            "lifecycle_review_ask",
        ]
        milestone = next(d for d in j.outbox(c) if d.template == "lifecycle_loyalty_milestone")
        assert milestone.channel == "push" and "5" in milestone.content["title"]


# ------------------------------------------------------------------------------------------------ rescue, lost, back


async def _customer_in_maintenance(j: Journeys, env: WorkflowEnvironment, customer_id: str) -> None:
    await add(j, env, customer_id)
    await j.send(customer_id, "order_placed", order_id="o1", amount=30)
    await at(j, customer_id, "maintenance_after_purchase")
    await env.sleep(timedelta(days=5, hours=1))
    await at(j, customer_id, "maintenance")


async def test_sixty_silent_days_rescue_with_offer_then_purchase_is_a_welcome_back(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(
        time_env.client, tmp_path, task_queue, database_url=database_url, settings_overrides=STEP_SEARCH
    ) as j:
        c = customer_for("rescue_split", "offer")
        await _customer_in_maintenance(j, time_env, c)
        await time_env.sleep(timedelta(days=60, hours=1))
        state = await at(j, c, "rescue_wait_survey")
        assert state.split_variants == {"rescue_split": "offer"}
        profile = j.profile(c)
        assert (profile["lifecycle_stage"], profile["rescue_variant"]) == ("rescue", "offer")
        winback = j.outbox(c)[-1]
        assert (winback.template, winback.channel) == ("lifecycle_winback", "email")
        assert "COMEBACK15" in winback.content["text"]
        assert await stage_search_attribute(j, c) == "rescue_wait_survey"

        await time_env.sleep(timedelta(days=7, hours=1))
        await at(j, c, "rescue_wait")
        assert templates(j, c)[-1] == "lifecycle_why_did_you_leave"
        await j.send(c, "order_placed", order_id="o2", amount=30)
        state = await at(j, c, "maintenance_after_purchase")
        assert state.vars["purchases"] == 2
        assert templates(j, c)[-1] == "lifecycle_welcome_back"
        assert j.profile(c)["lifecycle_stage"] == "maintenance"


async def test_inactivity_event_rescue_reminder_then_lost_then_welcome_back(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = customer_for("rescue_split", "reminder")
        await _customer_in_maintenance(j, time_env, c)
        await j.send(c, "inactivity", days_inactive=45)
        await at(j, c, "rescue_wait_survey")
        assert "COMEBACK15" not in j.outbox(c)[-1].content["text"]  # the reminder variant: no offer
        await time_env.sleep(timedelta(days=30, hours=1))
        state = await at(j, c, "lost")
        assert state.waiting_for == ["order_placed", "app_opened"] and state.wait_until is None
        assert templates(j, c)[-3:] == ["lifecycle_winback", "lifecycle_why_did_you_leave", "lifecycle_final_note"]
        profile = j.profile(c)
        assert (profile["lifecycle_stage"], profile["promotional_paused"]) == ("lost", True)
        assert "at step `lost`" in await current_details(j, c)  # what ops read on its page, without the setting

        await time_env.sleep(timedelta(days=200))  # a lost customer hears nothing more
        await at(j, c, "lost")
        assert templates(j, c)[-1] == "lifecycle_final_note"

        await j.send(c, "order_placed", order_id="o9", amount=80)
        await at(j, c, "maintenance_after_purchase")
        assert templates(j, c)[-1] == "lifecycle_welcome_back"
        profile = j.profile(c)
        assert (profile["lifecycle_stage"], profile["promotional_paused"]) == ("maintenance", False)


async def test_rescue_holdout_and_app_activity_return_quietly_to_maintenance(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        held, held_lost, variant = (
            customer_for("rescue_split", "holdout"),
            customer_for("rescue_split", "holdout"),
            customer_for("rescue_split", "reminder"),
        )
        for c in (held, held_lost, variant):
            await _customer_in_maintenance(j, time_env, c)
            await j.send(c, "inactivity")
        state = await at(j, held, "rescue_holdout_wait")
        assert state.split_variants == {"rescue_split": "holdout"}
        await at(j, held_lost, "rescue_holdout_wait")
        await at(j, variant, "rescue_wait_survey")

        await j.send(held, "app_opened")
        await j.send(variant, "app_opened")
        for c in (held, variant):
            await at(j, c, "maintenance")
            assert j.profile(c)["lifecycle_stage"] == "maintenance"
        assert templates(j, held) == ["lifecycle_review_ask"]  # the holdout got no rescue message
        assert templates(j, variant) == ["lifecycle_review_ask", "lifecycle_winback"]

        await time_env.sleep(timedelta(days=30, hours=1))
        await at(j, held_lost, "lost")
        assert templates(j, held_lost) == ["lifecycle_review_ask", "lifecycle_final_note"]
        await j.send(held_lost, "app_opened")  # back in the app, without a purchase: maintenance, no message
        await at(j, held_lost, "maintenance")
        profile = j.profile(held_lost)
        assert (profile["lifecycle_stage"], profile["promotional_paused"]) == ("maintenance", False)
        assert templates(j, held_lost)[-1] == "lifecycle_final_note"


async def test_account_closed_ends_the_lifecycle_in_any_stage(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        c = customer_for("welcome_split", "offer")
        await add(j, time_env, c)
        await j.send(c, "signed_up")
        await at(j, c, "welcome_wait_invite")
        # Signalled straight to this journey: routing `account_closed` to every journey naming it also lists
        # the pharmacy's instances, which needs visibility the time-skipping server lacks.
        await j.handle(JOURNEY, c).signal("event", JourneyEvent(id="close-1", type="account_closed"))
        state = await j.settled(JOURNEY, c, until=lambda s: s.status == "exited")
        assert state.end_reason == "exit event account_closed"
        await time_env.sleep(timedelta(days=4))
        assert templates(j, c) == ["lifecycle_welcome"]


async def test_every_other_way_out_of_a_wait(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    """Purchases early in the welcome, inactivity right after a purchase, a purchase by a rescue holdout."""
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        early, later = customer_for("welcome_split", "standard"), customer_for("welcome_split", "offer")
        held = customer_for("rescue_split", "holdout")
        for c in (early, later):
            await add(j, time_env, c)
            await j.send(c, "signed_up")
            await at(j, c, "welcome_wait_invite")
        await time_env.sleep(timedelta(days=1))
        await j.send(early, "order_placed", order_id="o1", amount=15)  # during welcome_wait_invite
        state = await at(j, early, "maintenance_after_purchase")
        assert state.goal_reached_at is not None
        await time_env.sleep(timedelta(days=4))
        await at(j, later, "welcome_wait_onboarding")
        await j.send(later, "order_placed", order_id="o2", amount=15)  # during welcome_wait_onboarding
        await at(j, later, "maintenance_after_purchase")
        assert templates(j, early) == ["lifecycle_welcome"]
        assert templates(j, later) == ["lifecycle_welcome", "lifecycle_app_invite"]

        await j.send(later, "inactivity")  # right after a purchase: the backend says the customer went quiet
        await j.settled(JOURNEY, later, until=lambda s: (s.step or "").startswith("rescue_") and s.status == "waiting")
        assert j.profile(later)["lifecycle_stage"] == "rescue"

        await _customer_in_maintenance(j, time_env, held)
        await j.send(held, "inactivity")
        await at(j, held, "rescue_holdout_wait")
        await j.send(held, "order_placed", order_id="o3", amount=15)
        state = await at(j, held, "maintenance_after_purchase")
        assert state.vars["purchases"] == 2
        assert templates(j, held) == ["lifecycle_review_ask", "lifecycle_welcome_back"]
