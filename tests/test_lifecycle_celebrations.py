"""Birthday and sign-up anniversary messages, in the customer's local time, every path."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from storage import Customer, Delivery
from testkit.harness import Journeys, running_journeys
from tests.test_lifecycle import CONTACT

TOKYO = ZoneInfo("Asia/Tokyo")


def fresh() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def set_traits(j: Journeys, customer_id: str, **traits: Any) -> None:
    """Change a profile as a backend would (``identify``), behind the journey's back."""
    with Session(j.engine) as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        customer.traits = {k: v for k, v in {**customer.traits, **traits}.items() if v is not None}
        session.add(customer)
        session.commit()


def sent(j: Journeys, customer_id: str, journey: str) -> list[tuple[str, str]]:
    return [(d.template, d.channel) for d in j.outbox(customer_id) if d.journey == journey]


def last(j: Journeys, customer_id: str, journey: str) -> Delivery:
    return [d for d in j.outbox(customer_id) if d.journey == journey][-1]


async def test_birthday_greeting_at_nine_local_every_year_unless_paused(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        now = await time_env.get_current_time()
        day = now.astimezone(TOKYO).date() + timedelta(days=10)
        birthday = f"1990-{day.month:02d}-{min(day.day, 28):02d}"
        greeted, paused, unknown = fresh(), fresh(), fresh()
        j.add_customer(greeted, first_name="Yui", timezone="Asia/Tokyo", birthday=birthday, **CONTACT)
        j.add_customer(paused, first_name="Ken", timezone="Asia/Tokyo", birthday=birthday, **CONTACT)
        j.add_customer(unknown, first_name="Mei", timezone="Asia/Tokyo", **CONTACT)
        # `profile_updated` (a birthday added later) rather than `signed_up`, which would also start the
        # lifecycle: a year without purchases makes a customer lost, and lost customers get no greeting.
        for c in (greeted, paused, unknown):
            await j.send(c, "profile_updated")

        state = await j.settled("birthday", unknown)
        assert (state.status, state.end_reason) == ("not_entered", "entry condition not met")
        state = await j.settled("birthday", greeted, until=lambda s: s.step == "birthday_wait")
        assert state.wait_until is not None
        local = state.wait_until.astimezone(TOKYO)
        assert (local.month, local.day, local.hour, local.minute) == (day.month, min(day.day, 28), 9, 0)
        await j.settled("birthday", paused, until=lambda s: s.step == "birthday_wait")

        set_traits(j, paused, promotional_paused=True)  # the customer was lost meanwhile
        await time_env.sleep(timedelta(days=11))
        await j.settled("birthday", greeted, until=lambda s: s.step == "birthday_next_year")
        await j.settled("birthday", paused, until=lambda s: s.step == "birthday_next_year")
        assert sent(j, greeted, "birthday") == [("birthday_greeting", "push")]
        assert "Yui" in last(j, greeted, "birthday").content["title"]
        assert sent(j, paused, "birthday") == []

        set_traits(j, paused, promotional_paused=False)
        await time_env.sleep(timedelta(days=2, hours=1))
        for c in (greeted, paused):
            state = await j.settled("birthday", c, until=lambda s: s.step == "birthday_wait")
            assert state.wait_until is not None
            assert state.wait_until.astimezone(TOKYO).year == local.year + 1

        set_traits(j, paused, birthday=None)  # birthday deleted: the journey ends at the next look
        await time_env.sleep(timedelta(days=365))
        await j.settled("birthday", paused, until=lambda s: s.status == "completed")
        assert sent(j, paused, "birthday") == []
        state = await j.settled("birthday", greeted, until=lambda s: len(s.sends) == 2 and s.status == "waiting")
        assert sent(j, greeted, "birthday") == [("birthday_greeting", "push")] * 2
        assert state.sends[1].at.astimezone(TOKYO).year == local.year + 1


async def test_anniversary_of_sign_up_at_ten_local_unless_paused(
    time_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(time_env.client, tmp_path, task_queue, database_url=database_url) as j:
        now = await time_env.get_current_time()
        thanked, paused = fresh(), fresh()
        j.add_customer(thanked, first_name="Yui", timezone="Asia/Tokyo", **CONTACT)
        j.add_customer(paused, first_name="Ken", timezone="Asia/Tokyo", promotional_paused=True, **CONTACT)
        for c in (thanked, paused):
            await j.send(c, "signed_up", signed_up_at=now.isoformat())
            state = await j.settled("anniversary", c, until=lambda s: s.step == "anniversary_first_year")
        # Sign-up also started the lifecycle, which would make a year-long silent customer lost (and lost
        # customers get no anniversary message): that path is tested above; here the customer stays active.
        await j.settled("lifecycle", thanked)
        await j.handle("lifecycle", thanked).terminate("not under test")
        await time_env.sleep(timedelta(days=2, hours=1))
        state = await j.settled("anniversary", thanked, until=lambda s: s.step == "anniversary_wait")
        assert state.wait_until is not None
        local = state.wait_until.astimezone(TOKYO)
        signup = now.astimezone(TOKYO)
        assert (local.year, local.month, local.day, local.hour) == (signup.year + 1, signup.month, signup.day, 10)

        await time_env.sleep(timedelta(days=365))
        state = await j.settled("anniversary", thanked, until=lambda s: len(s.sends) == 1 and s.status == "waiting")
        assert state.sends[0].at.astimezone(TOKYO).hour == 10
        # The paused customer's anniversary came too: the profile was read afresh, and nothing was sent.
        await j.settled(
            "anniversary",
            paused,
            until=lambda s: "anniversary_checked_at" in j.profile(paused) and s.status == "waiting",
        )
        assert sent(j, thanked, "anniversary") == [("anniversary_greeting", "email")]
        assert str(signup.year) in last(j, thanked, "anniversary").content["text"]
        assert sent(j, paused, "anniversary") == []
