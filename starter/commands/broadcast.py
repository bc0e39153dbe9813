"""``journeys broadcast list | schedule | start NAME | pause NAME | resume NAME | cancel NAME | status NAME``.

A broadcast (``journeys/broadcasts/*.yaml``, docs/audiences.md) sends a map to a segment at a set time through a
Temporal Schedule; each time is an occurrence, a fan-out workflow. ``list`` reads the definitions (and, when
Temporal answers, each one's next run); ``schedule`` creates or updates their Schedules (``journeys setup`` and
``journeys dev`` do too); ``start`` sends one now; the others act on the newest running occurrence, or on the one
``--occurrence`` names (its label or workflow id).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from audiences.broadcasts import Broadcast
from contracts.broadcasts import broadcast_schedule_id
from contracts.errors import UnavailableError
from runtime.connection import connect
from runtime.settings import Settings
from starter.broadcasts import (
    control,
    ensure_broadcast_schedules,
    find_occurrence,
    load_all,
    named,
    occurrences,
    progress_of,
    start_occurrence,
)
from starter.progress import ProgressLine

FOLLOW_EVERY = 1.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("broadcast", help="broadcasts: a map sent to a segment at a set time")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every broadcast: when, which map, which segment").set_defaults(handler=run_list)
    actions.add_parser("schedule", help="create or update every broadcast's Temporal Schedule").set_defaults(
        handler=run_schedule
    )
    start = actions.add_parser("start", help="send a broadcast now (one occurrence)")
    start.add_argument("name", metavar="NAME")
    start.add_argument("--occurrence", help="a label for this occurrence (default: the time now); used once only")
    start.add_argument("--follow", action="store_true", help="show its progress until it is done")
    start.set_defaults(handler=run_start)
    for action, text in (
        ("pause", "pause an occurrence between pages"),
        ("resume", "resume a paused occurrence"),
        ("cancel", "cancel an occurrence (the journeys already started go on)"),
        ("status", "an occurrence's progress"),
    ):
        each = actions.add_parser(action, help=text)
        each.add_argument("name", metavar="NAME")
        each.add_argument("--occurrence", help="its label or workflow id (default: the newest running)")
        if action == "status":
            each.add_argument("--follow", action="store_true", help="follow it until it is done")
        each.set_defaults(handler=run_status if action == "status" else run_control)


def run_list(args: argparse.Namespace) -> int:
    settings = Settings()
    broadcasts = load_all(settings)
    if not broadcasts:
        print(f"no broadcasts in {settings.broadcasts_dir}")
        return 0
    upcoming = _next_runs(settings, broadcasts)
    width = max(len(name) for name in broadcasts)
    for name, broadcast in sorted(broadcasts.items()):
        after = upcoming.get(name)
        nxt = f"; next {after}" if after else ""
        print(f"{name:<{width}}  {broadcast.journey} to {broadcast.segment}, {broadcast.when.describe()}{nxt}")
    return 0


def _next_runs(settings: Settings, broadcasts: dict[str, Broadcast]) -> dict[str, str]:
    """Each Schedule's next start, when Temporal answers (``list`` works without it)."""

    async def read() -> dict[str, str]:
        client = await connect(settings)
        found: dict[str, str] = {}
        for name in broadcasts:
            try:
                described = await client.get_schedule_handle(
                    broadcast_schedule_id(settings.task_queue, name)
                ).describe()
            except Exception:
                found[name] = "(no schedule: run journeys broadcast schedule)"
                continue
            times = described.info.next_action_times
            found[name] = times[0].isoformat() if times else "(none)"
        return found

    try:
        return asyncio.run(read())
    except UnavailableError:
        return {}


def run_schedule(args: argparse.Namespace) -> int:
    settings = Settings()
    broadcasts = load_all(settings)

    async def go() -> list[str]:
        return await ensure_broadcast_schedules(await connect(settings), settings, broadcasts)

    lines = asyncio.run(go())
    print("\n".join(lines) if lines else f"no broadcasts in {settings.broadcasts_dir}")
    return 0


def run_start(args: argparse.Namespace) -> int:
    settings = Settings()
    broadcast = named(load_all(settings), args.name)

    async def go() -> int:
        client = await connect(settings)
        handle = await start_occurrence(client, settings, broadcast, args.occurrence)
        print(f"broadcast {broadcast.name}: occurrence {handle.id} started")
        return await _follow(handle) if args.follow else 0

    return asyncio.run(go())


def run_control(args: argparse.Namespace) -> int:
    settings = Settings()
    named(load_all(settings), args.name)

    async def go() -> None:
        client = await connect(settings)
        handle = await find_occurrence(client, args.name, args.occurrence)
        await control(handle, args.action)
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[args.action]
        print(f"broadcast {args.name}: occurrence {handle.id} {done}")

    asyncio.run(go())
    return 0


def run_status(args: argparse.Namespace) -> int:
    settings = Settings()
    named(load_all(settings), args.name)

    async def go() -> int:
        client = await connect(settings)
        if args.occurrence is None and not args.follow:
            listed = await occurrences(client, args.name)
            if not listed:
                print(f"broadcast {args.name}: no occurrence yet")
                return 0
            for item in listed:
                counts = _counts(item.progress) if item.progress else "no progress recorded"
                print(f"{item.workflow_id}  {item.status}  {counts}")
            return 0
        handle = await find_occurrence(client, args.name, args.occurrence)
        return await _follow(handle, once=not args.follow)

    return asyncio.run(go())


async def _follow(handle: Any, *, once: bool = False) -> int:
    """A progress bar (``starter.progress``) until the occurrence closes; one line with ``once``."""
    bar: ProgressLine | None = None
    while True:
        status, progress = await progress_of(handle)
        if progress is not None:
            if bar is None:
                bar = ProgressLine(max(progress.members or 0, progress.done, 1), "members", stream=sys.stdout)
            bar.total = max(bar.total, progress.done)
            bar.update(progress.done if status == "running" else bar.total, f"{_counts(progress)}")
        if once or status != "running":
            print(f"{handle.id}: {status}" + (f", {_counts(progress)}" if progress else ""))
            return 0 if status in ("running", "completed") else 1
        await asyncio.sleep(FOLLOW_EVERY)


def _counts(progress: Any) -> str:
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(progress.skipped.items()))
    return (
        f"{progress.state}: {progress.started} started, {sum(progress.skipped.values())} skipped"
        + (f" ({skipped})" if skipped else "")
        + f", {progress.pages} pages"
    )
