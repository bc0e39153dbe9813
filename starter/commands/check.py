"""``journeys check [PATH ...]``: everything to run before a deploy, with one exit code.

1. **validate**: every map (and its templates and events) of the paths given (maps, or folders of maps: the
   journeys folder by default), and what holds across a folder's maps, as a deployment loads them;
2. **segments**: the segments of each folder's ``segments/`` as the worker loads them (shapes, names,
   ``in_segment`` names and cycles), the events and properties they count against the tracking plan, and the
   segment events the valid maps name (``segment_entered.<segment>``) against the segments defined;
3. **scenarios**: the scenarios beside them (``scenarios/``), played on the time-skipping server as
   ``journeys test`` plays them;
4. **replay**: the recorded histories (``--histories DIR``, JSON as the Temporal UI and CLI export them; the
   ``histories/`` folder beside the maps by default) replayed against this code, so a change the journeys in
   flight could not follow is caught.

Every part runs, whatever the one before found, so one run lists every problem; exit 1 when any part failed.
A part with nothing to do (no scenario, no history) says so and does not fail the check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from audiences.definitions import Segment, check_map_segments, check_segment_events, read_segment_files
from journeymap import MapValidationError, load_map
from journeymap.errors import MapError
from runtime.connection import data_converter
from runtime.settings import Settings
from starter.catalog import load_catalog, load_plan, map_files
from starter.commands.replay import replay_files
from starter.commands.test import plan, play, quiet_sdk_logs


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="before a deploy: validate the maps, play their scenarios, replay recorded histories"
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="maps or folders of maps (default: the journeys folder)"
    )
    parser.add_argument(
        "--histories",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="recorded histories to replay (repeatable; default: histories/ beside the maps)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    paths: list[Path] = args.paths or [settings.journeys_dir]
    folders = [path if path.is_dir() else path.parent for path in paths]
    valid, invalid = _validate(paths)
    results = {
        "validate": not invalid,
        "segments": _segments(folders, valid),
        "scenarios": _scenarios(valid),
        "replay": _replay(args.histories or [folder / "histories" for folder in folders], settings),
    }
    failed = [name for name, ok in results.items() if not ok]
    print(f"check: {'FAILED (' + ', '.join(failed) + ')' if failed else 'ok'}")
    return 1 if failed else 0


def _validate(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The valid maps and the invalid ones; each problem printed."""
    print("== validate")
    files = [file for path in paths for file in (map_files(path) if path.is_dir() else [path])]
    valid, invalid = [], []
    for file in files:
        try:
            journey = load_map(file)
        except MapValidationError as exc:
            invalid.append(file)
            for error in exc.errors:
                print(error)
            continue
        valid.append(file)
        print(f"{file.name}: ok ({journey.name} v{journey.version}, {len(journey.steps)} steps)")
    for folder in (path for path in paths if path.is_dir()):
        if not any(file.parent == folder for file in invalid):
            try:  # what holds only across a folder's maps: unique names, one declaration per event
                load_catalog(folder)
            except MapValidationError as exc:
                invalid.append(folder)
                for error in exc.errors:
                    print(error)
    return valid, invalid


def _segments(folders: list[Path], maps: list[Path]) -> bool:
    """Each folder's segments, what they count, and the segments the valid ``maps`` of the folder name."""
    print("== segments")
    ok = True
    for folder in sorted(set(folders)):
        files = sorted((folder / "segments").glob("*.yaml"))
        mine = {path: load_map(path) for path in maps if path.parent == folder}
        found: dict[str, tuple[str, Segment]] = {}
        problems: list[MapError] = []
        try:
            found = read_segment_files(files)
        except MapValidationError as exc:
            problems += exc.errors
        else:
            try:
                plan = load_plan(folder, {journey.name: journey for journey in mine.values()})
            except MapValidationError:
                plan = None  # two maps declaring one event differently: reported by validate
            if plan is not None:
                problems += check_segment_events(found, plan)
        for path, journey in mine.items():
            problems += check_map_segments(journey, found, source=path.name)
        for problem in problems:
            print(problem)
        ok &= not problems
        if files and not problems:
            print(f"{folder.name}/segments: ok ({len(found)} segments: {', '.join(sorted(found))})")
        elif not files and not problems:
            print(f"{folder.name}: no segments")
    return ok


def _scenarios(maps: list[Path]) -> bool:
    """The scenarios of the valid ``maps`` (an invalid one was reported already)."""
    print("== scenarios")
    sys.stdout.flush()
    quiet_sdk_logs()
    if not maps:
        print("no valid map")
        return True
    try:
        planned = plan(maps)
    except MapValidationError as exc:
        if all(error.path == "" and error.source == "journeys test" for error in exc.errors):
            print("no scenario to play")  # maps without scenarios: nothing to fail
            return True
        for error in exc.errors:
            print(error)
        return False
    return play(planned, quiet=True) == 0


def _replay(folders: list[Path], settings: Settings) -> bool:
    print("== replay")
    files = sorted({file for folder in folders for file in folder.glob("*.json")})
    if not files:
        print(f"no recorded history in {', '.join(map(str, folders))}")
        return True
    report = asyncio.run(replay_files(files, data_converter(settings)))
    for where, problem in report.failures.items():
        print(f"NON-DETERMINISTIC {where}: {problem}")
    print(f"replayed {report.replayed} histories: {len(report.failures)} failed")
    return not report.failures
