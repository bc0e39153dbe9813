"""Ingestion: events per second into running journeys on one dev server, against the raw temporalio client.

For each dev-server SQLite setting (``bench.common.PRAGMAS``) a fresh server on a SQLite file takes, in
alternating rounds, the same load from two paths:

- ``journeys``: ``starter.client.JourneyClient.send_event`` (routing by event type, the instance key, search
  attributes): one ``prescription_filled`` per customer (signal-with-start) then one ``refill_ordered``
  (a signal to the running journey);
- ``raw``: ``temporalio.client.Client`` doing the same signal-with-starts and signals with the same payloads
  to the same workflows (the routing decision, ``journeymap.routing``, is a dictionary look-up and a hash),
  without the client around them;
- ``api`` (when ``starter.api`` is importable): the HTTP event API (``POST /v1/track``, and ``/v1/batch`` of
  ``--batch`` messages), served by uvicorn in its own process.

No worker runs while the load is applied, so the figures measure acceptance (the event durably in the
journey's history), not processing; ``bench.latency`` measures the path to a message sent.

This process runs on uvloop where it exists (``runtime.event_loop``), as ``journeys api`` does, so the raw
client and the API's Temporal client run on the same kind of loop, and the HTTP load generator costs the
shared cores less.

``cpu_ms_per_event`` is the CPU the sending process spent per event (this process for ``journeys`` and
``raw``, the API's for ``api``, all threads): unlike events/s it hardly moves when a shared host is busy, so it
is the figure to compare across runs and machines. On a host with few cores the API's CPU is taken from the
dev server, which is why the ratio to raw falls when it rises. ``api_loop_ms``, ``api_threads_ms`` and
``api_sdk_ms`` split the API's share by thread (:data:`API_THREADS`).

    python -m bench.ingest [--customers N] [--concurrency C] [--rounds R] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy

from bench.common import PRAGMAS, dev_server, median, parser, report
from contracts.events import JourneyEvent
from runtime import event_loop
from starter.catalog import load_catalog
from starter.client import JourneyClient, entry_search_attributes, entry_summary
from storage import make_engine
from testkit.harness import ROOT
from testkit.processes import free_port
from workflows.journey import JourneyWorkflow
from workflows.models import JourneyInput

JOURNEY = "pharmacy_refill"
API_KEY = "bench-key"


def _filled(customer: str) -> JourneyEvent:
    properties = {"rx_id": f"rx-{customer}", "days_supply": 30, "refills_remaining": 2}
    properties["filled_at"] = datetime.now(UTC).isoformat()
    return JourneyEvent(id=uuid.uuid4().hex, type="prescription_filled", properties=properties)


def _ordered(customer: str) -> JourneyEvent:
    return JourneyEvent(id=uuid.uuid4().hex, type="refill_ordered", properties={"rx_id": f"rx-{customer}"})


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system, all threads) of process ``pid``, or of this one when None; None where it cannot
    be read (no ``/proc``). The Temporal SDK's Rust threads count too, as they should."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


API_THREADS = ("loop", "threads", "sdk")
"""Where the API's CPU goes, for its rows: the event loop's thread (HTTP, validation, routing, the SDK's Python
side), its other Python threads (the database work, ``starter.api.bookkeeping``) and the Temporal SDK's Rust
threads (gRPC)."""


def _api_thread_cpu(pid: int) -> dict[str, float] | None:
    """CPU seconds of process ``pid``'s threads by :data:`API_THREADS` kind; None without ``/proc``.

    From each thread's ``schedstat`` (nanoseconds), not its ``stat``: ``stat`` counts whole clock ticks (10 ms),
    so a dozen threads' sum drifted from the process's total by several ticks, more than a short run's whole
    CPU per event. A thread that ended meanwhile takes its CPU with it, which the API's (a thread pool's)
    rarely do."""
    totals = dict.fromkeys(API_THREADS, 0.0)
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            nanoseconds = int((task / "schedstat").read_text().split()[0])
        except OSError:
            if task.exists():
                return None  # a kernel without schedstat: no split rather than a coarse one
            continue  # ended since the listing
        kind = "loop" if task.name == str(pid) else "sdk" if name == "tokio-rt-worker" else "threads"
        totals[kind] += nanoseconds / 1e9
    return totals


async def _drive(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for every i with at most ``concurrency`` in flight; events per second."""
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < count:
            index, next_index = next_index, next_index + 1
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


