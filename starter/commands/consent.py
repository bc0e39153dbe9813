"""``journeys consent show|grant|revoke CUSTOMER`` and ``journeys consent audit``: a customer's say, from a shell.

Writes to the journeys database directly, like ``journeys identify``; a change holds from the customer's very next
send (consent is read at every send), and the segments reading consent are re-checked for the customer at once,
their changes routed to journeys through Temporal (``starter.consent_segments``). Every change is recorded with its
source (``cli`` unless given) and time, and ``audit`` prints the whole trail as CSV or JSON lines for a compliance
officer.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from activities.consent import set_consent
from activities.preferences import choices, consent_history, pause_in_force
from activities.privacy import consent_record
from contracts.errors import InputError, UsageError
from journeymap.durations import parse_duration
from journeymap.preferences import load_preferences
from runtime.settings import Settings
from starter.api.privacy import audit_csv, parse_since
from starter.consent_segments import recheck_from_cli
from storage import make_engine

CHANNELS = ("*", "email", "sms", "push", "voice", "webhook")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("consent", help="show, grant or revoke a customer's consent; the audit trail")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="what the next send to CUSTOMER will do, by channel and category")
    show.add_argument("customer_id", metavar="CUSTOMER")
    show.add_argument("--json", action="store_true", help="one JSON object")
    for name, text in (("grant", "record the customer's yes"), ("revoke", "record the customer's no")):
        change = actions.add_parser(name, help=text)
        change.add_argument("customer_id", metavar="CUSTOMER")
        change.add_argument("--channel", default="*", choices=CHANNELS, help="a channel, or * (default) for all")
        change.add_argument(
            "--category", default="*", help="transactional, promotional, a topic of the brand, or * (default)"
        )
        change.add_argument("--source", default="cli", help="where the customer said it (default: cli)")
        if name == "revoke":
            change.add_argument("--for", dest="duration", help="only for this long (a pause), e.g. 30d")
    audit = actions.add_parser("audit", help="every consent change, oldest first (CSV, or --json lines)")
    audit.add_argument("--customer", help="only this customer's")
    audit.add_argument("--since", help="only changes at or after this ISO date or time")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    catalog = load_preferences(settings.preferences_file)
    engine = make_engine(settings.database)
    try:
        if args.action == "audit":
            try:
                since = parse_since(args.since)
            except InputError as exc:
                raise UsageError(f"--{exc}") from exc
            records = [consent_record(r) for r in consent_history(engine, customer_id=args.customer, since=since)]
            if args.json:
                for record in records:
                    print(json.dumps(record))
            else:
                sys.stdout.write(audit_csv(records))
            return 0
        if args.action == "show":
            opt_in = settings.delivery.promotional_requires_opt_in
            boxes = choices(engine, args.customer_id, catalog, promotional_requires_opt_in=opt_in)
            pause = pause_in_force(engine, args.customer_id)
            if args.json:
                shown = [
                    {"channel": b.channel, "scope": b.scope, "allowed": b.allowed, "reason": b.reason} for b in boxes
                ]
                paused = pause.until.isoformat() if pause else None
                print(json.dumps({"customer_id": args.customer_id, "choices": shown, "paused_until": paused}))
                return 0
            for box in boxes:
                line = f"{box.scope:<20} {box.channel:<6} {'yes' if box.allowed else 'no':<4} {box.reason or ''}"
                print(line.rstrip())
            if pause is not None:
                print(f"promotions paused until {pause.until.isoformat()} ({pause.source})")
            return 0
        known = {"*", "transactional", "promotional", *catalog.topics}
        if args.category not in known:
            raise UsageError(f"--category: {args.category!r} is not one of {', '.join(sorted(known))}")
        until = None
        if getattr(args, "duration", None):
            try:
                until = datetime.now(UTC) + parse_duration(args.duration)
            except ValueError as exc:
                raise UsageError(f"--for: {exc}") from exc
        row = set_consent(
            engine,
            args.customer_id,
            channel=args.channel,
            category=args.category,
            granted=args.action == "grant",
            source=args.source,
            until=until,
        )
        word = "granted" if row.granted else "revoked"
        print(f"customer {args.customer_id}: {word} {row.channel}/{row.category} ({row.source})")
        note = recheck_from_cli(settings, engine, [args.customer_id])
        if note is not None:
            print(f"customer {args.customer_id}: {note}")
        return 0
    finally:
        engine.dispose()
