"""``journeys validate FILE...``: exit 0 when every map is valid, else one line per problem.

A file named ``events.yaml`` is the tracking plan (docs/events.md), checked as such; each map is checked against
the ``events.yaml`` beside it and its own ``events:`` section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from journeymap import MapValidationError, load_map
from journeymap.events import EVENTS_FILE
from journeymap.loader import events_file_beside, load_events_file
from journeymap.preferences import check_preferences


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validate", help="check journey maps (their templates and events) and events.yaml")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--templates", type=Path, default=None, help="templates folder (default: templates/ beside each map)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            if path.name == EVENTS_FILE:
                plan = load_events_file(path)
                print(f"{path.name}: ok ({len(plan.events)} events declared)")
                continue
            journey = load_map(path, templates_dir=args.templates)
            declared = journey.events or events_file_beside(path.parent) is not None
        except MapValidationError as exc:
            failed = True
            for error in exc.errors:
                print(error, file=sys.stderr)
            continue
        note = "" if declared else "; no events declared: the event API checks none"
        print(f"{path.name}: ok ({journey.name} v{journey.version}, {len(journey.steps)} steps{note})")
    # The brand's preference catalog beside the maps (``brand/preferences.yaml``), once per folder.
    for folder in sorted({path.resolve().parent for path in args.files}):
        problems = check_preferences(folder / "brand" / "preferences.yaml", args.templates or folder / "templates")
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
    return 1 if failed else 0