class KeepAliveClient:
    """The load generator's HTTP/1.1 client: kept-alive connections on asyncio streams, one request each at a time.

    Not httpx: on this machine httpx's ``AsyncClient`` tops out near 300 requests a second at 64 in flight
    against an endpoint that does nothing (uvicorn serves the same endpoint at ~5,000 a second to this
    client), so with httpx the figure measured the load generator, not the API. Backends send with their own
    kept-alive clients (Segment's libraries, Go's ``net/http``); this one is as cheap as such a client.
    """

    def __init__(self, base_url: str) -> None:
        parsed = httpx.URL(base_url)
        self.host = parsed.host
        self.port = parsed.port or 80
        self.authorization = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON; the JSON answer, or an error naming the status."""
        reader, writer = await self._connection()
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: {self.authorization}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        answer = await reader.readexactly(int(headers.get("content-length", "0")))
        self.idle.append((reader, writer, time.monotonic()))
        status = int(lines[0].split()[1])
        if status >= 300:
            raise RuntimeError(f"POST {path} answered {status}: {answer[:200]!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle connection, or a new one. uvicorn closes a connection idle for 5 s: older ones are dropped."""
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < 2:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def aclose(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


class Paths:
    """The ways an event can go in, each a pair (start a journey, signal it) for customer number i."""

    def __init__(self, client: Client, task_queue: str, api: str | None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.catalog = load_catalog(ROOT / "journeys")
        self.journeys = JourneyClient(client, self.catalog, task_queue=task_queue)
        self.api = KeepAliveClient(api) if api else None

    async def journeys_start(self, customer: str) -> None:
        await self.journeys.send_event(customer, _filled(customer))

    async def journeys_signal(self, customer: str) -> None:
        await self.journeys.send_event(customer, _ordered(customer))

    async def raw_start(self, customer: str) -> None:
        event = _filled(customer)
        [target] = self.journeys.routes.targets(customer, event.type, event.properties)
        await self.client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey=target.journey, customer_id=customer, instance_key=target.instance_key),
            id=target.workflow_ids[0],
            task_queue=self.task_queue,
            start_signal="event",
            start_signal_args=[event],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=entry_search_attributes(JOURNEY, customer, search_by_step=False),
            static_summary=entry_summary(target.journey, customer),
        )

    async def raw_signal(self, customer: str) -> None:
        event = _ordered(customer)
        [target] = self.journeys.routes.targets(customer, event.type, event.properties)
        await self.client.get_workflow_handle(target.workflow_ids[0]).signal("event", event)

    @staticmethod
    def _track(customer: str, event: JourneyEvent) -> dict[str, Any]:
        return {
            "type": "track",
            "messageId": event.id,
            "userId": customer,
            "event": event.type,
            "properties": event.properties,
        }

    async def api_start(self, customer: str) -> None:
        assert self.api is not None
        await self.api.post("/v1/track", self._track(customer, _filled(customer)))

    async def api_signal(self, customer: str) -> None:
        assert self.api is not None
        await self.api.post("/v1/track", self._track(customer, _ordered(customer)))

    async def api_batch(self, customers: list[str], make: Callable[[str], JourneyEvent]) -> None:
        assert self.api is not None
        body = {"batch": [self._track(c, make(c)) for c in customers]}
        await self.api.post("/v1/batch", body)


def _each(send: Callable[[str], Awaitable[None]], customers: list[str]) -> Callable[[int], Awaitable[None]]:
    return lambda index: send(customers[index])


def _batches(
    paths: Paths, groups: list[list[str]], make: Callable[[str], JourneyEvent]
) -> Callable[[int], Awaitable[None]]:
    return lambda index: paths.api_batch(groups[index], make)


