"""Faults at scale: hundreds of pharmacy journeys with real sends while everything underneath them fails.

A Temporal dev server on a SQLite file, ``journeys worker`` processes and a local provider (``bench.provider``:
Resend-format email, FCM push, in a process of its own) are started here; a backend plays each customer's
prescription through the built-in ``pharmacy_refill`` map (filled, then per refill: reminded by push and email,
ordered, ready with a push, picked up), ``--refills`` cycles each. Meanwhile:

- workers are SIGKILLed at random intervals (and started again, as a supervisor would), each after it ran for
  20 s at least (5 s in ``--quick``), and only once a message went out since the last kill;
- the provider answers 503 for a while (with ``Retry-After``, then without), once a share of the messages went;
- the dev server is stopped and started again once, on the same SQLite file and port;
- the provider is stopped for a while (connections refused) and started again.

Time is compressed by the backend's dates, not by a map of our own: a prescription filled 30 days ago for a
30-day supply is due for its reminder at once, so the map's own waits end at once and every step is paced by
the customer's events. The backend sends a cycle's events once the provider has that cycle's reminder (the
journey has left ``wait_for_reminder`` then: events it gets before that are dropped by design), retrying each
event with its own id while the server is away, as a backend does.

What it prints is counted from the provider's log, never from our ledger: for each message a customer should
have got (journey, step, pass, channel, parsed from the idempotency key the provider saw), whether it arrived
once, twice or never. Email goes to a provider that honours the key, so a repeated request is dropped there
(``repeats_dropped``: the crash window closed). FCM takes no key: a worker killed after FCM took a push and
before the ledger recorded it sends the push again, and it arrives twice; that is the crash window
docs/delivery.md describes, and this benchmark measures how often it opens.

At most ``--concurrent`` prescriptions are in play at once (the others start as those finish): on a host with
two shared cores, 500 at once overloaded the workers until their workflow tasks timed out (10 s) and were
retried, which only added load.

    python -m bench.soak [--journeys 500] [--refills 2] [--workers 2] [--concurrent 100] [--seed 1]
                         [--timeout SECONDS] [--database-url URL] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.common import parser, report
from contracts.events import JourneyEvent
from contracts.ids import journey_workflow_id
from runtime.search_attributes import register_search_attributes
from starter.catalog import load_catalog
from starter.client import JourneyClient
from storage import Customer, make_engine
from testkit.harness import ROOT
from testkit.processes import DevServer, Workers, free_port

JOURNEY = "pharmacy_refill"
MESSAGES = [("remind_refill", "push"), ("remind_refill", "email"), ("notify_ready", "push")]
"""What each refill cycle sends: (step, channel)."""

Identity = tuple[str, str, int, str]
"""A message as the provider sees it: (workflow id, step, pass through the step, channel)."""


def identity(key: str) -> Identity | None:
    """``<workflow id>/<entry digest>/<step>/<pass>#<channel>`` (contracts.ids.idempotency_key) as an identity."""
    business, _, channel = key.rpartition("#")
    parts = business.rsplit("/", 3)
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[0], parts[2], int(parts[3]), channel


class ProviderProcess:
    """``python -m bench.provider`` on a fixed port: stopped (connections refused) and started again at will."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "provider.jsonl"
        self.log.touch()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with (self.folder / "provider.out").open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.provider", str(self.port), str(self.log)],
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.post(f"{self.url}/_fail", json={"status": None})
                    return
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        raise RuntimeError(f"the provider did not come up; see {self.folder}/provider.out")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    async def fail(self, status: int | None, retry_after: str | None = None) -> None:
        async with httpx.AsyncClient() as http:
            await http.post(f"{self.url}/_fail", json={"status": status, "retry_after": retry_after})


class ProviderLog:
    """The provider's log, read as it grows: what arrived, and which customers' reminders did."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.delivered: Counter[Identity] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        """(channel, outcome) -> requests."""
        self.times: dict[Identity, list[float]] = {}
        """When each message arrived (seconds since the epoch), for the gap between a message and its repeat."""
        self.foreign: list[str] = []
        """Keys that are not a journey's idempotency key (none expected)."""
        self._waiting: dict[tuple[str, int], asyncio.Event] = {}

    def read(self) -> None:
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            self.outcomes[(entry["channel"], str(entry["outcome"]))] += 1
            if entry["outcome"] != "delivered":
                continue
            message = identity(entry["key"])
            if message is None:
                self.foreign.append(entry["key"])
                continue
            self.delivered[message] += 1
            self.times.setdefault(message, []).append(float(entry["t"]))
            workflow_id, step, visit, _ = message
            if step == "remind_refill":
                self._event(workflow_id, visit).set()

    def _event(self, workflow_id: str, visit: int) -> asyncio.Event:
        return self._waiting.setdefault((workflow_id, visit), asyncio.Event())

    async def reminded(self, workflow_id: str, visit: int) -> None:
        await self._event(workflow_id, visit).wait()

    async def follow(self) -> None:
        while True:
            self.read()
            await asyncio.sleep(0.2)


