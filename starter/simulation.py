"""A simulated population living a year with the brand, on the time-skipping server.

Customers sign up over the first three quarters of the period, each with a persona (loyal, regular, occasional,
churner) that sets how often they buy, how much, and whether they use the app; churners go silent after a
while. The customers also *respond to the journeys*: each day the simulation reads the messages sent since
the day before, and a customer who got a promotional message buys more readily for a week (more so with an
offer code in it). So the report's lifts come from what the journeys did, not from numbers typed in here.

Every event is recorded for analytics (at the simulated time) and routed to the journeys, as a backend would;
orders are followed by ``order_shipped`` and ``package_delivered``, card holders get ``statement_ready`` each
month and now and then ``spending_limit_near``. One simulated day is two skips of the clock (``env.sleep``): to
the moment of the day's events, then to its end; the journeys' timers fire on the way, and nearly all the time
goes into what they do then (docs/benchmarks.md, ``bench.simulate``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from analytics.events import record_events
from contracts.events import JourneyEvent
from starter.client import JourneyClient
from storage.tables import Customer, Delivery

ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Paris", "Asia/Tokyo")
OFFER_CODES = ("WELCOME10", "COMEBACK15")


class SimulationConfig(BaseModel):
    customers: int = Field(default=1000, ge=1, le=200_000)
    days: int = Field(default=365, ge=1, le=3650)
    seed: int = 7
    concurrency: int = Field(default=32, ge=1, le=512)
    """Events in flight at once (signals to Temporal)."""
    boost_days: int = 7
    """How long a promotional message makes its customer more likely to buy."""
    boost: float = 1.8
    offer_boost: float = 3.0


@dataclass(frozen=True)
class Persona:
    name: str
    share: float
    days_between_orders: float
    basket: float
    app_share: float
    churns: bool = False


PERSONAS = (
    Persona("loyal", 0.25, 25, 60, 0.7),
    Persona("regular", 0.35, 50, 45, 0.4),
    Persona("occasional", 0.25, 120, 80, 0.2),
    Persona("churner", 0.15, 30, 40, 0.3, churns=True),
)


@dataclass
class Person:
    id: str
    persona: Persona
    signup_day: int
    app_user: bool
    card_holder: bool
    churn_day: int | None
    orders: int = 0
    boost_until: int = -1
    last_alert_day: int = -10
    boost: float = 1.0


@dataclass
class SimulationResult:
    customers: int
    events: int
    orders: int
    messages: int
    workflow_ids: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("skip", "route", "respond"), 0.0))
    """Wall seconds spent skipping the clock (timers fire, journeys act), routing events, reading responses."""


def _population(config: SimulationConfig, rng: random.Random) -> list[Person]:
    people = []
    for index in range(config.customers):
        roll, persona = rng.random(), PERSONAS[-1]
        for candidate in PERSONAS:
            if roll < candidate.share:
                persona = candidate
                break
            roll -= candidate.share
        signup = int(rng.random() * max(1, config.days * 3 // 4))
        people.append(
            Person(
                id=f"sim-{index:06d}",
                persona=persona,
                signup_day=signup,
                app_user=rng.random() < persona.app_share,
                card_holder=rng.random() < 0.3,
                churn_day=signup + rng.randint(30, 200) if persona.churns else None,
            )
        )
    return people


def _profiles(people: list[Person], rng: random.Random) -> list[Customer]:
    rows = []
    for person in people:
        traits: dict[str, object] = {
            "first_name": rng.choice(("Ana", "Ben", "Chloe", "Dev", "Emi", "Femi", "Gus", "Hana")),
            "timezone": rng.choice(ZONES),
            "locale": "en",
            "app_installed": person.app_user,
            "spending_alerts": person.card_holder and rng.random() < 0.6,
            "persona": person.persona.name,
            # Fictitious addresses (the .test domain is reserved; 555-01xx numbers are fictional).
            "email": f"{person.id}@example.test",
            "phone": f"+1555555{int(person.id[-4:]) % 100:04d}",
        }
        if person.app_user:
            traits["push_token"] = f"token-{person.id}"
        if rng.random() < 0.6:
            traits["birthday"] = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        rows.append(Customer(id=person.id, traits=traits))
    return rows


async def simulate(
    env: WorkflowEnvironment,
    journeys: JourneyClient,
    engine: Engine,
    config: SimulationConfig,
    *,
    progress: Callable[[int, SimulationResult], None] | None = None,
) -> SimulationResult:
    """Live ``config.days`` days with ``config.customers`` customers; the journeys run on ``env``'s worker."""
    rng = random.Random(config.seed)
    people = _population(config, rng)
    with Session(engine) as session:
        for row in _profiles(people, rng):
            session.merge(row)
        session.commit()
    result = SimulationResult(customers=len(people), events=0, orders=0, messages=0)
    pending: dict[int, list[tuple[str, str, dict[str, object]]]] = defaultdict(list)
    """Events scheduled for a later day (shipments, deliveries)."""
    limit = asyncio.Semaphore(config.concurrency)
    seen_delivery = first_delivery = await asyncio.to_thread(_last_delivery_id, engine)
    by_id = {p.id: p for p in people}

    async def route(customer_id: str, event: JourneyEvent) -> None:
        async with limit:
            routed = await journeys.send_event(customer_id, event)
        result.workflow_ids |= {r.workflow_id for r in routed if r.workflow_id}

    async def skip(duration: timedelta) -> None:
        clock = time.perf_counter()
        await env.sleep(duration)
        result.timings["skip"] += time.perf_counter() - clock

    for day in range(config.days):
        moment = _moment(rng)
        await skip(moment)
        now = await env.get_current_time()
        todays: list[tuple[str, str, dict[str, object]]] = list(pending.pop(day, []))
        for person in people:
            todays += _day_of(person, day, rng, pending, now)
        batch = []
        for number, (customer_id, kind, properties) in enumerate(todays):
            event = JourneyEvent(id=f"sim-{config.seed}-{day}-{number}", type=kind, properties=properties)
            batch.append((customer_id, event, now))
        result.events += await asyncio.to_thread(record_events, engine, batch)
        result.orders += sum(1 for _, kind, _ in todays if kind == "order_placed")
        # Events of one customer go in order (a purchase after the sign-up); customers go concurrently.
        by_customer: dict[str, list[JourneyEvent]] = defaultdict(list)
        for customer_id, event, _ in batch:
            by_customer[customer_id].append(event)

        async def deliver(customer_id: str, events: list[JourneyEvent]) -> None:
            for event in events:
                await route(customer_id, event)

        clock = time.perf_counter()
        await asyncio.gather(*(deliver(c, events) for c, events in by_customer.items()))
        result.timings["route"] += time.perf_counter() - clock
        # The rest of the day: the journeys' timers fire on the way; then the customers respond to the day's sends.
        await skip(timedelta(days=1) - moment)
        clock = time.perf_counter()
        seen_delivery = await asyncio.to_thread(_respond, engine, by_id, seen_delivery, day + 1, config)
        result.timings["respond"] += time.perf_counter() - clock
        if progress is not None:
            progress(day + 1, result)
    result.messages = await asyncio.to_thread(_last_delivery_id, engine) - first_delivery
    return result


