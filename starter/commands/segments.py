"""``journeys segments list | preview FILE|NAME | members NAME | import NAME FILE.csv``: the audiences (issue 15).

Every answer says how long the database took: membership is computed by set-based SQL, and these commands show
what that costs on the deployment's own data. ``preview`` computes who a definition holds now without writing;
``members`` reads the membership the event path and the Schedule keep.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from audiences.definitions import Segment, dependencies, load_segment, load_segment_files, load_segments
from audiences.lists import import_list, read_list
from audiences.membership import members, preview, sizes
from contracts.errors import UsageError
from journeymap.suggest import did_you_mean
from runtime.settings import Settings
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("segments", help="audiences: list segments, preview one, show its members")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every segment with its size now").set_defaults(handler=run_list)
    shown = actions.add_parser("preview", help="who a segment (a file or a name) would hold now, without writing")
    shown.add_argument("segment", metavar="FILE|NAME")
    shown.add_argument("--sample", type=int, default=10, help="how many customer ids to show (default 10)")
    shown.set_defaults(handler=run_preview)
    held = actions.add_parser("members", help="a segment's current members, with when each entered")
    held.add_argument("name", metavar="NAME")
    held.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    held.add_argument("--after", help="start after this customer id (the next page)")
    held.set_defaults(handler=run_members)
    imported = actions.add_parser("import", help="replace a static list (in_list: NAME) with a CSV file's customers")
    imported.add_argument("name", metavar="NAME")
    imported.add_argument("file", type=Path, metavar="FILE.csv")
    imported.set_defaults(handler=run_import)


def run_list(args: argparse.Namespace) -> int:
    settings = Settings()
    segments = load_segments(settings.segments_dir)
    with _engine(settings) as engine, engine.connect() as connection:
        started = time.perf_counter()
        counts = sizes(connection)
        took = time.perf_counter() - started
    if not segments:
        print(f"no segments in {settings.segments_dir}")
        return 0
    width = max(len(name) for name in segments)
    for name, segment in sorted(segments.items()):
        print(f"{name:<{width}}  {counts.get(name, 0):>9}  {_kept_by(segment):<15}  {segment.description}".rstrip())
    print(f"({len(segments)} segments; sizes read in {_ms(took)})")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    settings = Settings()
    segment = _segment(settings, args.segment)
    with _engine(settings) as engine, engine.connect() as connection:
        found = preview(connection, segment, now=datetime.now(UTC), sample=args.sample)
    print(f"{segment.name}: {found.count} customers now (computed in {_ms(found.seconds)})")
    for customer in found.sample:
        print(f"  {customer}")
    if found.count > len(found.sample):
        print(f"  ... and {found.count - len(found.sample)} more")
    return 0


def run_members(args: argparse.Namespace) -> int:
    settings = Settings()
    _segment(settings, args.name)
    with _engine(settings) as engine, engine.connect() as connection:
        started = time.perf_counter()
        total = sizes(connection).get(args.name, 0)
        page = members(connection, args.name, limit=args.limit, after=args.after)
        took = time.perf_counter() - started
    print(f"{args.name}: {total} members (read in {_ms(took)})")
    for customer, entered in page:
        print(f"  {customer}  since {entered.isoformat(timespec='seconds')}")
    if page and len(page) == args.limit:
        print(f"  next page: --after {page[-1][0]}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    settings = Settings()
    column, values = read_list(args.file)
    with _engine(settings) as engine, engine.begin() as connection:
        held = import_list(connection, args.name, column, values, now=datetime.now(UTC))
    readers = sorted(
        name
        for name, segment in load_segments(settings.segments_dir).items()
        if args.name in dependencies(segment).lists
    )
    print(f"list {args.name}: {held} customers (from {len(values)} {column} values in {args.file.name})")
    if readers:
        print(f"segments reading it ({', '.join(readers)}) are refreshed by the Schedule's next run")
    return 0


def _segment(settings: Settings, given: str) -> Segment:
    """The segment a FILE (checked with the segments of its folder) or a NAME names."""
    path = Path(given)
    if given.endswith((".yaml", ".yml")) or path.is_file():
        found = load_segment_files(sorted(set(path.parent.glob("*.yaml")) | {path}))
        return found[load_segment(path).name]
    segments = load_segments(settings.segments_dir)
    if given not in segments:
        raise UsageError(f"no segment {given!r} in {settings.segments_dir}{did_you_mean(given, segments)}")
    return segments[given]


def _kept_by(segment: Segment) -> str:
    """What keeps the segment current: ``events`` (on the API's path), ``schedule`` (time, consent, lists,
    traits)."""
    found = dependencies(segment)
    on_schedule = found.changes_with_time or found.consent or bool(found.lists or found.traits)
    on_events = bool(found.events or found.traits)
    return "events+schedule" if on_events and on_schedule else "schedule" if on_schedule else "events"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    """The deployment's database, upgraded if it is behind, disposed at the end."""
    engine = make_engine(settings.database)
    try:
        yield engine
    finally:
        engine.dispose()
