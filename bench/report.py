"""The report's time and peak memory as events grow: flat memory is the claim, measured at several sizes.

For each size a fresh database (a SQLite file, or a new database on the PostgreSQL server of
``--database-url``) is filled in bulk with N events of a year of customers (sign-ups, orders with an amount,
app opens, shipments), and in proportion their profiles, deliveries and journey runs (a lifecycle run per
customer with its welcome split, an order_updates run per order). Then ``journeys report``'s work
(:func:`analytics.build_report` and the HTML page) runs in a child process, which reports its own time and
peak RSS, so the fill does not count.

    python -m bench.report [--events N ...] [--database-url URL] [--code DIR ...] [--quick] [--json FILE]

``--database-url`` defaults to ``JOURNEYS_TEST_DATABASE_URL`` when set (``scripts/postgres`` sets it), else
SQLite. ``--code DIR ...`` runs the report of each checkout named (this one by default) on the same data: an
older commit's beside this one's is a before/after.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, insert
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from bench.common import measured_in_checkout, parser, report
from storage import make_engine
from storage.tables import Customer, Delivery, Event, JourneyRun
from testkit.databases import fresh_database
from testkit.harness import ROOT

EVENTS_PER_CUSTOMER = 20
BATCH = 5_000
YEAR = datetime(2026, 1, 1, tzinfo=UTC)
STAGES = ("welcome", "maintenance", "rescue", "lost", "welcome_back")
VARIANTS = ("standard", "offer", "holdout")
OTHER_EVENTS = ("app_opened", "order_shipped", "package_delivered", "page_viewed")

CHILD = """
import json, resource, sys, time
from pathlib import Path
from analytics import build_report, render_html
from starter.catalog import load_catalog
from storage import make_engine

