"""``journeys events``: the tracking plan (each event, its properties and types, the journeys that use it).

``--json-schema`` prints a JSON Schema document per event (or writes ``<event>.schema.json`` files with
``--out``) for a backend's tests; ``--stats`` prints the events received by type: declared, unknown, refused,
quarantined (docs/events.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analytics.event_counts import event_counts, format_counts
from journeymap import JourneyMap
from journeymap.events import TrackingPlan, track_schema
from runtime.settings import Settings
from starter.catalog import load_catalog, load_plan
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("events", help="the tracking plan: events, their properties, who uses them")
    parser.add_argument("--json-schema", action="store_true", help="JSON Schema documents, one per event")
    parser.add_argument("--out", type=Path, default=None, help="with --json-schema: a folder for the files")
    parser.add_argument("--stats", action="store_true", help="events received by type (needs the database)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    catalog = load_catalog(settings.journeys_dir)
    plan = load_plan(settings.journeys_dir, catalog)
    if args.stats:
        engine = make_engine(settings.database)
        try:
            counts = event_counts(engine, plan)
        finally:
            engine.dispose()
        print("\n".join(format_counts(counts)))
        return 0
    if args.json_schema:
        documents = {name: track_schema(name, spec) for name, spec in (plan.events if plan else {}).items()}
        if args.out is None:
            print(json.dumps(documents, indent=2))
            return 0
        args.out.mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            (args.out / f"{name}.schema.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"{len(documents)} schemas written to {args.out}")
        return 0
    print("\n".join(plan_lines(plan, catalog)))
    return 0


def plan_lines(plan: TrackingPlan | None, catalog: dict[str, JourneyMap]) -> list[str]:
    """The plan as text: each event with the journeys using it, then one line per property."""
    users: dict[str, list[str]] = {}
    for name, journey in catalog.items():
        for event in journey.event_types():
            users.setdefault(event, []).append(name)
    declared = dict(plan.events) if plan is not None else {}
    lines: list[str] = []
    if not declared:
        lines.append("no events are declared: the event API checks none (docs/events.md)")
    for event, spec in sorted(declared.items()):
        used = ", ".join(sorted(users.get(event, []))) or "no journey"
        policy = " (quarantined when invalid)" if spec.on_invalid == "quarantine" else ""
        lines.append(f"{event}: used by {used}{policy}")
        if spec.description:
            lines.append(f"    {spec.description}")
        for prop_name, prop in spec.properties.items():
            need = "required" if prop.required else "optional"
            values = f" one of {', '.join(map(str, prop.values))}" if prop.values is not None else ""
            about = f"  {prop.description}" if prop.description else ""
            lines.append(f"  {prop_name:<20} {prop.type_name:<10} {need}{values}{about}")
        if not spec.properties:
            lines.append("  (no properties)")
    for event in sorted(set(users) - set(declared)):
        lines.append(f"{event}: used by {', '.join(sorted(users[event]))} (not declared)")
    return lines
