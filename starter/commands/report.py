"""``journeys report``: per journey and step what happened, splits against their holdout, customer value (by
lifecycle stage, variant, and RFM group of each customer value in ``journeys/scores/``).

Writes the report as an HTML page (charts included, nothing fetched from the network) and, with ``--json``,
prints it as JSON. Before reading, it asks the journeys for their current state (``--no-refresh`` skips that,
e.g. when Temporal is not reachable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from analytics import build_report, refresh_runs, render_html
from analytics.event_counts import event_counts
from audiences.scores import load_scores, scores_beside
from journeymap import JourneyMap
from runtime.connection import connect
from runtime.settings import Settings
from starter.catalog import load_catalog, load_plan
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="journey funnels, test-and-learn results, customer value")
    parser.add_argument("--out", type=Path, default=None, help="HTML file to write (default: DATA_DIR/report.html)")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    parser.add_argument("--no-refresh", action="store_true", help="use the stored journey states as they are")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    catalog = load_catalog(settings.journeys_dir)
    engine = make_engine(settings.database)
    try:
        if not args.no_refresh:
            answered = asyncio.run(_refresh(settings, engine, catalog))
            print(f"refreshed {answered} journey states", file=sys.stderr)
        scores = load_scores(scores_beside(settings.segments_dir))
        report = build_report(engine, catalog, settings=settings.report, scores=scores)
        plan = load_plan(settings.journeys_dir, catalog)
        report = report.model_copy(update={"event_contract": event_counts(engine, plan)})
    finally:
        engine.dispose()
    out: Path = args.out or settings.data_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    print(f"report written to {out}", file=sys.stderr)
    if args.json:
        print(report.model_dump_json(indent=2))
    return 0


async def _refresh(settings: Settings, engine: Engine, catalog: dict[str, JourneyMap]) -> int:
    return await refresh_runs(await connect(settings), engine, catalog)
