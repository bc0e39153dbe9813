"""Every segment condition kind, computed by the database (SQLite here, PostgreSQL in scripts/test's second pass).

One small population, one table of conditions and who they hold: each row is what a marketer writes and whom
they expect in the segment. Then the membership table: entering, leaving, history, and a time-only condition
that flips when the clock moves with no event at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from audiences.definitions import parse_segment
from audiences.lists import import_list
from audiences.membership import Audiences, Customers, members, page_end, preview, refresh, segments_of, sizes
from storage import make_engine
from storage.tables import Consent, Customer, CustomerIdentity, Event, SegmentMembership

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

TRAITS: dict[str, dict[str, Any]] = {
    "ann": {"plan": "gold", "age": 34, "city": "Paris", "vip": True, "signed_up": "2026-01-10"},
    "bob": {"plan": "silver", "age": "old", "city": 3, "vip": False, "signed_up": "2026-11-25T10:00:00Z"},
    "cid": {},
    "dee": {"plan": None, "age": 19.5},
}
ORDERS = [("ann", 90, 80), ("ann", 10, 20), ("bob", 100, 120), ("bob", 80, 60), ("bob", 70, 55)]
"""(customer, days ago, total)"""


def _segment(where: Any, name: str = "tested") -> Any:
    return parse_segment({"name": name, "where": where}, source="tested.yaml")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": i, "traits": t, "updated_at": NOW} for i, t in TRAITS.items()],
        )
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": f"{who}-{days}",
                    "customer_id": who,
                    "type": "order_placed",
                    "properties": {"total": total},
                    "occurred_at": NOW - timedelta(days=days),
                    "recorded_at": NOW,
                }
                for who, days, total in ORDERS
            ]
            + [
                {
                    "event_id": "cid-view",
                    "customer_id": "cid",
                    "type": "page_viewed",
                    "properties": {},
                    "occurred_at": NOW - timedelta(days=1),
                    "recorded_at": NOW,
                }
            ],
        )
        said = [
            ("ann", "email", "promotional", True, 5),
            ("bob", "*", "promotional", True, 5),
            ("bob", "email", "*", False, 2),  # later, and it covers email/promotional: bob is out
            ("cid", "sms", "promotional", True, 5),
        ]
        connection.execute(
            insert(Consent.__table__),  # type: ignore[attr-defined]
            [
                {
                    "customer_id": c,
                    "channel": ch,
                    "category": cat,
                    "granted": g,
                    "source": "api",
                    "at": NOW - timedelta(days=d),
                }
                for c, ch, cat, g, d in said
            ],
        )
        import_list(connection, "vip_import", "customer_id", ["ann", "dee", "nobody"], now=NOW)
    try:
        yield engine
    finally:
        engine.dispose()


CASES: list[tuple[str, Any, set[str]]] = [
    # trait: compare, exists, one of, dates
    ("equals text", {"trait": "plan", "equals": "gold"}, {"ann"}),
    ("not equals (absent counts)", {"trait": "plan", "not_equals": "gold"}, {"bob", "cid", "dee"}),
    ("equals true", {"trait": "vip", "equals": True}, {"ann"}),
    ("equals false", {"trait": "vip", "equals": False}, {"bob"}),
    ("exists", {"trait": "plan", "exists": True}, {"ann", "bob"}),
    ("does not exist (null counts)", {"trait": "plan", "exists": False}, {"cid", "dee"}),
    ("one of texts", {"trait": "plan", "one_of": ["gold", "silver"]}, {"ann", "bob"}),
    ("one of numbers", {"trait": "age", "one_of": [19.5, 34]}, {"ann", "dee"}),
    ("greater than (a text is no number)", {"trait": "age", "greater_than": 20}, {"ann"}),
    ("at most", {"trait": "age", "at_most": 19.5}, {"dee"}),
    ("less than", {"trait": "age", "less_than": 100}, {"ann", "dee"}),
    ("number is not text", {"trait": "city", "equals": 3}, {"bob"}),
    ("date before", {"trait": "signed_up", "before": "2026-06-01"}, {"ann"}),
    ("date after", {"trait": "signed_up", "after": "2026-06-01"}, {"bob"}),
    ("date within", {"trait": "signed_up", "within": "30d"}, {"bob"}),
    ("date before a duration ago", {"trait": "signed_up", "before": "30d"}, {"ann"}),
    # performed: counts, windows, properties
    ("performed ever", {"performed": "order_placed"}, {"ann", "bob"}),
    ("performed within", {"performed": "order_placed", "within": "60d"}, {"ann"}),
    ("none within (lapsed)", {"performed": "order_placed", "within": "60d", "at_most": 0}, {"bob", "cid", "dee"}),
    ("at least 3 times", {"performed": "order_placed", "at_least": 3}, {"bob"}),
    ("exactly twice", {"performed": "order_placed", "at_least": 2, "at_most": 2}, {"ann"}),
    (
        "with a property condition",
        {"performed": "order_placed", "where": [{"property": "total", "at_least": 100}]},
        {"bob"},
    ),
    ("since a date", {"performed": "order_placed", "since": "2026-10-01"}, {"ann"}),
    ("another event", {"performed": "page_viewed"}, {"cid"}),
    # consent: the latest word for the scope wins
    ("consented", {"consent": {"channel": "email", "category": "promotional"}}, {"ann"}),
    ("consented or never said", {"consent": {"channel": "email", "unset": True}}, {"ann", "cid", "dee"}),
    ("consented by sms", {"consent": {"channel": "sms"}}, {"bob", "cid"}),
    # static list, combinators
    ("on a list", {"in_list": "vip_import"}, {"ann", "dee"}),
    ("any", {"any": [{"trait": "plan", "equals": "silver"}, {"in_list": "vip_import"}]}, {"ann", "bob", "dee"}),
    ("all", {"all": [{"performed": "order_placed"}, {"not": {"trait": "plan", "equals": "gold"}}]}, {"bob"}),
    ("not (unknown counts as false)", {"not": {"trait": "age", "greater_than": 20}}, {"bob", "cid", "dee"}),
]


@pytest.mark.parametrize(("where", "expected"), [(w, e) for _, w, e in CASES], ids=[c[0] for c in CASES])
def test_each_condition_holds_whom_a_marketer_expects(engine: Engine, where: Any, expected: set[str]) -> None:
    segment = _segment(where)
    with engine.begin() as connection:
        entered = refresh(connection, segment, now=NOW)
        assert {c.customer_id for c in entered} == expected
        assert {c for c, _ in members(connection, "tested", limit=10)} == expected
        assert preview(connection, segment, now=NOW).count == len(expected)


@pytest.mark.parametrize("where", [w for _, w, _ in CASES], ids=[c[0] for c in CASES])
def test_the_event_paths_recheck_agrees_with_a_refresh(engine: Engine, where: Any) -> None:
    """The event API re-checks segments with statements built once (``Audiences.recheck``), moving each value
    that depends on the clock; it must give the same changes, members and events as a refresh, now and when
    time has moved on."""
    audiences = Audiences({"quick": _segment(where, "quick"), "slow": _segment(where, "slow")})
    customers = sorted(TRAITS)
    with engine.begin() as connection:
        for moment in (NOW, NOW + timedelta(days=51), NOW + timedelta(days=400, seconds=7)):
            quick = audiences.recheck(connection, "quick", now=moment, customers=customers)
            slow = refresh(
                connection, audiences.segments["slow"], now=moment, customers=Customers(only=tuple(customers))
            )
            assert sorted((c.customer_id, c.entered) for c in quick) == sorted((c.customer_id, c.entered) for c in slow)
            quick_members = {c for c, _ in members(connection, "quick", limit=10)}
            assert quick_members == {c for c, _ in members(connection, "slow", limit=10)}
        events = Event.__table__  # type: ignore[attr-defined]
        recorded = [
            (row.customer_id, row.type.replace("quick", "slow"), row.occurred_at)
            for row in connection.execute(select(events).where(events.c.type.like("segment_%.quick")))
        ]
        assert sorted(recorded) == sorted(
            (row.customer_id, row.type, row.occurred_at)
            for row in connection.execute(select(events).where(events.c.type.like("segment_%.slow")))
        )


def test_membership_of_another_segment_reads_its_current_members(engine: Engine) -> None:
    audiences = Audiences(
        {
            "gold": _segment({"trait": "plan", "equals": "gold"}, "gold"),
            "gold_buyers": _segment({"all": [{"in_segment": "gold"}, {"performed": "order_placed"}]}, "gold_buyers"),
        }
    )
    assert audiences.order == ["gold", "gold_buyers"]
    with engine.begin() as connection:
        changes = audiences.refresh(connection, ["gold_buyers", "gold"], now=NOW)
        assert [(c.segment, c.customer_id) for c in changes] == [("gold", "ann"), ("gold_buyers", "ann")]
        assert segments_of(connection, "ann") == [("gold", NOW), ("gold_buyers", NOW)]


def test_leaving_closes_the_stay_and_coming_back_opens_another(engine: Engine) -> None:
    lapsed = _segment(
        {"all": [{"performed": "order_placed"}, {"performed": "order_placed", "within": "60d", "at_most": 0}]}
    )
    with engine.begin() as connection:
        assert [c.customer_id for c in refresh(connection, lapsed, now=NOW)] == ["bob"]
        assert refresh(connection, lapsed, now=NOW) == []  # nothing changed: nothing happens twice
        # Time alone: 51 days on, ann's last order is 61 days old.
        later = NOW + timedelta(days=51)
        assert [(c.customer_id, c.entered) for c in refresh(connection, lapsed, now=later)] == [("ann", True)]
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": "bob-back",
                    "customer_id": "bob",
                    "type": "order_placed",
                    "properties": {},
                    "occurred_at": later,
                    "recorded_at": later,
                }
            ],
        )
        # Only bob is looked at: ann's stay is left alone whatever it would be.
        changes = refresh(connection, lapsed, now=later, customers=Customers(only=("bob",)))
        assert [(c.customer_id, c.entered) for c in changes] == [("bob", False)]
        assert sizes(connection) == {"tested": 1}
        history = connection.execute(
            select(SegmentMembership.customer_id, SegmentMembership.entered_at, SegmentMembership.exited_at).order_by(  # type: ignore[call-overload]
                SegmentMembership.id
            )
        ).all()
        assert [(c, e, x) for c, e, x in history] == [("bob", NOW, later), ("ann", later, None)]
        # Each change is an event, recorded like any other (the report and other segments read it).
        recorded = connection.execute(
            select(Event.event_id, Event.customer_id, Event.properties, Event.occurred_at)  # type: ignore[call-overload]
            .where(Event.type.in_(["segment_entered.tested", "segment_exited.tested"]))  # type: ignore[attr-defined]
            .order_by(Event.occurred_at, Event.event_id)
        ).all()
        segment = {"segment": "tested"}
        assert [tuple(row) for row in recorded] == [
            ("segment_entered.tested/1", "bob", segment, NOW),
            ("segment_entered.tested/2", "ann", segment, later),
            ("segment_exited.tested/1", "bob", segment, later),
        ]
        assert changes[0].event().id == "segment_exited.tested/1"


def test_pages_by_key_cover_everyone_once(engine: Engine) -> None:
    segment = _segment({"trait": "plan", "exists": False})
    seen: list[str] = []
    after: str | None = None
    with engine.begin() as connection:
        while True:
            upto = page_end(connection, after=after, size=2)
            seen += [
                c.customer_id
                for c in refresh(connection, segment, now=NOW, customers=Customers(after=after, upto=upto))
            ]
            if upto is None:
                break
            after = upto
    assert seen == ["cid", "dee"]


def test_a_list_imported_by_email_names_customers_through_their_identities(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(CustomerIdentity.__table__),  # type: ignore[attr-defined]
            [
                {"kind": "email", "value": "ann@example.com", "customer_id": "ann", "linked_at": NOW},
                {"kind": "email", "value": "ann.work@example.com", "customer_id": "ann", "linked_at": NOW},
            ],
        )
        held = import_list(
            connection, "vip_import", "email", ["ann@example.com", "ann.work@example.com", "x@example.com"], now=NOW
        )
        assert held == 1  # replaced whole: ann once, dee gone, the unknown address names nobody
        entered = refresh(connection, _segment({"in_list": "vip_import"}), now=NOW)
        assert [c.customer_id for c in entered] == ["ann"]


def test_the_segment_yaml_of_the_docs_is_valid() -> None:
    text = """
name: lapsed_customers
where:
  all:
    - performed: order_placed
    - {performed: order_placed, within: 60d, at_most: 0}
"""
    assert _segment(yaml.safe_load(text)["where"]).where