def _moment(rng: random.Random) -> timedelta:
    """When in its day a day's events happen: a random moment, never on a whole hour.

    Journey timers are whole days or hours after earlier events (or at a local hour), so a signal never lands
    just as a timer fires: the time-skipping server mishandles that race ("invalid history builder state for
    action").
    """
    return timedelta(seconds=rng.randint(3600, 82800) + 17, milliseconds=rng.randint(1, 999))


def _last_delivery_id(engine: Engine) -> int:
    with Session(engine) as session:
        last = session.exec(select(func.max(Delivery.id))).one()
    return int(last or 0)


def _day_of(
    person: Person,
    day: int,
    rng: random.Random,
    pending: dict[int, list[tuple[str, str, dict[str, object]]]],
    now: datetime,
) -> list[tuple[str, str, dict[str, object]]]:
    """What one customer does on one day."""
    if day < person.signup_day:
        return []
    if day == person.signup_day:
        return [(person.id, "signed_up", {"signed_up_at": now.isoformat()})]
    out: list[tuple[str, str, dict[str, object]]] = []
    persona = person.persona
    rate = 1 / persona.days_between_orders
    if person.churn_day is not None and day >= person.churn_day:
        rate = 1 / 2000  # gone quiet; a message may still bring them back
    if day <= person.boost_until:
        rate *= person.boost
    if rng.random() < rate:
        person.orders += 1
        order_id = f"{person.id}-o{person.orders}"
        amount = round(persona.basket * math.exp(rng.gauss(0, 0.4)), 2)
        out.append((person.id, "order_placed", {"order_id": order_id, "amount": amount}))
        pending[day + 1].append((person.id, "order_shipped", {"order_id": order_id, "carrier": "UPS"}))
        pending[day + rng.randint(2, 5)].append((person.id, "package_delivered", {"order_id": order_id}))
    active = person.churn_day is None or day < person.churn_day
    if person.app_user and active and rng.random() < 1 / 14:
        out.append((person.id, "app_opened", {}))
    if person.card_holder and (day - person.signup_day) % 30 == 0:
        out.append((person.id, "statement_ready", {"statement_id": f"{person.id}-s{day}", "period": f"day {day}"}))
    # Two days apart at least: an alert exactly as the day-long cooldown of the previous one ends races the
    # journey's completion, which the time-skipping server mishandles ("invalid history builder state").
    if person.card_holder and day - person.last_alert_day >= 2 and rng.random() < 1 / 45:
        person.last_alert_day = day
        out.append((person.id, "spending_limit_near", {"percent_used": rng.randint(85, 99)}))
    return out


def _respond(engine: Engine, people: dict[str, Person], after_id: int, day: int, config: SimulationConfig) -> int:
    """Customers who got a promotional message since ``after_id`` buy more readily for a while."""
    with Session(engine) as session:
        rows = session.exec(
            select(Delivery).where(Delivery.id > after_id).order_by(Delivery.id)  # type: ignore[arg-type,operator]
        ).all()
    last = after_id
    for row in rows:
        last = max(last, row.id or 0)
        person = people.get(row.customer_id)
        if person is None or row.status != "sent" or row.category != "promotional":
            continue
        offer = any(code in str(row.content) for code in OFFER_CODES)
        person.boost = max(
            person.boost if day <= person.boost_until else 1.0, config.offer_boost if offer else config.boost
        )
        person.boost_until = day + config.boost_days
    return last