async def _until_accepted(journeys: JourneyClient, customer: str, event: JourneyEvent) -> None:
    """What a backend does: the same event (same id) again until Temporal has it."""
    while True:
        try:
            await journeys.send_event(customer, event)
            return
        except RPCError:
            await asyncio.sleep(0.5)


async def _customer(
    journeys: JourneyClient, log: ProviderLog, index: int, refills: int, delay: float, limit: asyncio.Semaphore
) -> None:
    await asyncio.sleep(delay)
    async with limit:
        await _prescription(journeys, log, index, refills)


async def _prescription(journeys: JourneyClient, log: ProviderLog, index: int, refills: int) -> None:
    customer, rx = f"soak-{index}", f"rx-{index}"
    workflow_id = journey_workflow_id(JOURNEY, customer, rx)
    month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()

    def event(type: str, **properties: Any) -> JourneyEvent:
        return JourneyEvent(id=uuid.uuid4().hex, type=type, properties={"rx_id": rx, **properties})

    filled = event("prescription_filled", days_supply=30, refills_remaining=refills, filled_at=month_ago)
    await _until_accepted(journeys, customer, filled)
    for visit in range(1, refills + 1):
        await log.reminded(workflow_id, visit)
        # Picked up a month ago: the next cycle's reminder is due at once.
        for following in (
            event("refill_ordered"),
            event("refill_ready", store_name="Elm St"),
            event("refill_picked_up", picked_up_at=month_ago),
        ):
            await _until_accepted(journeys, customer, following)


