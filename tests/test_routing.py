"""Where an event goes (``journeymap.routing``), as a table: no Temporal, no database."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.ids import journey_workflow_id
from journeymap import load_map_text
from journeymap.routing import Routes

ORDERS = """
name: orders
version: 1
entry:
  events: [order_placed]
  key: order_id
exit_on: [account_closed]
steps:
  - id: await_shipping
    wait_for:
      events: [order_shipped]
      timeout: 7d
"""

WELCOME = """
name: welcome
version: 1
entry:
  events: [signed_up]
goal:
  events: [order_placed]
  within: 30d
steps:
  - id: pause
    wait:
      duration: 1d
"""

ROUTES = Routes({m.name: m for m in (load_map_text(t, source="test") for t in (ORDERS, WELCOME))})


def _id(journey: str, customer: str, key: str | None = None) -> str:
    return journey_workflow_id(journey, customer, key)


CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...], list[tuple[str, str, tuple[str, ...]]]]] = [
    # (why, event type, properties, absorbed ids, [(journey, action, workflow ids)])
    ("a trigger starts the instance of its key", "order_placed", {"order_id": "o-1"}, (), [
        ("orders", "start", (_id("orders", "c1", "o-1"),)),
        ("welcome", "signal", (_id("welcome", "c1"),)),  # the welcome journey's goal: in catalog order
    ]),
    ("a key that is not text names the same instance as its text", "order_shipped", {"order_id": 42}, (), [
        ("orders", "signal", (_id("orders", "c1", "42"),)),
    ]),
    ("a trigger of a map without a key starts the customer's one journey", "signed_up", {}, (), [
        ("welcome", "start", (_id("welcome", "c1"),)),
    ]),
    ("a trigger without its instance key starts nothing", "order_placed", {}, (), [
        ("orders", "missing_instance_key", ()),
        ("welcome", "signal", (_id("welcome", "c1"),)),
    ]),
    ("another event without the key is about the customer: every instance", "account_closed", {}, (), [
        ("orders", "signal_every_instance", ()),
    ]),
    ("an event with the key reaches that instance only", "account_closed", {"order_id": "o-1"}, (), [
        ("orders", "signal", (_id("orders", "c1", "o-1"),)),
    ]),
    ("an event no map names reaches none", "page_viewed", {"order_id": "o-1"}, (), []),
    ("merged ids: the same instance under each, the customer's own first", "order_shipped", {"order_id": "o-1"},
     ("anon-1", "anon-2"), [
        ("orders", "signal", tuple(_id("orders", c, "o-1") for c in ("c1", "anon-1", "anon-2"))),
    ]),
    ("merged ids: a trigger may find its journey under one of them", "signed_up", {}, ("anon-1",), [
        ("welcome", "start", (_id("welcome", "c1"), _id("welcome", "anon-1"))),
    ]),
    ("merged ids, each once, never the customer's own again", "signed_up", {}, ("anon-1", "c1", "anon-1"), [
        ("welcome", "start", (_id("welcome", "c1"), _id("welcome", "anon-1"))),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("why", "event_type", "properties", "absorbed", "expected"), CASES, ids=[c[0] for c in CASES])
def test_where_an_event_goes(
    why: str,
    event_type: str,
    properties: dict[str, Any],
    absorbed: tuple[str, ...],
    expected: list[tuple[str, str, tuple[str, ...]]],
) -> None:
    targets = ROUTES.targets("c1", event_type, properties, absorbed=absorbed)
    assert [(t.journey.name, t.action, t.workflow_ids) for t in targets] == expected


def test_every_instance_covers_the_merged_ids_and_a_start_goes_under_the_customers_own() -> None:
    [closed] = ROUTES.targets("c1", "account_closed", {}, absorbed=["anon-1"])
    assert closed.customer_ids == ("c1", "anon-1")
    assert closed.workflow_id is None
    [placed, _] = ROUTES.targets("c1", "order_placed", {"order_id": "o-1"}, absorbed=["anon-1"])
    assert (placed.workflow_id, placed.instance_key) == (_id("orders", "c1", "o-1"), "o-1")


def test_the_index_knows_which_events_trigger_a_journey() -> None:
    assert ROUTES.entry_event_types == {"order_placed", "signed_up"}
    assert ROUTES.event_types == {"order_placed", "order_shipped", "account_closed", "signed_up"}
    assert [m.name for m in ROUTES.journeys_for("order_placed")] == ["orders", "welcome"]
    assert ROUTES.journeys_for("page_viewed") == []
