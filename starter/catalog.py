"""The journey maps a deployment runs: every ``*.yaml`` in the journeys folder, all validated up front.

``events.yaml`` in that folder is not a map: it is the shared tracking plan (docs/events.md), which every map
there is checked against, and which, with the maps' own ``events:`` sections, the event API enforces.
"""

from __future__ import annotations

from pathlib import Path

from journeymap import JourneyMap, MapError, MapValidationError, load_map
from journeymap.events import EVENTS_FILE, TrackingPlan, declared_in, merge_plans
from journeymap.loader import events_file_beside


def load_catalog(journeys_dir: Path) -> dict[str, JourneyMap]:
    """Every map in ``journeys_dir`` by name; raises :class:`MapValidationError` listing every problem."""
    maps: dict[str, JourneyMap] = {}
    errors: list[MapError] = []
    try:
        shared = events_file_beside(journeys_dir)
    except MapValidationError as exc:
        errors += exc.errors
        shared = None
    for path in map_files(journeys_dir):
        try:
            journey = load_map(path, plan=shared)
        except MapValidationError as exc:
            errors += exc.errors
            continue
        if journey.name in maps:
            errors.append(MapError(path.name, "name", f"journey name {journey.name!r} is used by another map"))
        maps[journey.name] = journey
    if not errors:
        errors += merge_plans(_sections(shared, maps))[1]  # two maps declaring one event differently
    if errors:
        raise MapValidationError(errors)
    return maps


def map_files(journeys_dir: Path) -> list[Path]:
    """The maps of a journeys folder: its ``*.yaml`` but the tracking plan."""
    return [path for path in sorted(journeys_dir.glob("*.yaml")) if path.name != EVENTS_FILE]


def load_plan(journeys_dir: Path, catalog: dict[str, JourneyMap]) -> TrackingPlan | None:
    """The tracking plan the event API enforces: ``events.yaml`` and every map's ``events:`` section (None when
    nothing is declared: then every event is accepted unchecked)."""
    plan, errors = merge_plans(_sections(events_file_beside(journeys_dir), catalog))
    if errors:
        raise MapValidationError(errors)
    return plan if plan.events or (journeys_dir / EVENTS_FILE).is_file() else None


def map_plan(journey: JourneyMap, folder: Path) -> TrackingPlan | None:
    """The declarations one map is held to: the ``events.yaml`` in its folder and its own ``events:`` section
    (None when it has neither)."""
    shared = events_file_beside(folder)
    if shared is None and not journey.events:
        return None
    return merge_plans(_sections(shared, {journey.name: journey}))[0]  # a clash was reported when it loaded


def _sections(shared: TrackingPlan | None, catalog: dict[str, JourneyMap]) -> list[TrackingPlan]:
    found = [shared] if shared is not None else []
    return found + [declared_in(j.events, f"{name}.yaml") for name, j in catalog.items() if j.events]
