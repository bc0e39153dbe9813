"""Play scenarios (:mod:`journeymap.scenario`) on the time-skipping server and judge what the journey did.

The player moves the server's clock from moment to moment: to the next event of the timeline or the next
wake-up of a journey (a wait's deadline, the end of quiet hours), whichever comes first. At each moment it lets
every journey rest (the workflow's ``rested`` update) and stamps the messages the ledger gained with that
moment. So a year of a customer's life takes a few hundred steps, none of them waiting on the wall clock.

Scenario time and server time: the server's clock starts at today's date and only moves forward, while a
story may start on any date. A story that starts before the server's clock is played whole multiples of 28
years later (the Gregorian calendar repeats every 28 years between 1901 and 2099: same weekdays, same leap
days, and the same daylight-saving dates while a zone keeps today's rules), and every date in its traits and
event properties moves with it. What is printed and judged is moved back: scenario time throughout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from contracts.journey import ENDED, JourneySnapshot
from journeymap import JourneyMap
from journeymap.scenario import MessageExpectation, Scenario
from starter.testing import WAKE_MARGIN, JourneyEnvironment, reachable_traits, start_time_skipping_server

CYCLE_YEARS = 28
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class Clock:
    """Scenario time to server time and back: the customer's zone, and the whole years the story moves."""

    zone: ZoneInfo
    years: int

    def to_server(self, moment: datetime) -> datetime:
        local = moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment.astimezone(self.zone)
        return local.replace(year=local.year + self.years)

    def to_scenario(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        return local.replace(year=local.year - self.years)

    def data(self, value: Any) -> Any:
        """Traits and properties with every date in them moved to server time (dates become ISO text)."""
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            value = parsed if len(value.strip()) > 10 else parsed.date()
        if isinstance(value, datetime):
            return self.to_server(value).isoformat()
        if isinstance(value, date):
            return value.replace(year=value.year + self.years).isoformat()
        return value


def years_to_move(start: datetime, server_now: datetime) -> int:
    """The fewest whole 28-year cycles that put ``start`` (server time, unmoved) after ``server_now``."""
    years = 0
    while start.replace(year=start.year + years) <= server_now:
        years += CYCLE_YEARS
    return years


@dataclass(frozen=True)
class Happening:
    """One line of the printed timeline, in scenario time."""

    at: datetime
    kind: str
    """``event`` or the message's ledger status (``sent``, ``suppressed``, ``failed``)."""
    step: str = ""
    template: str = ""
    channel: str = ""
    detail: str = ""


@dataclass
class Outcome:
    """What the journey did during a scenario."""

    timeline: list[Happening] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    goal_reached: bool = False
    final: list[JourneySnapshot] = field(default_factory=list)

    @property
    def sent(self) -> list[Happening]:
        return [h for h in self.timeline if h.kind == "sent"]

    @property
    def ended(self) -> bool:
        return bool(self.final) and all(s.status in ENDED or s.status == "cooldown" for s in self.final)


@dataclass
class ScenarioResult:
    source: str
    scenario: Scenario
    journey: str
    outcome: Outcome
    failures: list[str]
    seconds: float

    @property
    def name(self) -> str:
        return self.scenario.name or Path(self.source).stem


# ------------------------------------------------------------------------------------------------ playing


def zone_of(scenario: Scenario, journey: JourneyMap) -> ZoneInfo:
    return ZoneInfo(scenario.customer.timezone or journey.timezone)


async def play(system: JourneyEnvironment, scenario: Scenario, clock: Clock) -> Outcome:
    """Live the scenario's story on ``system`` (whose clock is before its start); what the journey did."""
    customer = scenario.customer
    outcome = Outcome()
    await system.skip_to(clock.to_server(scenario.start))
    traits = reachable_traits(customer.id, clock.data(customer.traits))
    if customer.timezone:
        traits["timezone"] = customer.timezone
    system.identify(user_id=customer.id, anonymous_id=customer.identities.get("anonymous_id"), **traits)
    for consent in customer.consents:
        system.set_consent(customer.id, channel=consent.channel, category=consent.category, granted=consent.granted)

    start = clock.to_server(scenario.start)
    events = sorted(
        (
            (clock.to_server(e.at) if e.at is not None else start + (e.after or timedelta(0)), i, e)
            for i, e in enumerate(scenario.timeline)
        ),
        key=lambda item: (item[0], item[1]),
    )
    stop = clock.to_server(scenario.until) if scenario.until else events[-1][0] + scenario.run_for
    seen = 0

    def observe(states: list[JourneySnapshot], now: datetime) -> None:
        nonlocal seen
        for state in states:
            outcome.steps |= set(state.visits)
            outcome.goal_reached |= state.goal_reached_at is not None
        outcome.final = states
        for row in system.sends(customer.id, status=None)[seen:]:
            outcome.timeline.append(
                Happening(clock.to_scenario(now), row.status, row.step, row.template, row.channel, row.reason or "")
            )
            outcome.steps.add(row.step)
        seen = len(system.sends(customer.id, status=None))

    while True:
        now = await system.now()
        states = await system.rest_all()
        observe(states, now)
        wakeups = [s.wait_until for s in states if s.wait_until is not None]
        moments = wakeups + ([events[0][0]] if events else [])
        if not moments:
            if scenario.until is not None:
                observe(await system.skip_to(stop), stop)
            break
        target = min(moments)
        if target > stop:
            observe(await system.skip_to(stop), stop)
            break
        if events and target == events[0][0]:
            moment, _, entry = events.pop(0)
            await system.skip_to(moment)
            outcome.timeline.append(
                Happening(clock.to_scenario(moment), "event", detail=f"{entry.event} {_short(entry.properties)}")
            )
            await system.send(customer.id, entry.event, event_id=entry.id, **clock.data(entry.properties))
        else:
            await system.skip_to(max(target, now) + WAKE_MARGIN)
    return outcome


def _short(properties: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in properties.items())
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------------ judging


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _matches(expected: MessageExpectation, sent: Happening, zone: ZoneInfo, *, timed: bool = True) -> bool:
    if expected.channel is not None and sent.channel != expected.channel:
        return False
    if expected.template is not None and sent.template != expected.template:
        return False
    if expected.step is not None and sent.step != expected.step:
        return False
    if timed and expected.at is not None:
        at = _local(expected.at, zone)
        return at <= sent.at < at + timedelta(minutes=1)
    if timed and expected.between is not None:
        return _local(expected.between[0], zone) <= sent.at < _local(expected.between[1], zone)
    return True


def _when(moment: datetime) -> str:
    return moment.strftime("%a %Y-%m-%d %H:%M")


def describe_expected(expected: MessageExpectation, zone: ZoneInfo) -> str:
    what = " ".join(x for x in (expected.channel or "any channel", expected.template or "", expected.step or "") if x)
    if expected.at is not None:
        what += f" at {_when(_local(expected.at, zone))}"
    elif expected.between is not None:
        what += f" between {_when(_local(expected.between[0], zone))} and {_when(_local(expected.between[1], zone))}"
    return f"{expected.count} x {what}"


def describe_sent(sent: Happening) -> str:
    return f"{sent.channel} {sent.template} ({sent.step}) at {_when(sent.at)}"


def judge(scenario: Scenario, outcome: Outcome, zone: ZoneInfo) -> list[str]:
    """Each unmet expectation as ``expected ... / actual ...`` lines; empty when the journey did what was told."""
    failures: list[str] = []
    expect = scenario.expect
    sent = outcome.sent
    matched: set[int] = set()
    for index, expected in enumerate(expect.messages):
        hits = [i for i, s in enumerate(sent) if _matches(expected, s, zone)]
        matched |= set(hits)
        if len(hits) != expected.count:
            near = [describe_sent(s) for s in sent if _matches(expected, s, zone, timed=False)]
            failures.append(
                f"expect.messages[{index}]:\n    expected: {describe_expected(expected, zone)}\n"
                f"    actual:   {len(hits)}" + (f"; such messages went out: {'; '.join(near)}" if near else "")
            )
    if expect.nothing_else:
        extra = [describe_sent(s) for i, s in enumerate(sent) if i not in matched]
        if extra:
            failures.append("expect.nothing_else:\n    expected: no other message\n    actual:   " + "; ".join(extra))
    reached = ", ".join(sorted(outcome.steps)) or "none"
    for step in expect.steps_reached:
        if step not in outcome.steps:
            failures.append(
                f"expect.steps_reached:\n    expected: {step}\n    actual:   not reached (reached: {reached})"
            )
    for step in expect.steps_not_reached:
        if step in outcome.steps:
            failures.append(f"expect.steps_not_reached:\n    expected: {step} never reached\n    actual:   reached")
    if expect.goal_reached is not None and expect.goal_reached != outcome.goal_reached:
        failures.append(
            f"expect.goal_reached:\n    expected: {expect.goal_reached}\n    actual:   {outcome.goal_reached}"
        )
    if expect.ended is not None and expect.ended != outcome.ended:
        states = ", ".join(f"{s.status} at {s.step or '-'}" for s in outcome.final) or "never entered"
        failures.append(f"expect.ended:\n    expected: {expect.ended}\n    actual:   {outcome.ended} ({states})")
    return failures


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Planned:
    """A validated scenario, ready to run: where it came from, and the map it tests (with the map's folder)."""

    source: str
    scenario: Scenario
    journey: JourneyMap
    journeys_dir: Path


async def run_scenarios(
    planned: list[Planned], *, report: Callable[[ScenarioResult], None] | None = None
) -> list[ScenarioResult]:
    """Play every scenario, one after another, reusing one time-skipping server while its clock allows."""
    results: list[ScenarioResult] = []
    env: WorkflowEnvironment | None = None
    try:
        for item in planned:
            began = time.monotonic()
            zone = zone_of(item.scenario, item.journey)
            start = Clock(zone, 0).to_server(item.scenario.start)
            years = years_to_move(start, datetime.now(zone))
            clock = Clock(zone, years)
            if env is None or clock.to_server(item.scenario.start) <= await env.get_current_time():
                if env is not None:
                    await env.shutdown()
                env = await start_time_skipping_server()
            async with JourneyEnvironment.start(
                item.journeys_dir, catalog={item.journey.name: item.journey}, env=env
            ) as system:
                outcome = await play(system, item.scenario, clock)
            result = ScenarioResult(
                item.source,
                item.scenario,
                item.journey.name,
                outcome,
                judge(item.scenario, outcome, zone),
                time.monotonic() - began,
            )
            results.append(result)
            if report is not None:
                report(result)
    finally:
        if env is not None:
            await env.shutdown()
    return results


# ------------------------------------------------------------------------------------------------ reporting


def format_timeline(result: ScenarioResult) -> list[str]:
    """The story as it happened, one line per event and message, in the customer's local time."""
    lines = []
    for h in result.outcome.timeline:
        if h.kind == "event":
            lines.append(f"  {_when(h.at)}  event  {h.detail}")
        else:
            status = "" if h.kind == "sent" else f"  [{h.kind}{': ' + h.detail if h.detail else ''}]"
            lines.append(f"  {_when(h.at)}  {h.step:<22} {h.template:<24} {h.channel}{status}")
    return lines


def junit_xml(results: list[ScenarioResult]) -> str:
    """A JUnit XML report, one test case per scenario, as CI systems read it."""
    suite = ElementTree.Element(
        "testsuite",
        name="journeys scenarios",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r.failures)),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"journeys.{result.journey}",
            name=result.name,
            file=result.source,
            time=f"{result.seconds:.3f}",
        )
        if result.failures:
            failure = ElementTree.SubElement(case, "failure", message=result.failures[0].splitlines()[0])
            failure.text = "\n".join(result.failures)
        ElementTree.SubElement(case, "system-out").text = "\n".join(format_timeline(result))
    ElementTree.indent(suite)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
