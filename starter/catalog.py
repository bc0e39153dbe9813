"""The journey maps a deployment runs: every ``*.yaml`` in the journeys folder, all validated up front."""

from __future__ import annotations

from pathlib import Path

from journeymap import JourneyMap, MapError, MapValidationError, load_map


def load_catalog(journeys_dir: Path) -> dict[str, JourneyMap]:
    """Every map in ``journeys_dir`` by name; raises :class:`MapValidationError` listing every problem."""
    maps: dict[str, JourneyMap] = {}
    errors: list[MapError] = []
    for path in sorted(journeys_dir.glob("*.yaml")):
        try:
            journey = load_map(path)
        except MapValidationError as exc:
            errors += exc.errors
            continue
        if journey.name in maps:
            errors.append(MapError(path.name, "name", f"journey name {journey.name!r} is used by another map"))
        maps[journey.name] = journey
    if errors:
        raise MapValidationError(errors)
    return maps
