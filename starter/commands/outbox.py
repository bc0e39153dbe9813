"""``journeys outbox``: what was sent (or suppressed, failed, pending), newest last, from the delivery ledger.

With the embedded default providers this is the whole delivery: every message a journey sent is here.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlmodel import Session, col, select

from runtime.settings import Settings
from storage import Delivery, make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("outbox", help="show the messages journeys sent (the delivery ledger)")
    parser.add_argument("--customer", help="only this customer's messages")
    parser.add_argument("--channel", choices=["email", "sms", "push", "voice", "webhook"])
    parser.add_argument("--journey", help="only this journey's messages")
    parser.add_argument("--status", choices=["pending", "sent", "failed", "suppressed"])
    parser.add_argument("--limit", type=int, default=50, help="the newest N (default 50; 0 for all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, content included")
    parser.set_defaults(handler=run)


def query(args: argparse.Namespace) -> list[Delivery]:
    settings = Settings()
    engine = make_engine(settings.database)
    try:
        with Session(engine) as session:
            q = select(Delivery).order_by(col(Delivery.id).desc())
            if args.customer:
                q = q.where(Delivery.customer_id == args.customer)
            if args.channel:
                q = q.where(Delivery.channel == args.channel)
            if args.journey:
                q = q.where(Delivery.journey == args.journey)
            if args.status:
                q = q.where(Delivery.status == args.status)
            if args.limit > 0:
                q = q.limit(args.limit)
            return list(reversed(session.exec(q).all()))
    finally:
        engine.dispose()


def as_dict(row: Delivery) -> dict[str, Any]:
    return {
        "at": (row.sent_at or row.updated_at).isoformat(),
        "customer_id": row.customer_id,
        "journey": row.journey,
        "step": row.step,
        "channel": row.channel,
        "category": row.category,
        "template": row.template,
        "status": row.status,
        "reason": row.reason,
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "receipt": row.receipt,
        "idempotency_key": row.idempotency_key,
        "content": row.content,
    }


def _summary(row: Delivery) -> str:
    if row.status != "sent":
        return row.reason or ""
    c = row.content
    text = c.get("subject") or c.get("title") or c.get("text") or c.get("json") or ""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= 60 else first[:57] + "..."


def run(args: argparse.Namespace) -> int:
    rows = query(args)
    if args.json:
        for row in rows:
            print(json.dumps(as_dict(row), default=str))
        return 0
    if not rows:
        print("outbox is empty" + (" for these filters" if any((args.customer, args.channel, args.journey)) else ""))
        return 0
    table = [("AT (UTC)", "CUSTOMER", "JOURNEY/STEP", "CHANNEL", "STATUS", "MESSAGE / REASON")]
    for row in rows:
        table.append(
            (
                (row.sent_at or row.updated_at).strftime("%Y-%m-%d %H:%M"),
                row.customer_id,
                f"{row.journey}/{row.step}",
                row.channel,
                row.status,
                _summary(row),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    sys.stdout.flush()
    return 0