catalog = load_catalog(Path("journeys"))
engine = make_engine(sys.argv[1], create=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
built = build_report(engine, catalog)
page = render_html(built)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
orders = sum(row.orders for row in built.value_by_stage)
print(json.dumps({"seconds": seconds, "before_kib": before, "peak_kib": peak, "orders": orders, "html": len(page)}))
"""
"""The measured process: imports first (their memory is the baseline), then the report and its page."""


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class World:
    """N events' worth of rows, made in batches from one seeded generator (the same N gives the same data)."""

    def __init__(self, events: int, seed: int = 7) -> None:
        self.events = events
        self.customers = max(1, events // EVENTS_PER_CUSTOMER)
        self.random = random.Random(seed)
        self.counts = {"events": 0, "customers": 0, "deliveries": 0, "runs": 0, "orders": 0}

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(table, row)`` for every row, customer by customer."""
        budget = self.events
        for number in range(self.customers):
            left = self.customers - number
            mine = budget if left == 1 else max(1, min(budget - (left - 1), round(self.random.expovariate(1) * 19) + 1))
            budget -= mine
            yield from self._customer(f"cust-{number}", mine)

    def _customer(self, customer: str, events: int) -> Iterator[tuple[str, dict[str, Any]]]:
        pick = self.random
        signed_up = YEAR + timedelta(seconds=pick.randrange(270 * 86400))
        assigned = signed_up + timedelta(seconds=1, microseconds=pick.randrange(1_000_000))
        variant = pick.choices(VARIANTS, weights=(45, 45, 10))[0]
        yield (
            "customer",
            {
                "id": customer,
                "traits": {
                    "lifecycle_stage": pick.choice(STAGES),
                    "welcome_variant": variant,
                    "welcome_assigned_at": _iso(assigned),
                },
                "updated_at": signed_up,
            },
        )
        yield self._event(customer, "signed_up", {}, signed_up)
        times = sorted(signed_up + timedelta(seconds=pick.randrange(1, 95 * 86400)) for _ in range(events - 1))
        orders, first_order = 0, None
        for at in times:
            if pick.random() < 0.3:
                orders += 1
                if first_order is None and at - signed_up <= timedelta(days=30):
                    first_order = at
                order = f"{customer}-o{orders}"
                yield self._event(
                    customer, "order_placed", {"order_id": order, "amount": pick.randrange(500, 20000) / 100}, at
                )
                yield self._delivery(customer, "order_updates", "order_confirmed", "email", order, at, "sent")
                yield self._run(
                    f"journey/order_updates/{customer}/{order}", "order_updates", customer, at, "await_shipment"
                )
            else:
                yield self._event(customer, pick.choice(OTHER_EVENTS), {"source": "app"}, at)
        yield self._delivery(customer, "lifecycle", "welcome_message", "email", "welcome", signed_up, "sent")
        invite = "sent" if pick.random() < 0.7 else "suppressed"
        yield self._delivery(customer, "lifecycle", "welcome_app_invite", "sms", "invite", signed_up, invite)
        table, run = self._run(f"journey/lifecycle/{customer}", "lifecycle", customer, signed_up, "maintenance")
        run["split_variants"] = {"welcome_split": variant}
        run["goal_reached_at"] = first_order
        yield table, run
        self.counts["customers"] += 1
        self.counts["orders"] += orders

    def _event(self, customer: str, kind: str, properties: dict[str, Any], at: datetime) -> tuple[str, dict[str, Any]]:
        self.counts["events"] += 1
        row = {
            "event_id": uuid.UUID(int=self.random.getrandbits(128)).hex,
            "customer_id": customer,
            "type": kind,
            "properties": properties,
            "occurred_at": at,
            "recorded_at": at,
        }
        return "event", row

    def _delivery(
        self, customer: str, journey: str, step: str, channel: str, key: str, at: datetime, status: str
    ) -> tuple[str, dict[str, Any]]:
        self.counts["deliveries"] += 1
        idempotency = f"{journey}/{customer}/{key}/{step}"
        row: dict[str, Any] = {
            "idempotency_key": idempotency,
            "channel": channel,
            "delivery_key": f"{idempotency}#{channel}",
            "customer_id": customer,
            "journey": journey,
            "step": step,
            "template": step,
            "category": "transactional",
            "status": status,
            "reason": None if status == "sent" else "consent",
            "content": {},
            "created_at": at,
            "updated_at": at,
            "sent_at": at if status == "sent" else None,
        }
        return "delivery", row

    def _run(
        self, workflow_id: str, journey: str, customer: str, at: datetime, step: str
    ) -> tuple[str, dict[str, Any]]:
        self.counts["runs"] += 1
        row = {
            "workflow_id": workflow_id,
            "journey": journey,
            "customer_id": customer,
            "status": "waiting",
            "step": step,
            "entered_at": at,
            "goal_reached_at": None,
            "split_variants": {},
            "refreshed_at": at,
        }
        return "journeyrun", row


def fill(engine: Engine, world: World) -> None:
    """Bulk inserts in batches (one ``executemany`` per table per batch), one transaction per batch."""
    tables = {_table(m).name: _table(m) for m in (Customer, Delivery, Event, JourneyRun)}
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}

    def flush() -> None:
        with engine.begin() as connection:
            for name, rows in pending.items():
                if rows:
                    connection.execute(insert(tables[name]), rows)
                    rows.clear()

    for name, row in world.rows():
        pending[name].append(row)
        if len(pending[name]) >= BATCH:
            flush()
    flush()


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in ``folder``, or a new database on ``url``'s server, dropped after."""
    if url is None or url.startswith("sqlite"):
        yield f"sqlite:///{folder / f'report-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with fresh_database(admin, "bench_report") as target:
            yield target
    finally:
        admin.dispose()


def run_report(target: str, code: Path) -> dict[str, Any]:
    """The report of the checkout ``code`` on ``target``, in a child process: its time and peak RSS."""
    return measured_in_checkout(code, CHILD, [target], f"the report of {code}")


def _commit(code: Path) -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True)
    return found.stdout.strip() or str(code)


def measure(events: int, url: str | None, codes: list[Path], folder: Path) -> list[dict[str, Any]]:
    """Fill a fresh database with ``events``, then run each checkout's report on it."""
    with database(url, folder) as target:
        engine = make_engine(target)
        world = World(events)
        started = time.perf_counter()
        fill(engine, world)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        filled = time.perf_counter() - started
        engine.dispose()
        rows = []
        for code in codes:
            measured = run_report(target, code)
            rows.append(
                {
                    "events": world.counts["events"],
                    "customers": world.counts["customers"],
                    "deliveries": world.counts["deliveries"],
                    "runs": world.counts["runs"],
                    "database": target.split(":", 1)[0],
                    "code": _commit(code),
                    "fill_s": filled,
                    "report_s": measured["seconds"],
                    "rss_before_mib": measured["before_kib"] / 1024,
                    "peak_rss_mib": measured["peak_kib"] / 1024,
                    "report_orders": measured["orders"],
                    "orders": world.counts["orders"],
                }
            )
    return rows


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    args_parser.add_argument("--database-url", default=os.environ.get("JOURNEYS_TEST_DATABASE_URL"))
    args_parser.add_argument(
        "--code", type=Path, nargs="+", default=[ROOT], help="checkouts whose report runs on the same data"
    )
    args = args_parser.parse_args()
    sizes = [2_000, 10_000] if args.quick else args.events
    codes = [code.resolve() for code in args.code]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for n in sizes for row in measure(n, args.database_url, codes, Path(tmp))]
    report(
        "journeys report: time and peak RSS by events",
        {"events_per_customer": EVENTS_PER_CUSTOMER, "batch": BATCH},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
