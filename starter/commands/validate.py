"""``journeys validate FILE...``: exit 0 when every map is valid, else one line per problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from journeymap import MapValidationError, load_map
from journeymap.preferences import check_preferences


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validate", help="check journey maps (and their templates)")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--templates", type=Path, default=None, help="templates folder (default: templates/ beside each map)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            journey = load_map(path, templates_dir=args.templates)
        except MapValidationError as exc:
            failed = True
            for error in exc.errors:
                print(error, file=sys.stderr)
            continue
        print(f"{path.name}: ok ({journey.name} v{journey.version}, {len(journey.steps)} steps)")
    # The brand's preference catalog beside the maps (``brand/preferences.yaml``), once per folder.
    for folder in sorted({path.resolve().parent for path in args.files}):
        problems = check_preferences(folder / "brand" / "preferences.yaml", args.templates or folder / "templates")
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
    return 1 if failed else 0
