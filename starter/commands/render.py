"""``journeys render FILE``: the map as a Mermaid flowchart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from journeymap import MapValidationError, load_map
from journeymap.mermaid import to_mermaid


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("render", help="print a journey map as a Mermaid flowchart")
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        journey = load_map(args.file)
    except MapValidationError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    print(to_mermaid(journey))
    return 0