def _start_api(
    target: str, task_queue: str, data_dir: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str] | None:
    """``journeys api`` in its own process(es), as deployed; None when this checkout has no API yet."""
    try:
        import starter.api.app  # noqa: F401
    except ImportError:
        return None
    # `journeys setup`'s part: the API refuses a database whose schema it has not upgraded.
    make_engine(f"sqlite:///{data_dir / 'journeys.db'}").dispose()
    port = free_port()
    env = {
        **os.environ,
        "JOURNEYS_TEMPORAL_ADDRESS": target,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(data_dir),
        "JOURNEYS_API_KEYS": API_KEY,
        "JOURNEYS_API_PORT": str(port),
        "JOURNEYS_API_WORKERS": str(workers),
    }
    command = [sys.executable, "-m", "starter.cli", "api"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            return None
        time.sleep(0.1)
    process.kill()
    return None


async def measure(
    setting: str, customers: int, concurrency: int, rounds: int, batch: int, api_workers: int = 1
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server(Path(tmp) / "temporal.db", PRAGMAS[setting]) as env:
            task_queue = f"bench-ingest-{uuid.uuid4().hex[:8]}"
            target = env.client.service_client.config.target_host
            api = _start_api(target, task_queue, Path(tmp), api_workers)
            paths = Paths(env.client, task_queue, api[1] if api else None)
            results: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            split: dict[str, dict[str, list[float]]] = {}
            # Whose CPU an event costs: the raw and JourneyClient paths run in this process; the API path in
            # the API's (one process: with --api-workers the children's CPU is not readable while they run).
            api_pid = api[0].pid if api and api_workers == 1 else None

            def cpu_now(mode: str) -> float | None:
                if mode != "api":
                    return _cpu_seconds(None)
                return _cpu_seconds(api_pid) if api_pid is not None else None

            async def measured(
                path: str, mode: str, events: int, driving: Awaitable[float], per_request: float = 1
            ) -> None:
                """Record under ``path`` the events/s of ``driving`` (requests/s times ``per_request``) and the
                CPU ``mode``'s process spent per event."""
                threads_before = _api_thread_cpu(api_pid) if mode == "api" and api_pid is not None else None
                before = cpu_now(mode)
                rate = await driving
                after = cpu_now(mode)
                threads_after = _api_thread_cpu(api_pid) if threads_before is not None and api_pid else None
                results.setdefault(path, []).append(rate * per_request)
                if before is not None and after is not None:
                    cpu.setdefault(path, []).append((after - before) * 1000 / events)
                if threads_before is not None and threads_after is not None:
                    for kind in API_THREADS:
                        spent = (threads_after[kind] - threads_before[kind]) * 1000 / events
                        split.setdefault(path, {}).setdefault(kind, []).append(spent)

            try:
                modes = ["journeys", "raw"] + (["api"] if api else [])
                for round_number in range(rounds):
                    order = modes if round_number % 2 == 0 else list(reversed(modes))
                    for mode in order:
                        ids = [f"{mode}-{round_number}-{i}-{uuid.uuid4().hex[:4]}" for i in range(customers)]
                        for kind, action in (("signal-with-start", "start"), ("signal", "signal")):
                            send: Callable[[str], Awaitable[None]] = getattr(paths, f"{mode}_{action}")
                            driving = _drive(customers, concurrency, _each(send, ids))
                            await measured(f"{mode} {kind}", mode, customers, driving)
                    if api:
                        ids = [f"batch-{round_number}-{i}-{uuid.uuid4().hex[:4]}" for i in range(customers)]
                        groups = [ids[i : i + batch] for i in range(0, len(ids), batch)]
                        lanes = max(1, concurrency // batch)
                        for label, make in (("signal-with-start", _filled), ("signal", _ordered)):
                            driving = _drive(len(groups), lanes, _batches(paths, groups, make))
                            path = f"api batch({batch}) {label}"
                            await measured(path, "api", len(ids), driving, per_request=len(ids) / len(groups))
            finally:
                if paths.api is not None:
                    await paths.api.aclose()
                if api:
                    api[0].terminate()
                    api[0].wait(10)
    rows: list[dict[str, Any]] = []
    for path, rates in results.items():
        mode, kind = path.split(" ", 1) if not path.startswith("api batch") else ("api batch", path.split(" ", 2)[2])
        raw = median(results[f"raw {kind}"])
        rows.append(
            {
                "sqlite": setting,
                "path": path,
                "events_per_s": median(rates),
                "best": max(rates),
                "ratio_to_raw": median(rates) / raw,
                "cpu_ms_per_event": median(cpu[path]) if path in cpu else None,
                **{f"api_{kind}_ms": median(split[path][kind]) if path in split else None for kind in API_THREADS},
            }
        )
    return rows


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--customers", type=int, default=1000, help="journeys started per path and round")
    args_parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    args_parser.add_argument("--rounds", type=int, default=3)
    args_parser.add_argument("--batch", type=int, default=100, help="messages per /v1/batch request")
    args_parser.add_argument("--api-workers", type=int, default=1, help="journeys api --workers")
    args_parser.add_argument("--pragmas", choices=sorted(PRAGMAS), nargs="*", default=sorted(PRAGMAS))
    args = args_parser.parse_args()
    if args.quick:
        args.customers, args.rounds, args.concurrency, args.batch, args.pragmas = 40, 1, 8, 10, ["wal"]
    rows: list[dict[str, Any]] = []
    for setting in args.pragmas:
        rows += event_loop.run(
            measure(setting, args.customers, args.concurrency, args.rounds, args.batch, args.api_workers)
        )
    report(
        "ingestion",
        {
            "journey": JOURNEY,
            "customers_per_round": args.customers,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "statistic": "median of rounds",
            "worker": "none (acceptance only)",
            "api": f"journeys api --workers {args.api_workers}",
        },
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
