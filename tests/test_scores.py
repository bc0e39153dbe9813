"""Lead scores and customer value (issue 15, item 5), computed by the database (SQLite here, PostgreSQL in
scripts/test's second pass): the decay at a known age, the RFM groups of a small set of customers, both as
segment conditions, as computed traits, and explained event by event.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from audiences.definitions import check_segments, parse_segment
from audiences.membership import Audiences, preview, refresh
from audiences.scores import GROUP_NAMES, GROUPS, CustomerValue, LeadScore, group_of, parse_score
from audiences.scoring import computed_traits, explain_lead_score, rfm_of, value_by_group
from journeymap.errors import MapValidationError
from storage import make_engine
from storage.tables import Customer, Event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

LEAD: Any = parse_score(
    {
        "name": "lead_score",
        "half_life": "10d",
        "events": [
            {"event": "demo_requested", "points": 40},
            {"event": "pricing_viewed", "points": 10},
            {"event": "pricing_viewed", "points": 5, "where": [{"property": "page", "equals": "enterprise"}]},
        ],
        "traits": [{"trait": "company_size", "at_least": 50, "points": 20}],
    },
    source="lead_score.yaml",
)
VALUE: Any = parse_score(
    {"name": "customer_value", "rfm": {"purchase": "order_placed", "value": "amount"}},
    source="customer_value.yaml",
)
SCORES = {"lead_score": LEAD, "customer_value": VALUE}

TRAITS: dict[str, dict[str, Any]] = {
    "ann": {"company_size": 100},
    "bob": {"company_size": "big"},  # a text is no number: no points, and no failed query
    "cid": {},
    "dee": {"company_size": 50},
}
LEADS = [
    ("ann", "demo_requested", 10, {}),  # one half-life ago: 20 of 40
    ("ann", "pricing_viewed", 0, {"page": "enterprise"}),  # today, both pricing rules: 15
    ("bob", "demo_requested", 20, {}),  # two half-lives: 10
    ("cid", "pricing_viewed", 30, {}),  # three: 1.25
    ("cid", "demo_requested", -1, {}),  # tomorrow's does not count yet
    ("cid", "signed_up", 0, {}),  # no rule for it
]
"""(customer, event, days ago, properties)"""
ORDERS = (
    [("champ", d, 100) for d in range(1, 9)]  # 8 orders, the last yesterday, 800: R5 F4 M4
    + [("newbie", 3, 20)]  # one small order this week: R5 F1 M1
    + [("risky", 200 + d, 150) for d in range(5)]  # 5 orders, 200 days ago, 750: R1 F3 M4
    + [("gone", 400, 10)]  # R1 F1 M1
    + [("steady", 40 + d, 100) for d in range(16)]  # 16 orders, the last 40 days ago, 1600: R3 F5 M5
)
"""(customer, days ago, amount)"""
RFM_GROUPS = {"champ": "champions", "newbie": "new", "risky": "at_risk", "gone": "lost", "steady": "loyal"}


def _event(i: int, who: str, kind: str, days: float, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "customer_id": who,
        "type": kind,
        "properties": properties,
        "occurred_at": NOW - timedelta(days=days),
        "recorded_at": NOW,
    }


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    customers = set(TRAITS) | {who for who, _, _ in ORDERS}
    events = [_event(i, who, kind, days, props) for i, (who, kind, days, props) in enumerate(LEADS)]
    events += [
        _event(100 + i, who, "order_placed", days, {"amount": amount, "order_id": f"o{i}"})
        for i, (who, days, amount) in enumerate(ORDERS)
    ]
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": c, "traits": TRAITS.get(c, {}), "updated_at": NOW} for c in sorted(customers)],
        )
        connection.execute(insert(Event.__table__), events)  # type: ignore[attr-defined]
    try:
        yield engine
    finally:
        engine.dispose()


def _segment(where: Any, name: str = "tested") -> Any:
    segment = parse_segment({"name": name, "where": where}, source=f"{name}.yaml")
    assert check_segments({name: (f"{name}.yaml", segment)}, scores=SCORES) == []
    return segment


def test_points_halve_every_half_life(engine: Engine) -> None:
    with engine.connect() as connection:
        ann = explain_lead_score(connection, LEAD, "ann", NOW)
        assert [(e.type, e.points, round(e.decayed, 6)) for e in ann.events] == [
            ("demo_requested", 40.0, 20.0),  # 10 days old, half-life 10 days
            ("pricing_viewed", 15.0, 15.0),
        ]
        assert [(t.trait, t.points) for t in ann.traits] == [("company_size", 20.0)]
        assert ann.total == pytest.approx(55.0)
        bob = explain_lead_score(connection, LEAD, "bob", NOW)
        assert bob.total == pytest.approx(10.0)
        assert bob.traits == []
        cid = explain_lead_score(connection, LEAD, "cid", NOW)
        assert [e.type for e in cid.events] == ["pricing_viewed"]  # tomorrow's demo and the sign-up earn nothing
        assert cid.total == pytest.approx(1.25)
        # Ten more days: ann's demo is two half-lives old, her pricing visit one.
        later = explain_lead_score(connection, LEAD, "ann", NOW + timedelta(days=10))
        assert later.total == pytest.approx(10 + 7.5 + 20)


def test_a_score_without_half_life_never_decays(engine: Engine) -> None:
    flat = LEAD.model_copy(update={"half_life": None})
    with engine.connect() as connection:
        assert explain_lead_score(connection, flat, "ann", NOW + timedelta(days=365)).total == pytest.approx(75.0)


SCORE_CASES: list[tuple[str, Any, set[str]]] = [
    ("score at least", {"score": "lead_score", "at_least": 50}, {"ann"}),
    ("score between", {"score": "lead_score", "greater_than": 5, "less_than": 50}, {"bob", "dee"}),
    ("score at most (nothing is zero)", {"score": "lead_score", "at_most": 0}, {o[0] for o in ORDERS}),
    ("rfm group", {"score": "customer_value", "group": "champions"}, {"champ"}),
    ("rfm groups", {"score": "customer_value", "group": ["at_risk", "lost", "cannot_lose"]}, {"risky", "gone"}),
    ("no purchase, no group", {"not": {"score": "customer_value", "group": list(GROUP_NAMES)}}, set(TRAITS)),
]


@pytest.mark.parametrize(("where", "expected"), [(w, e) for _, w, e in SCORE_CASES], ids=[c[0] for c in SCORE_CASES])
def test_score_conditions_hold_whom_a_marketer_expects(engine: Engine, where: Any, expected: set[str]) -> None:
    segment = _segment(where)
    with engine.begin() as connection:
        assert {c.customer_id for c in refresh(connection, segment, now=NOW)} == expected
        assert preview(connection, segment, now=NOW).count == len(expected)


def test_a_lead_cools_down_with_time_alone(engine: Engine) -> None:
    hot = _segment({"score": "lead_score", "at_least": 50}, "hot_leads")
    audiences = Audiences({"hot_leads": hot})
    assert audiences.for_event("demo_requested") == ["hot_leads"]  # re-checked as the events it counts arrive
    assert audiences.for_traits(["company_size"]) == ["hot_leads"]
    assert audiences.scheduled() == ["hot_leads"]  # and on the schedule: the points decay
    with engine.begin() as connection:
        assert [(c.customer_id, c.entered) for c in refresh(connection, hot, now=NOW)] == [("ann", True)]
        # 55 today; 5 days on, 20 * 0.707 + 15 * 0.707 + 20 = 44.7: she leaves with no event at all.
        changes = refresh(connection, hot, now=NOW + timedelta(days=5))
        assert [(c.customer_id, c.entered) for c in changes] == [("ann", False)]


def test_rfm_scores_and_groups_of_a_small_set(engine: Engine) -> None:
    with engine.connect() as connection:
        found = {who: rfm_of(connection, VALUE, who, NOW) for who in RFM_GROUPS}
        assert {who: r.group for who, r in found.items()} == RFM_GROUPS
        champ = found["champ"]
        assert (champ.recency, champ.frequency, champ.monetary, champ.purchases, champ.money) == (5, 4, 4, 8, 800.0)
        assert champ.last_purchase is not None and champ.last_purchase.replace(tzinfo=UTC) == NOW - timedelta(days=1)
        assert (found["risky"].recency, found["risky"].frequency, found["risky"].monetary) == (1, 3, 4)
        nobody = rfm_of(connection, VALUE, "ann", NOW)
        assert (nobody.group, nobody.purchases, nobody.recency) == (None, 0, None)
        assert value_by_group(connection, VALUE, NOW) == [
            ("champions", 1, 800.0),
            ("loyal", 1, 1600.0),
            ("new", 1, 20.0),
            ("at_risk", 1, 750.0),
            ("lost", 1, 10.0),
        ]


def test_only_purchases_within_the_window_count(engine: Engine) -> None:
    recent = VALUE.model_copy(update={"rfm": VALUE.rfm.model_copy(update={"within": timedelta(days=365)})})
    with engine.connect() as connection:
        assert rfm_of(connection, recent, "gone", NOW).group is None
        assert rfm_of(connection, recent, "steady", NOW).purchases == 16


def test_the_rfm_grid_gives_every_cell_one_group() -> None:
    for recency in range(1, 6):
        for fm in range(1, 6):
            owners = [g.name for g in GROUPS if g.recency[0] <= recency <= g.recency[1] and g.fm[0] <= fm <= g.fm[1]]
            assert len(owners) == 1, (recency, fm, owners)
    assert group_of(5, 5, 4) == "champions"
    assert group_of(1, 5, 5) == "cannot_lose"
    assert group_of(2, 1, 2) == "hibernating"


def test_computed_traits_are_what_expressions_read(engine: Engine) -> None:
    with engine.connect() as connection:
        ann = computed_traits(connection, SCORES, "ann", NOW)
        champ = computed_traits(connection, SCORES, "champ", NOW)
    assert ann == {
        "customer_value": {
            "group": None,
            "recency": None,
            "frequency": None,
            "monetary": None,
            "purchases": 0,
            "value": 0.0,
            "last_purchase": None,
        },
        "lead_score": 55.0,
    }
    assert champ["customer_value"]["group"] == "champions"
    assert champ["customer_value"]["value"] == 800.0
    assert champ["lead_score"] == 0.0


def test_bad_definitions_are_refused_with_their_place() -> None:
    with pytest.raises(MapValidationError) as caught:
        parse_score({"name": "lead", "half_lfe": "3d", "events": [{"event": "x", "ponts": 3}]}, source="lead.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "lead.yaml: events[0].points: Field required",
        "lead.yaml: events[0].ponts: unknown field 'ponts' (did you mean 'points'?)",
        "lead.yaml: half_lfe: unknown field 'half_lfe' (did you mean 'half_life'?)",
    ]
    with pytest.raises(MapValidationError, match="recency thresholds must grow"):
        rfm = {"purchase": "o", "value": "a", "recency": ["9d", "3d", "4d", "5d"]}
        parse_score({"name": "v", "rfm": rfm}, source="v.yaml")
    with pytest.raises(MapValidationError, match="gives none"):
        parse_score({"name": "empty"}, source="empty.yaml")
    segment = parse_segment(
        {
            "name": "s",
            "where": {
                "any": [
                    {"score": "lead_scor", "at_least": 3},
                    {"score": "customer_value", "group": "champion"},
                    {"score": "customer_value", "at_least": 3},
                    {"score": "lead_score", "group": "champions"},
                ]
            },
        },
        source="s.yaml",
    )
    assert [str(e) for e in check_segments({"s": ("s.yaml", segment)}, scores=SCORES)] == [
        "s.yaml: where.any[0].score: unknown score 'lead_scor' (did you mean 'lead_score'?)",
        "s.yaml: where.any[1].group: unknown RFM group 'champion' (did you mean 'champions'?)",
        "s.yaml: where.any[2]: 'customer_value' is a customer value: compare its group (group: champions)",
        "s.yaml: where.any[3].group: 'lead_score' is a lead score: compare it with at_least, at_most ...",
    ]
    with pytest.raises(MapValidationError, match="compare the score"):
        parse_segment({"name": "s", "where": {"score": "lead_score"}}, source="s.yaml")


def test_the_types_of_the_definitions() -> None:
    assert isinstance(LEAD, LeadScore) and isinstance(VALUE, CustomerValue)


def test_decay_is_the_same_on_a_sqlite_without_math_functions(tmp_path: Path) -> None:
    """A SQLite built without its math functions gets ``power`` from storage.engine: the same decay. (Here the
    built-in is overridden by the registered one, as on such a build it would be the only one.)"""
    from sqlalchemy import event

    from storage.engine import _power

    calls: list[tuple[float, float]] = []

    def registered(base: float, exponent: float) -> float | None:
        calls.append((base, exponent))
        return _power(base, exponent)

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    event.listen(engine, "connect", lambda dbapi, _: dbapi.create_function("power", 2, registered))
    engine.dispose()  # connections made from now on carry the registered function
    with engine.begin() as connection:
        connection.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [_event(1, "ann", "demo_requested", 10, {}), _event(2, "ann", "pricing_viewed", 30, {})],
        )
        assert connection.exec_driver_sql("SELECT power(0.5, 2)").scalar() == 0.25
        calls.clear()
        assert explain_lead_score(connection, LEAD, "ann", NOW).total == pytest.approx(20 + 1.25)
        assert calls  # the registered function did the decaying
    engine.dispose()
