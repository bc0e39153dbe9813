"""``journeys diff OLD.yaml NEW.yaml``: what a map change does, and to how many journeys in flight.

Steps added, removed and changed (by step id, saying what changed: kind, target, timing, template...), and
the map's other fields. A journey keeps the map it entered with, so the journeys resting on a removed or
changed step finish on the old definition: with a Temporal connection (``--temporal [ADDRESS]``, or
``JOURNEYS_TEMPORAL_ADDRESS`` set) they are counted, step by step, from each running journey's own history (its
pending timer names its step: :mod:`starter.resting`, no billable action), or from the ``JourneyStep`` search
attribute when the deployment sets ``JOURNEYS_SEARCH_BY_STEP``, so a marketer sees whom a change leaves behind
before deploying it. With no step
removed or changed there is nobody to count, and no connection is made.

Both maps are validated first. An old map taken out of version control (``git show HEAD:journeys/x.yaml``)
has no ``templates/`` folder beside it: it is checked against the new map's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from journeymap import JourneyMap, load_map
from journeymap.diff import MapDiff, diff_maps
from runtime.connection import connect
from runtime.settings import Settings
from starter.resting import RestingCounts, count_resting

ADDRESS_ENV = "JOURNEYS_TEMPORAL_ADDRESS"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff", help="steps added, removed and changed between two versions of a map; journeys in flight on them"
    )
    parser.add_argument("old", type=Path, metavar="OLD.yaml")
    parser.add_argument("new", type=Path, metavar="NEW.yaml")
    parser.add_argument(
        "--temporal",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help=f"count the running journeys on removed or changed steps (default address: {ADDRESS_ENV}'s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    new = load_map(args.new)
    old = load_map(args.old, templates_dir=_templates(args.old, args.new))
    diff = diff_maps(old, new)
    for line in format_diff(diff, old):
        print(line)
    if diff.affected and (args.temporal is not None or os.environ.get(ADDRESS_ENV)):
        settings = Settings()
        if args.temporal:
            settings = settings.model_copy(update={"temporal_address": args.temporal})
        counts = asyncio.run(_count(settings, old.name, diff.affected))
        for line in format_in_flight(counts.steps, settings.temporal_address, counts):
            print(line)
    return 0


def _templates(path: Path, other: Path) -> Path:
    beside = path.parent / "templates"
    return beside if beside.is_dir() else other.parent / "templates"


def format_diff(diff: MapDiff, old: JourneyMap) -> list[str]:
    if diff.empty:
        return [f"{diff.journey}: no change"]
    lines = [f"{diff.journey}: {len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed"]
    lines += [f"+ {step}" for step in diff.added]
    lines += [f"- {step}" for step in diff.removed]
    for change in diff.changed:
        lines.append(f"~ {change.step}")
        lines += [f"    {difference}" for difference in change.differences]
    if diff.map_fields:
        lines.append(f"~ (map) {old.name}")
        lines += [f"    {difference}" for difference in diff.map_fields]
    return lines


def format_in_flight(counts: dict[str, int], address: str, how: RestingCounts | None = None) -> list[str]:
    total = sum(counts.values())
    lines = [
        f"in flight ({address}): {total} running journeys rest on a removed or changed step; they keep the map"
        " they entered with and finish on the old definition"
    ]
    lines += [f"  {step}: {count}" for step, count in counts.items()]
    if how is not None and how.listed:
        lines.append(
            f"  (read from the histories of {how.listed} running journeys; {len(how.queried)} rested without a"
            " timer and were asked with the state query, one billable action each)"
        )
    return lines


async def _count(settings: Settings, journey: str, steps: tuple[str, ...]) -> RestingCounts:
    client = await connect(settings)
    return await count_resting(client, journey, steps, search_by_step=settings.search_by_step)
