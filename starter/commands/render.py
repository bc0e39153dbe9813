"""``journeys render FILE``: the map as a Mermaid flowchart."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from journeymap import load_map
from journeymap.mermaid import to_mermaid


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("render", help="print a journey map as a Mermaid flowchart")
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--templates", type=Path, default=None, help="templates folder (default: templates/ beside the map)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Only a valid map is drawn (a chart of a broken map would show a journey that cannot run): a
    # MapValidationError goes to starter.cli, which prints where each problem is.
    journey = load_map(args.file, templates_dir=args.templates)
    print(to_mermaid(journey), end="")
    return 0
