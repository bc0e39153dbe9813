"""``journeys demo`` plays the whole pharmacy story on a real dev server, a day lasting a second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from runtime.settings import Settings
from starter.commands.demo import compress, daytime_zone, play
from testkit.harness import running_journeys


async def test_demo_tells_the_pharmacy_story_end_to_end(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    said: list[str] = []
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        settings = Settings(data_dir=tmp_path, task_queue=task_queue)
        sends = await play(
            dev_env.client, settings, j.engine, customer="demo-test", seconds_per_day=1.0, say=said.append
        )
        assert sends[:2] == ["lifecycle/welcome_message", "lifecycle/welcome_app_invite"]
        pharmacy = [s for s in sends if s.startswith("pharmacy_refill/")]
        assert pharmacy == [
            "pharmacy_refill/remind_refill",
            "pharmacy_refill/notify_ready",
            "pharmacy_refill/pickup_voicemail",
        ]
        voicemail = [d for d in j.outbox("demo-test") if d.step == "pickup_voicemail"]
        assert [d.channel for d in voicemail] == ["voice"]
        assert [d.status for d in voicemail] == ["sent"]
    assert said[-1].startswith("Done.")


def test_compression_scales_durations_and_day_functions_and_drops_times_of_day() -> None:
    data = {
        "steps": [
            {"id": "a", "wait": {"until": "vars.due", "offset": "-3d", "at": "10:00"}},
            {"id": "b", "wait_for": {"events": ["x"], "timeout": "5d"}},
        ],
        "variables": {"due": "date(trigger.at) + days(trigger.n)", "gap": "days_between(a, b)"},
    }
    out = compress(data, 1 / 86400)
    assert out["steps"][0]["wait"] == {"until": "vars.due", "offset": "-3s"}
    assert out["steps"][1]["wait_for"]["timeout"] == "5s"
    assert out["variables"]["due"] == f"date(trigger.at) + days({1 / 86400!r} * trigger.n)"
    assert out["variables"]["gap"] == "days_between(a, b)"


def test_daytime_zone_is_early_afternoon() -> None:
    for hour in range(24):
        now = datetime(2026, 11, 25, hour, 30, tzinfo=UTC)
        assert 12 <= now.astimezone(ZoneInfo(daytime_zone(now))).hour <= 14
