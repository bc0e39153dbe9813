"""A full refresh of five segments: its time and peak memory as the audience grows (issue 15, item 11).

For each size a fresh database (a SQLite file, or a new database on the PostgreSQL server of ``--database-url``)
is filled in bulk with N customers, ten events each on average over the last 400 days (orders with an amount,
app opens, page views), a consent row for half of them and a few traits. Then, in a child process (so the fill
does not count), the five segments below are refreshed for everyone the way the Schedule's refresh does it: page
by page (``--page-size`` customers, 2,000 as deployed), each page one transaction of ``SegmentActivities``' own
page work (the set-based statements, then the page's segment events read back for routing; no Temporal). It
runs twice at one moment: the first refresh puts everyone in (every entry a row and an event), the second is the
steady state (nothing changed: what every later scheduled run costs when little moved).

    python -m bench.segments [--customers N ...] [--database-url URL] [--page-size N] [--code DIR ...]
                             [--quick] [--json FILE]

``--database-url`` defaults to ``JOURNEYS_TEST_DATABASE_URL`` when set (``scripts/postgres`` sets it), else
SQLite. Peak RSS is the child's own high-water mark (``VmHWM``; Linux, not ``ru_maxrss``, which carries the
parent's size over ``exec``); ``rss_before_mib`` is after its imports, so the difference is what the refresh
itself holds. Flat as the audience grows is the claim: pages bound it, whatever N. ``--code DIR ...``
runs the refresh of each checkout named (this one by default) on its own fresh copy of the same data (the fill
is seeded): an older commit's beside this one's is a before/after measured in one run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench.common import measured_in_checkout, parser, report
from bench.report import database
from storage import make_engine
from testkit.harness import ROOT

SEGMENTS = {
    "lapsed_customers": (ROOT / "journeys" / "segments" / "lapsed_customers.yaml").read_text(),
    "big_spenders": """
name: big_spenders
where: {performed: order_placed, within: 365d, at_least: 3, where: [{property: amount, at_least: 50}]}
""",
    "emailable": """
name: emailable
where: {consent: {channel: email, category: promotional}}
""",
    "premium_newcomers": """
name: premium_newcomers
where:
  all:
    - {trait: plan, one_of: [gold, platinum]}
    - {trait: signed_up_at, within: 180d}
    - any: [{trait: city, equals: Paris}, {trait: city, equals: Lyon}]
""",
    "vip_reachable": """
name: vip_reachable
where: {all: [{in_segment: big_spenders}, {in_segment: emailable}, {not: {in_segment: lapsed_customers}}]}
""",
}
"""One of each kind: event history with windows and property conditions, consent, traits with dates, and a
segment reading three others (refreshed after them)."""

EVENTS_PER_CUSTOMER = 10
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TYPES = ("order_placed", "app_opened", "page_viewed")
PLANS = ("free", "free", "gold", "platinum")
CITIES = ("Paris", "Lyon", "Berlin", "Madrid", "Oslo")

CHILD = """
import json, sys, time
from datetime import datetime
from activities.segments import SegmentActivities
from audiences.definitions import parse_segment
from audiences.membership import Audiences
from contracts.activities import RefreshSegmentsInput
from storage import make_engine

url, now, page_size, definitions = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import yaml
segments = {name: parse_segment(yaml.safe_load(text), source=name) for name, text in json.loads(definitions).items()}
audiences = Audiences(segments)
engine = make_engine(url, create=False)
work = SegmentActivities(engine, audiences, None)

def peak_kib():
    # VmHWM: this process's own peak since its exec. (ru_maxrss carries the forking parent's size over exec,
    # and the parent holds the fill's buffers.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