class Faults:
    """The run's faults, each at its moment: what happened when, for the report."""

    def __init__(
        self, rng: random.Random, outage_seconds: float, kill_every: tuple[float, float], kill_after: float
    ) -> None:
        self.rng = rng
        self.kill_after = kill_after
        self.outage_seconds = outage_seconds
        self.kill_every = kill_every
        self.started = time.monotonic()
        self.timeline: list[str] = []
        self.kills: list[float] = []
        """When each worker was killed (seconds since the epoch)."""

    def note(self, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    async def kill_workers(self, workers: Workers, delivered: Callable[[], int]) -> None:
        """A random worker at random intervals, among those up for ``kill_after`` seconds at least, and only once
        messages went out since the last kill: on a loaded host a worker takes tens of seconds to start and replay
        its journeys, and killing them faster than that stalls the run (measured: 87 messages in 6 minutes)."""
        born: dict[int, float] = {}
        last = -1
        while True:
            await asyncio.sleep(self.rng.uniform(*self.kill_every))
            now = time.monotonic()
            alive = workers.alive()
            for process in alive:
                born.setdefault(process.pid, now)
            grown = [p for p in alive if now - born[p.pid] >= self.kill_after]
            if grown and delivered() > last:
                workers.kill(self.rng.choice(grown))
                self.kills.append(time.time())
                last = delivered()

    async def at(self, progress: Callable[[], float], share: float) -> None:
        while progress() < share:
            await asyncio.sleep(0.2)

    async def run(self, progress: Callable[[], float], provider: ProviderProcess, server: DevServer) -> None:
        half = self.outage_seconds / 2
        await self.at(progress, 0.15)
        self.note("provider answers 503 with Retry-After: 1")
        await provider.fail(503, "1")
        await asyncio.sleep(half)
        self.note("provider answers 503 without Retry-After")
        await provider.fail(503)
        await asyncio.sleep(half)
        await provider.fail(None)
        self.note("provider healthy")
        await self.at(progress, 0.35)
        self.note("dev server stopped")
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(2)
        server.start()
        self.note("dev server started again (same file, same port)")
        await self.at(progress, 0.6)
        self.note("provider stopped: connections refused")
        await asyncio.to_thread(provider.stop)
        await asyncio.sleep(self.outage_seconds)
        await provider.start()
        self.note("provider started again")


async def _not_completed(client: Client, workflow_ids: list[str], timeout: float) -> dict[str, str]:
    """The journeys not completed within ``timeout`` seconds, with their status."""
    pending = {w: "unknown" for w in workflow_ids}
    deadline = time.monotonic() + timeout
    limit = asyncio.Semaphore(16)

    async def status(workflow_id: str) -> None:
        async with limit:
            try:
                described = await client.get_workflow_handle(workflow_id).describe()
            except RPCError as error:
                pending[workflow_id] = f"describe failed: {error.status}"
                return
            if described.status == WorkflowExecutionStatus.COMPLETED:
                del pending[workflow_id]
            else:
                pending[workflow_id] = described.status.name if described.status else "unknown"

    while pending and time.monotonic() < deadline:
        await asyncio.gather(*(status(w) for w in list(pending)))
        if pending:
            await asyncio.sleep(2)
    return pending


def _count(log: ProviderLog, workflow_ids: list[str], refills: int, running: set[str]) -> list[dict[str, Any]]:
    """Per channel and in all: each expected message arrived once, twice, more, or not at all. One that never
    arrived is ``lost`` when its journey completed, ``not_yet`` when the journey had not (a run cut short by
    ``--timeout``)."""
    expected = {
        (w, step, visit, channel) for w in workflow_ids for visit in range(1, refills + 1) for step, channel in MESSAGES
    }
    rows = []
    for channel in ("email", "push", "all"):
        mine = {m for m in expected if channel in ("all", m[3])}
        counts = [log.delivered[m] for m in mine]
        missing = [m for m in mine if log.delivered[m] == 0]
        unexpected = [m for m in log.delivered if m not in expected and channel in ("all", m[3])]
        outcomes: Counter[str] = Counter()
        for (kind, outcome), n in log.outcomes.items():
            if channel in ("all", kind):
                outcomes[outcome] += n
        rows.append(
            {
                "channel": channel,
                "messages_expected": len(mine),
                "sent_once": sum(1 for n in counts if n == 1),
                "sent_twice": sum(1 for n in counts if n == 2),
                "sent_more": sum(1 for n in counts if n > 2),
                "lost": sum(1 for m in missing if m[0] not in running),
                "not_yet": sum(1 for m in missing if m[0] in running),
                "unexpected": len(unexpected),
                "requests": sum(outcomes.values()),
                "repeats_dropped": outcomes.get("repeat", 0),
                "answered_503": outcomes.get("503", 0),
            }
        )
    return rows


def _repeated(log: ProviderLog, kills: list[float]) -> list[str]:
    """Each message that arrived more than once: its channel, step and the seconds between its arrivals (a
    repeat after a worker's death comes a heartbeat timeout later; two attempts at once, within a second)."""
    lines = []
    for (workflow_id, step, visit, channel), times in sorted(log.times.items()):
        if len(times) > 1:
            gaps = ", ".join(f"{b - a:.1f}" for a, b in itertools.pairwise(times))
            killed = sum(1 for k in kills if times[0] <= k <= times[-1])
            lines.append(
                f"{channel} {step} pass {visit} of {workflow_id.rsplit('/', 1)[0]}: again after {gaps} s"
                f" ({killed} worker kills in between)"
            )
    return lines


async def soak(
    folder: Path,
    *,
    journeys: int,
    refills: int,
    workers: int,
    concurrent: int,
    ramp_seconds: float,
    outage_seconds: float,
    kill_every: tuple[float, float],
    kill_after: float,
    database_url: str | None,
    seed: int,
    timeout: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = random.Random(seed)
    database_url = database_url or f"sqlite:///{folder / 'journeys.db'}"
    engine = make_engine(database_url)
    with Session(engine) as session:
        for index in range(journeys):
            traits = {"email": f"soak-{index}@example.test", "push_token": f"token-{index}", "first_name": "Sam"}
            session.add(Customer(id=f"soak-{index}", traits=traits))
        session.commit()
    engine.dispose()
    provider = ProviderProcess(folder)
    await provider.start()
    server = DevServer(folder)
    server.start()
    env = {
        "JOURNEYS_JOURNEYS_DIR": str(ROOT / "journeys"),
        "JOURNEYS_EMAIL_PROVIDER": "http",
        "JOURNEYS_HTTP_EMAIL_URL": provider.url,
        "JOURNEYS_HTTP_EMAIL_API_KEY": "soak-key",
        "JOURNEYS_PUSH_PROVIDER": "fcm",
        "JOURNEYS_FCM_URL": provider.url,
        "JOURNEYS_FCM_PROJECT_ID": "soak",
        "JOURNEYS_FCM_ACCESS_TOKEN": "soak-token",
        "JOURNEYS_HTTP_TIMEOUT_SECONDS": "5",
        "JOURNEYS_QUIET_HOURS_START": "00:00",
        "JOURNEYS_QUIET_HOURS_END": "00:00",
    }
    pool = Workers(folder, server.address, f"soak-{uuid.uuid4().hex[:8]}", database_url, env)
    log = ProviderLog(provider.log)
    faults = Faults(rng, outage_seconds, kill_every, kill_after)
    workflow_ids = [journey_workflow_id(JOURNEY, f"soak-{i}", f"rx-{i}") for i in range(journeys)]
    expected = journeys * refills * len(MESSAGES)
    tasks: list[asyncio.Task[None]] = []
    began = time.monotonic()
    try:
        client = await server.client()
        await register_search_attributes(client)
        for _ in range(workers):
            pool.start()
        backend = JourneyClient(client, load_catalog(ROOT / "journeys"), task_queue=pool.env["JOURNEYS_TASK_QUEUE"])
        tasks = [
            asyncio.create_task(log.follow()),
            asyncio.create_task(pool.supervise(workers)),
            asyncio.create_task(faults.kill_workers(pool, lambda: len(log.delivered))),
        ]
        schedule = asyncio.create_task(faults.run(lambda: len(log.delivered) / expected, provider, server))
        tasks.append(schedule)
        limit = asyncio.Semaphore(concurrent)
        customers = [
            _customer(backend, log, i, refills, delay=ramp_seconds * i / journeys, limit=limit) for i in range(journeys)
        ]
        played: asyncio.Future[Any] = asyncio.gather(*customers)
        # Every fault happens, even in a run that outpaced them; a backend stuck past the timeout is reported
        # (its journeys as not completed, their messages as lost), not waited for.
        waited: list[asyncio.Future[Any]] = [played, schedule]
        await asyncio.wait(waited, timeout=timeout)
        for future in waited:
            if future.done() and not future.cancelled() and (error := future.exception()) is not None:
                raise error
        played.cancel()
        tasks[2].cancel()  # no more kills: what is left should finish
        remaining = await _not_completed(client, workflow_ids, timeout / 4)
        seconds = time.monotonic() - began
    finally:
        for task in tasks:
            task.cancel()
        pool.stop_all()
        server.stop()
        provider.stop()
    log.read()
    rows = _count(log, workflow_ids, refills, set(remaining))
    rows[-1] |= {"journeys": journeys, "journeys_completed": journeys - len(remaining)}
    settings = {
        "journeys": journeys,
        "refills": refills,
        "workers": workers,
        "concurrent": concurrent,
        "seconds": round(seconds, 1),
        "workers_killed": pool.killed,
        "server_restarts": 1,
        "outage_seconds": outage_seconds,
        "kill_every_s": list(kill_every),
        "kill_after_s": kill_after,
        "database": database_url.split(":", 1)[0],
        "not_completed": dict(Counter(remaining.values())),
        "foreign_keys": len(log.foreign),
        "repeated": _repeated(log, faults.kills),
        "timeline": faults.timeline,
    }
    return settings, rows


def main() -> None:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--journeys", type=int, default=500)
    args.add_argument("--refills", type=int, default=2, help="refill cycles per prescription (3 messages each)")
    args.add_argument("--workers", type=int, default=2)
    args.add_argument("--concurrent", type=int, default=100, help="prescriptions in play at once")
    args.add_argument("--seed", type=int, default=1)
    args.add_argument("--timeout", type=float, default=1800, help="seconds the backend may take (default 1800)")
    args.add_argument("--database-url", help="the journeys database (default: a SQLite file in a temporary folder)")
    options = args.parse_args()
    quick = options.quick
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        settings, rows = asyncio.run(
            soak(
                Path(folder),
                journeys=6 if quick else options.journeys,
                refills=1 if quick else options.refills,
                workers=options.workers,
                concurrent=options.concurrent,
                ramp_seconds=2 if quick else 60,
                outage_seconds=2 if quick else 10,
                kill_every=(2.0, 4.0) if quick else (5.0, 15.0),
                kill_after=5 if quick else 20,
                database_url=options.database_url,
                seed=options.seed,
                timeout=240 if quick else options.timeout,
            )
        )
    report("soak", settings, rows, options.json)


if __name__ == "__main__":
    main()
