"""``journeys demo``: the pharmacy story played against the running system, a day lasting seconds.

Run ``journeys dev`` in one terminal and ``journeys demo`` in another, then watch the UI. A customer signs up
(welcome message at once, app invitation three days later), has a prescription filled (refill reminder a few
days before it runs out), orders the refill, hears it is ready, does not pick it up, and gets a voicemail.

Time is compressed by running *demo copies* of the shipped maps (``lifecycle_demo``, ``pharmacy_refill_demo``)
with every duration scaled down, and ``days()``/``hours()`` in their expressions scaled alike; a wait for a
time of day is dropped, as a time of day has no meaning when a day lasts ten seconds. The real maps, and the
real customers' journeys, are untouched: the copies have their own names and so their own workflow ids.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.errors import UnavailableError, UsageError
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from contracts.journey import JourneySnapshot
from journeymap import JourneyMap
from journeymap.durations import parse_duration
from journeymap.loader import parse_map
from runtime.connection import connect
from runtime.settings import Settings
from starter.api.identities import resolve_customer
from starter.client import JourneyClient
from storage import make_engine

DURATION_KEYS = frozenset({"cooldown", "within", "duration", "offset", "timeout"})
STORY_MAPS = ("lifecycle", "pharmacy_refill")
_SCALED_FUNCTION = re.compile(r"\b(days|hours)\(")


class DemoError(UnavailableError, RuntimeError):
    """The running system did not answer as the story needs (no Temporal, no worker)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="play the pharmacy story against the running system, time compressed")
    parser.add_argument("--seconds-per-day", type=float, default=10.0, help="how long a day lasts (default 10)")
    parser.add_argument("--customer", default=None, help="customer id (default: a new demo-... id)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.seconds_per_day <= 0:
        raise UsageError("--seconds-per-day must be positive")
    customer = args.customer or f"demo-{uuid.uuid4().hex[:6]}"
    asyncio.run(_demo(customer, args.seconds_per_day))
    return 0


def compress(data: Any, scale: float) -> Any:
    """A map's YAML data with every duration and ``days()``/``hours()`` multiplied by ``scale``."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in DURATION_KEYS and isinstance(value, str):
                seconds = parse_duration(value).total_seconds() * scale
                out[key] = ("-" if seconds < 0 else "") + f"{max(1, round(abs(seconds)))}s"
            elif key == "wait" and isinstance(value, dict):
                out[key] = compress({k: v for k, v in value.items() if k != "at"}, scale)
            else:
                out[key] = compress(value, scale)
        return out
    if isinstance(data, list):
        return [compress(item, scale) for item in data]
    if isinstance(data, str):
        return _SCALED_FUNCTION.sub(lambda m: f"{m.group(1)}({scale!r} * ", data)
    return data


def demo_catalog(journeys_dir: Path, templates_dir: Path, seconds_per_day: float) -> dict[str, JourneyMap]:
    scale = seconds_per_day / 86400
    catalog: dict[str, JourneyMap] = {}
    for name in STORY_MAPS:
        path = journeys_dir / f"{name}.yaml"
        data = compress(yaml.safe_load(path.read_text(encoding="utf-8")), scale)
        data["name"] = f"{data['name']}_demo"
        data["description"] = f"Demo copy, one day = {seconds_per_day:g}s. " + str(data.get("description", ""))
        journey = parse_map(data, source=path.name, templates_dir=templates_dir)
        catalog[journey.name] = journey
    return catalog


def daytime_zone(now: datetime) -> str:
    """A zone where it is early afternoon now, so quiet hours do not hold the demo's calls until morning."""
    offset = (13 - now.hour + 12) % 24 - 12  # UTC offset in hours, within -12..+11
    # POSIX-style Etc zones have the sign inverted: Etc/GMT-2 is UTC+2.
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


async def _demo(customer: str, seconds_per_day: float) -> None:
    settings = Settings()
    try:
        client = await connect(settings)
    except RuntimeError as exc:
        raise DemoError(f"cannot reach Temporal at {settings.temporal_address}; is `journeys dev` running?") from exc
    engine = make_engine(settings.database)
    try:
        await play(client, settings, engine, customer=customer, seconds_per_day=seconds_per_day, say=print)
    finally:
        engine.dispose()


async def play(
    client: Client,
    settings: Settings,
    engine: Engine,
    *,
    customer: str,
    seconds_per_day: float,
    say: Callable[[str], None],
) -> list[str]:
    """Play the story for ``customer``; returns the sends in the order they happened (``journey/step``)."""
    catalog = demo_catalog(settings.journeys_dir, settings.templates_dir, seconds_per_day)
    journeys = JourneyClient.from_settings(client, settings, catalog)
    day = timedelta(seconds=seconds_per_day)
    now = datetime.now(UTC)
    timeout = day * 40
    seen: list[str] = []

    async def event(type: str, **properties: Any) -> None:
        await journeys.send_event(customer, JourneyEvent(id=uuid.uuid4().hex, type=type, properties=properties))

    async def until(journey: str, key: str | None, done: Callable[[JourneySnapshot], bool], what: str) -> None:
        handle = client.get_workflow_handle(journey_workflow_id(journey, customer, key))
        deadline = asyncio.get_running_loop().time() + timeout.total_seconds()
        while True:
            try:
                state = await handle.query("state", result_type=JourneySnapshot)
            except RPCError:
                state = None
            if state is not None:
                for send in state.sends:
                    label = f"{journey.removesuffix('_demo')}/{send.step}"
                    if label not in seen:
                        seen.append(label)
                        channels = ", ".join(send.delivered) or "none"
                        say(f"  sent    {label} ({send.outcome}: {channels})")
                if done(state):
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise DemoError(f"timed out waiting for {what}; is a worker running on {settings.task_queue}?")
            await asyncio.sleep(min(0.5, seconds_per_day / 10))

    say(f"Customer {customer}: one day lasts {seconds_per_day:g}s. Watch it in the Temporal UI:")
    say(f"  search  JourneyCustomerId = '{customer}'")
    await asyncio.to_thread(
        resolve_customer,
        engine,
        user_id=customer,
        anonymous_id=None,
        traits={
            "name": "Dana Demo",
            "email": f"{customer}@example.com",
            "phone": "+15550100",
            "device_token": f"device-{customer}",
            "timezone": daytime_zone(now),
            "locale": "en",
        },
    )
    say("day 0   account created (signed_up)")
    await event("signed_up")
    await until("lifecycle_demo", None, lambda s: "welcome_message" in {x.step for x in s.sends}, "the welcome")
    say("        waiting three days for the app invitation...")
    await until("lifecycle_demo", None, lambda s: "welcome_app_invite" in {x.step for x in s.sends}, "the invite")

    rx = f"rx-{uuid.uuid4().hex[:6]}"
    days_supply = 30
    filled = datetime.now(UTC) - day * (days_supply - 5)  # runs out in 5 (demo) days: reminder in about 2
    say("day 3   prescription filled, 30 days' supply, running out in 5 days (prescription_filled)")
    await event(
        "prescription_filled", rx_id=rx, days_supply=days_supply, refills_remaining=1, filled_at=filled.isoformat()
    )
    pharmacy = "pharmacy_refill_demo"
    await until(pharmacy, rx, lambda s: s.step == "await_order", "the refill reminder")
    say("        customer orders the refill (refill_ordered)")
    await event("refill_ordered", rx_id=rx)
    await until(pharmacy, rx, lambda s: s.step == "await_ready", "the order to register")
    say("        pharmacy marks it ready at Main Street (refill_ready)")
    await event("refill_ready", rx_id=rx, store_name="Main Street")
    await until(pharmacy, rx, lambda s: s.step == "await_pickup", "the ready notice")
    say("        ...and the customer does not come: five days pass")
    await until(pharmacy, rx, lambda s: "pickup_voicemail" in {x.step for x in s.sends}, "the voicemail")
    say(f"Done. `journeys describe {customer}` shows where each journey stands; `journeys outbox` what was sent.")
    return seen