before = peak_kib()
runs = []
for _ in range(2):
    started, after, pages, entered, exited = time.perf_counter(), None, 0, 0, 0
    while True:
        page = RefreshSegmentsInput(after=after, page_size=page_size, now=now)
        upto, came, left, events = work._page(audiences.order, page)
        pages, entered, exited, after = pages + 1, entered + came, exited + left, upto
        if upto is None:
            break
    runs.append({"seconds": time.perf_counter() - started, "pages": pages, "entered": entered, "exited": exited})
peak = peak_kib()
with engine.connect() as connection:
    from audiences.membership import sizes
    held = sizes(connection)
print(json.dumps({"runs": runs, "before_kib": before, "peak_kib": peak, "sizes": held}))
"""
"""The measured process: imports first (their memory is the baseline), then two full refreshes, page by page."""


def _customer_id(number: int) -> str:
    return f"c{number:08d}"


def customers(
    count: int, seed: int = 7
) -> Iterator[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any], datetime]]]]:
    """``(id, traits, events)`` per customer, from one seeded generator (the same N gives the same data). Each
    customer was last active some day of the last 400, and their events fall in the 200 days before it, so the
    lapsed, the active and everyone between are there."""
    pick = random.Random(seed)
    for number in range(count):
        last = NOW - timedelta(days=pick.uniform(0, 400))
        signed_up = last - timedelta(days=200 + pick.uniform(0, 300))
        traits = {
            "plan": pick.choice(PLANS),
            "city": pick.choice(CITIES),
            "signed_up_at": signed_up.date().isoformat()
            if pick.random() < 0.8
            else (NOW - timedelta(days=pick.uniform(0, 365))).date().isoformat(),
            "promotional_paused": pick.random() < 0.05,
        }
        events = []
        for _ in range(max(1, round(pick.expovariate(1 / EVENTS_PER_CUSTOMER)))):
            kind = pick.choices(TYPES, weights=(3, 4, 3))[0]
            properties: dict[str, Any] = {}
            if kind == "order_placed":
                properties = {"order_id": f"o{pick.getrandbits(40)}", "amount": pick.randrange(500, 20000) / 100}
            events.append((kind, properties, last - timedelta(seconds=pick.uniform(0, 200 * 86400))))
        yield _customer_id(number), traits, events


def fill(engine: Engine, count: int, *, analyze: bool = False) -> dict[str, int]:
    """Bulk: SQLite's ``executemany`` on the driver's cursor in one transaction, PostgreSQL's ``COPY``. Rows made
    in Python from the generator, streamed, never all held."""
    counts = {"customers": 0, "events": 0, "consents": 0}

    def rows() -> Iterator[tuple[str, tuple[Any, ...]]]:
        pick = random.Random(11)
        for customer, traits, events in customers(count):
            counts["customers"] += 1
            yield "customer", (customer, json.dumps(traits), NOW)
            for kind, properties, at in events:
                counts["events"] += 1
                yield "event", (f"e{counts['events']}", customer, kind, json.dumps(properties), at, at)
            if pick.random() < 0.5:
                counts["consents"] += 1
                granted = pick.random() < 0.7
                yield "consent", (customer, "email", "promotional", granted, "bench", NOW - timedelta(days=30))

    columns = {
        "customer": ("id", "traits", "updated_at"),
        "event": ("event_id", "customer_id", "type", "properties", "occurred_at", "recorded_at"),
        "consent": ("customer_id", "channel", "category", "granted", "source", "at"),
    }
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            _copy(raw.driver_connection, columns, rows())
        else:
            _sqlite(raw.driver_connection, columns, rows())
        raw.commit()
    finally:
        raw.close()
    if engine.dialect.name == "postgresql":  # what autovacuum does after a bulk load; SQLite gets no ANALYZE, as in
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # a deployment
            connection.exec_driver_sql("VACUUM ANALYZE")
    elif analyze:  # statistics a deployment's SQLite never gathers: for comparing code the planner trap would stall
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    return counts


def _sqlite(connection: Any, columns: dict[str, tuple[str, ...]], rows: Iterator[tuple[str, tuple[Any, ...]]]) -> None:
    """Batches of 10,000 per table; datetimes as SQLAlchemy writes them to SQLite (naive UTC text)."""
    pending: dict[str, list[tuple[Any, ...]]] = {name: [] for name in columns}

    def flush(name: str) -> None:
        names = columns[name]
        statement = f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        connection.executemany(statement, [tuple(_sqlite_value(v) for v in row) for row in pending[name]])
        pending[name].clear()

    for name, row in rows:
        pending[name].append(row)
        if len(pending[name]) >= 10_000:
            flush(name)
    for name in columns:
        flush(name)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _copy(connection: Any, columns: dict[str, tuple[str, ...]], rows: Iterator[tuple[str, tuple[Any, ...]]]) -> None:
    """One ``COPY`` per table at a time: rows of one table are buffered until another table's row comes, in
    batches, so three copies never need to be open at once."""
    pending: dict[str, list[tuple[Any, ...]]] = {name: [] for name in columns}

    def flush(name: str) -> None:
        if not pending[name]:
            return
        with connection.cursor() as cursor, cursor.copy(f"COPY {name} ({', '.join(columns[name])}) FROM STDIN") as copy:
            for row in pending[name]:
                copy.write_row(row)
        pending[name].clear()

    for name, row in rows:
        pending[name].append(row)
        if len(pending[name]) >= 50_000:
            flush(name)
    for name in columns:
        flush(name)


def refresh(target: str, page_size: int, code: Path) -> dict[str, Any]:
    """Two full refreshes by the checkout ``code``, in a child process: their times, its peak RSS and the
    segments' sizes."""
    definitions = json.dumps(SEGMENTS)
    return measured_in_checkout(code, CHILD, [target, NOW.isoformat(), str(page_size), definitions], "the refresh")


