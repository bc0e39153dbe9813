"""``journeys validate FILE...``: exit 0 when every map and segment is valid, else one line per problem.

A file named ``events.yaml`` is the tracking plan (docs/events.md), checked as such; each map is checked against
the ``events.yaml`` beside it and its own ``events:`` section. A file in a folder named ``segments`` is a segment
definition (``audiences.definitions``); it is checked with the other segments of its folder, since a segment may
read another (``in_segment``) and the scores in ``scores/`` beside it. A file in a folder named ``scores`` is a
computed trait (``audiences.scores``: a lead score or a customer value). A map that names a segment's events
(``segment_entered.<segment>``) is checked against the segments in ``segments/`` beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audiences.broadcasts import load_broadcast, load_broadcast_files
from audiences.definitions import check_map_segments, load_segment, load_segment_files
from audiences.scores import load_score, read_scores, scores_beside
from journeymap import MapError, MapValidationError, load_map
from journeymap.events import EVENTS_FILE
from journeymap.loader import events_file_beside, load_events_file
from journeymap.preferences import check_preferences


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="check journey maps (their templates and events), events.yaml and segments"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--templates", type=Path, default=None, help="templates folder (default: templates/ beside each map)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    failed = False
    segments = [path for path in args.files if path.parent.name == "segments"]
    scores = [path for path in args.files if path.parent.name == "scores"]
    broadcasts = [path for path in args.files if path.parent.name == "broadcasts"]
    for path in args.files:
        if path in segments or path in scores or path in broadcasts:
            continue
        try:
            if path.name == EVENTS_FILE:
                plan = load_events_file(path)
                print(f"{path.name}: ok ({len(plan.events)} events declared)")
                continue
            journey = load_map(path, templates_dir=args.templates)
            declared = journey.events or events_file_beside(path.parent) is not None
        except MapValidationError as exc:
            failed = True
            _report(exc.errors)
            continue
        unknown = check_map_segments(journey, _segment_names(path.parent / "segments"), source=path.name)
        if unknown:
            failed = True
            _report(unknown)
            continue
        note = "" if declared else "; no events declared: the event API checks none"
        print(f"{path.name}: ok ({journey.name} v{journey.version}, {len(journey.steps)} steps{note})")
    # The brand's preference catalog beside the maps (``brand/preferences.yaml``), once per folder.
    for folder in sorted({path.resolve().parent for path in args.files if path not in segments + scores + broadcasts}):
        problems = check_preferences(folder / "brand" / "preferences.yaml", args.templates or folder / "templates")
        for problem in problems:
            print(problem, file=sys.stderr)
        failed |= bool(problems)
    for folder in sorted({path.parent for path in scores}):
        failed |= _validate_scores([path for path in scores if path.parent == folder])
    for folder in sorted({path.parent for path in segments}):
        failed |= _validate_segments(folder, [path for path in segments if path.parent == folder])
    for folder in sorted({path.parent for path in broadcasts}):
        failed |= _validate_broadcasts(folder, [path for path in broadcasts if path.parent == folder])
    return 1 if failed else 0


def _validate_scores(paths: list[Path]) -> bool:
    """Check score files (with the others of their folder: two may not share a name); True on a problem."""
    folder = paths[0].parent
    _, problems = read_scores(sorted(set(folder.glob("*.yaml")) | set(paths)))
    return _answer(paths, problems, lambda path: load_score(path).describe())


def _validate_broadcasts(folder: Path, paths: list[Path]) -> bool:
    """Check ``paths`` among every broadcast of ``folder``, against the maps and segments beside the folder."""
    home = folder.parent
    maps = {}
    for path in sorted(home.glob("*.yaml")):
        if path.name == EVENTS_FILE:
            continue
        try:
            journey = load_map(path)
        except MapValidationError:
            continue  # a map's own problems are reported when the maps are validated
        maps[journey.name] = journey
    every = sorted(set(folder.glob("*.yaml")) | set(paths))
    problems = _problems_of(lambda: load_broadcast_files(every, maps=maps, segments=_segment_names(home / "segments")))

    def describe(path: Path) -> str:
        broadcast = load_broadcast(path)
        return f"broadcast {broadcast.name}: {broadcast.journey} to {broadcast.segment}, {broadcast.when.describe()}"

    return _answer(paths, problems, describe)


def _validate_segments(folder: Path, paths: list[Path]) -> bool:
    """Check ``paths`` among every segment of ``folder``; True when one of them has a problem."""
    score_folder = scores_beside(folder)
    scores, _ = read_scores(sorted(score_folder.glob("*.yaml")) if score_folder.is_dir() else [])
    every = sorted(set(folder.glob("*.yaml")) | set(paths))
    problems = _problems_of(lambda: load_segment_files(every, scores=scores))
    return _answer(paths, problems, lambda path: f"segment {load_segment(path).name}")


def _problems_of(load: Callable[[], object]) -> list[MapError]:
    """What ``load`` (of a whole folder) refused, or nothing."""
    try:
        load()
    except MapValidationError as exc:
        return list(exc.errors)
    return []


def _answer(paths: list[Path], problems: list[MapError], describe: Callable[[Path], str]) -> bool:
    """Report the problems of ``paths`` among their folder's ``problems``, and an ok line (``describe``) for each
    other path; True when one of ``paths`` has a problem."""
    names = {path.name for path in paths}
    mine = [error for error in problems if error.source in names]
    _report(mine)
    bad = {error.source for error in mine}
    for path in paths:
        if path.name not in bad:
            print(f"{path.name}: ok ({describe(path)})")
    return bool(mine)


def _segment_names(folder: Path) -> set[str]:
    """The names of the segments in ``folder`` (those of its files that read as segments; none when no folder)."""
    names: set[str] = set()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            names.add(load_segment(path).name)
        except MapValidationError:
            continue  # reported when the segments themselves are validated
    return names


def _report(errors: list[MapError]) -> None:
    for error in errors:
        print(error, file=sys.stderr)
