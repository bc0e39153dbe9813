"""``journeys score CUSTOMER``: a customer's computed traits, explained (issue 15, item 5).

Each lead score event by event (when, which event, its points, what is left of them after decay) with the
trait rules the customer meets and the total; each customer value's recency, frequency and monetary scores,
the values behind them and the RFM group. Computed by the same SQL the segments use (``audiences.scoring``), at
this moment or ``--at`` another, so a marketer can see why a customer is (not) a hot lead.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from audiences.scores import LeadScore, ScoreDefinition, load_scores, scores_beside
from audiences.scoring import LeadScoreExplained, Rfm, explain_customer
from contracts.errors import UsageError
from journeymap.durations import format_duration
from journeymap.suggest import did_you_mean
from runtime.settings import Settings
from storage import make_engine


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or date-time (2026-12-01T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(subparsers: object) -> None:
    parser = subparsers.add_parser(  # type: ignore[attr-defined]
        "score", help="a customer's lead scores event by event, and customer value (RFM)"
    )
    parser.add_argument("customer", metavar="CUSTOMER", help="the customer id")
    parser.add_argument("--score", metavar="NAME", help="only this score (default: every score in scores/)")
    parser.add_argument("--at", type=_moment, default=None, help="compute as at this moment (default: now)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    folder = scores_beside(settings.segments_dir)
    scores: dict[str, ScoreDefinition] = load_scores(folder)
    if not scores:
        raise UsageError(f"no scores defined in {folder} (docs/audiences.md: lead scores and customer value)")
    if args.score is not None:
        if args.score not in scores:
            raise UsageError(f"no score {args.score!r} in {folder}{did_you_mean(args.score, scores)}")
        scores = {args.score: scores[args.score]}
    now = args.at or datetime.now(UTC)
    engine = make_engine(settings.database)
    try:
        with engine.connect() as connection:
            started = time.perf_counter()
            found = explain_customer(connection, scores, args.customer, now)
            took = time.perf_counter() - started
    finally:
        engine.dispose()
    print(f"{args.customer} at {_iso(now)} (computed in {took * 1000:.1f} ms)")
    for item in found:
        definition = scores[item.name]
        if isinstance(item, LeadScoreExplained) and isinstance(definition, LeadScore):
            _print_lead_score(item, definition)
        elif isinstance(item, Rfm):
            _print_rfm(item)
    return 0


def _iso(moment: datetime) -> str:
    """UTC, to the second; a naive moment (a driver's) is UTC already, never the machine's local time."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_lead_score(item: LeadScoreExplained, definition: LeadScore) -> None:
    decay = f"halving every {format_duration(definition.half_life)}" if definition.half_life else "no decay"
    print(f"{item.name}: {item.total:.2f} ({decay})")
    if item.events:
        width = max(len(e.type) for e in item.events)
        print(f"  {'when':<20}  {'event':<{width}}  {'points':>8}  {'now':>8}")
        for event in item.events:
            when = _iso(event.occurred_at)
            print(f"  {when:<20}  {event.type:<{width}}  {event.points:>8.2f}  {event.decayed:>8.2f}")
    else:
        print("  no event earned points")
    for rule in item.traits:
        print(f"  trait {rule.trait} {rule.rule}: {rule.points:+.2f}")
    print(f"  total {item.total:.2f}")


def _print_rfm(item: Rfm) -> None:
    if item.group is None:
        print(f"{item.name}: no purchase, no RFM group")
        return
    last = _iso(item.last_purchase) if item.last_purchase else "-"
    print(
        f"{item.name}: {item.group} (recency {item.recency}, frequency {item.frequency}, monetary {item.monetary}; "
        f"{item.purchases} purchases, {item.money:.2f} in all, the last {last})"
    )