def measure(
    count: int, url: str | None, page_size: int, code: Path, folder: Path, *, analyze: bool = False
) -> dict[str, Any]:
    with database(url, folder) as target:
        engine = make_engine(target)
        started = time.perf_counter()
        counts = fill(engine, count, analyze=analyze)
        filled = time.perf_counter() - started
        engine.dispose()
        measured = refresh(target, page_size, code)
    first, again = measured["runs"]
    return {
        "database": target.split(":", 1)[0].split("+", 1)[0],
        "code": _commit(code),
        "customers": counts["customers"],
        "events": counts["events"],
        "consents": counts["consents"],
        "fill_s": filled,
        "pages": first["pages"],
        "first_refresh_s": first["seconds"],
        "entered": first["entered"],
        "again_s": again["seconds"],
        "again_changes": again["entered"] + again["exited"],
        "customers_per_s": counts["customers"] / first["seconds"],
        "rss_before_mib": measured["before_kib"] / 1024,
        "peak_rss_mib": measured["peak_kib"] / 1024,
        "members": measured["sizes"],
    }


def _commit(code: Path) -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True)
    return found.stdout.strip() or code.name


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    args_parser.add_argument("--database-url", default=os.environ.get("JOURNEYS_TEST_DATABASE_URL"))
    args_parser.add_argument("--page-size", type=int, default=2000)
    args_parser.add_argument("--analyze", action="store_true", help="SQLite: ANALYZE after the fill (not as deployed)")
    args_parser.add_argument("--code", type=Path, nargs="+", default=[ROOT], help="checkouts to measure, in turn")
    args = args_parser.parse_args()
    sizes = [200, 400] if args.quick else args.customers
    page_size = 100 if args.quick else args.page_size
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            measure(n, args.database_url, page_size, code.resolve(), Path(tmp), analyze=args.analyze)
            for n in sizes
            for code in args.code
        ]
    report(
        "segments: a full refresh of five segments, time and peak RSS by audience",
        {"segments": sorted(SEGMENTS), "events_per_customer": EVENTS_PER_CUSTOMER, "page_size": page_size},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
