"""``journeys track CUSTOMER EVENT [key=value ...]``: send one event to the journeys that name it."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from analytics.events import record_event
from contracts.errors import UsageError
from contracts.events import JourneyEvent
from journeymap.suggest import did_you_mean
from runtime.connection import connect
from runtime.settings import Settings
from starter.api.contract import EventContract, EventRefused
from starter.api.identities import merged_customer
from starter.catalog import load_catalog, load_plan
from starter.client import JourneyClient
from storage import make_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("track", help="send an event for a customer (as a backend would)")
    parser.add_argument("customer_id")
    parser.add_argument("event_type")
    parser.add_argument("properties", nargs="*", metavar="KEY=VALUE", help="event properties; values parsed as JSON")
    parser.add_argument("--id", dest="event_id", default=None, help="event id (default: a new one)")
    parser.set_defaults(handler=run)


def parse_properties(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` arguments, each value parsed as JSON when it is JSON; :class:`UsageError` names a bad one."""
    properties: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{pair!r}: write properties as KEY=VALUE")
        try:
            properties[key] = json.loads(raw)
        except json.JSONDecodeError:
            properties[key] = raw
    return properties


def run(args: argparse.Namespace) -> int:
    properties = parse_properties(args.properties)
    event = JourneyEvent(id=args.event_id or uuid.uuid4().hex, type=args.event_type, properties=properties)
    return asyncio.run(_track(args.customer_id, event))


async def _track(customer_id: str, event: JourneyEvent) -> int:
    settings = Settings()
    catalog = load_catalog(settings.journeys_dir)
    # The tracking plan holds here as at the event API (a quarantine is the API's; here the event is refused).
    verdict = EventContract(load_plan(settings.journeys_dir, catalog)).judge(event.type, event.properties)
    if verdict is not None:
        raise EventRefused(verdict.violations)
    client = JourneyClient.from_settings(await connect(settings), settings, catalog)
    engine = make_engine(settings.database)
    try:
        # An id identify merged into another stands for the survivor, as its identities do at the event API.
        customer_id, absorbed = await asyncio.to_thread(merged_customer, engine, customer_id)
        routed = await client.send_event(customer_id, event, absorbed=absorbed)
        await asyncio.to_thread(record_event, engine, customer_id, event)  # for the report, as the event API does
    finally:
        engine.dispose()
    if not routed:
        print(f"no journey reacts to {event.type!r}{did_you_mean(event.type, client.routes.event_types)}")
    for r in routed:
        print(f"{r.journey}: {r.action}" + (f" ({r.workflow_id})" if r.workflow_id else ""))
    return 0
