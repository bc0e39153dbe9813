"""Replay: the time one history takes to replay, the interpreter's against the hand-written workflow's.

Both replay the same story (``bench.scenarios.pharmacy_refill``: a customer's year, 11 refill cycles, one late
pickup), generated in the same run on one time-skipping server: the interpreter with the ``pharmacy_refill``
map, and ``bench.handwritten``'s plain workflow. Both are paced by a query, which writes nothing to history, so
the histories are what a backend's journeys leave (the tests' ``rested`` update would add events).

Each kind is replayed through one ``Replayer`` kept open for the whole run (one batch, as ``journeys replay``
replays many histories): the interpreter exactly as ``journeys replay`` does it (``starter.commands.replay``:
the workers' sandbox, ``workers.sandbox``, its module compiled once), the hand-written workflow in the SDK's
default sandbox (the reference: what its author would use) and, for comparison, in ours. Every round replays
each history once, the kinds taking turns history by history in an order that rotates each round; per history
it reports the wall time and the process's CPU time (Python and the SDK's core threads), and the ratio to the
reference as the median of the rounds' ratios, so load on a shared machine falls on all alike. ``--bytecode``
byte-compiles the hand-written module too, as pip would install it.

``--histories DIR`` replays JSON files instead (e.g. ``python -m bench.cost --save-histories DIR``: every
built-in journey), interpreter only, in histories per second. ``--save-histories DIR`` keeps the generated
pair, ``--load DIR`` compares it again without generating.

    python -m bench.replay [--customers N] [--rounds N] [--bytecode] [--quick] [--json FILE]
    python -m bench.replay --histories DIR [--repeat N]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, WorkflowReplayResult, WorkflowRunner

from bench import handwritten
from bench.common import parser, report
from bench.cost import chain
from bench.scenarios import pharmacy_refill
from contracts.ids import journey_workflow_id
from contracts.journey import JourneySnapshot
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from starter.commands import replay as replay_command
from testkit.harness import Journeys, running_journeys
from workers.sandbox import JourneySandbox, ignores_context, workflow_bytecode

RESTING = ("waiting", "completed", "exited", "failed", "not_entered", "faulted", "cooldown")


class QueryPaced(Journeys):
    """The scenarios' customer, pacing itself with the ``state`` query instead of the ``rested`` update: a query
    leaves nothing in history, so the interpreter's history holds only what a backend's journey would."""

    async def settled(
        self,
        journey: str,
        customer_id: str,
        instance_key: str | None = None,
        *,
        until: Callable[[JourneySnapshot], bool] | None = None,
    ) -> JourneySnapshot:
        handle = self.client.get_workflow_handle(journey_workflow_id(journey, customer_id, instance_key))
        while True:
            state: JourneySnapshot = await handle.query("state", result_type=JourneySnapshot)
            if state.status in RESTING and (until is None or until(state)):
                return state
            await asyncio.sleep(0.01)


@dataclass
class Kind:
    """One workflow's histories and the sandbox they are replayed in."""

    name: str
    replayer: Callable[[], Replayer]
    histories: list[WorkflowHistory]
    reference: bool = False
    """The plain hand-written workflow in the SDK's default sandbox: the ratios are to it."""


async def generate(customers: int) -> list[Kind]:
    """The pharmacy year of ``customers`` customers, by the interpreter and by the plain hand-written workflow."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    try:
        await register_search_attributes(env.client, check_existing=False)
        interpreted: list[WorkflowHistory] = []
        with tempfile.TemporaryDirectory() as tmp:
            queue = f"bench-replay-{uuid.uuid4().hex[:8]}"
            async with running_journeys(
                env.client, Path(tmp), queue, database_url=f"sqlite:///{tmp}/journeys.db"
            ) as base:
                j = QueryPaced(**{f.name: getattr(base, f.name) for f in fields(base)})
                for index in range(customers):
                    customer = f"replay-{uuid.uuid4().hex[:6]}-{index}"
                    for workflow_id in await pharmacy_refill(j, env, customer):
                        await j.client.get_workflow_handle(workflow_id).result()
                        interpreted += await chain(env.client, workflow_id)
        plain = await handwritten.histories(env, search_by_step=False, customers=customers)
    finally:
        await env.shutdown()
    return kinds_of(interpreted, plain)


def kinds_of(interpreted: list[WorkflowHistory], plain: list[WorkflowHistory]) -> list[Kind]:
    """The interpreter as ``journeys replay`` replays it, and the plain hand-written workflow twice: in the
    sandbox its author would use (the SDK's default, with ZoneInfo allowed: the reference) and, for comparison,
    in ours (:mod:`workers.sandbox`)."""

    def interpreter() -> Replayer:
        return replay_command.replayer(DATA_CONVERTER)

    def hand_written(runner: WorkflowRunner) -> Callable[[], Replayer]:
        # A build id of its own, as journeys replay: the SDK's default hashes every loaded module's code.
        return lambda: Replayer(
            workflows=[handwritten.HandwrittenRefill],
            workflow_runner=runner,
            data_converter=DATA_CONVERTER,
            build_id="bench-replay",
        )

    ours = JourneySandbox(
        restrictions=handwritten.workflow_runner().restrictions, context_free=ignores_context(DATA_CONVERTER)
    )
    return [
        Kind("journeys interpreter, pharmacy_refill", interpreter, interpreted),
        Kind("hand-written, plain", hand_written(handwritten.workflow_runner()), plain, True),
        Kind("hand-written, plain, in journeys' sandbox", hand_written(ours), plain),
    ]


async def replay_batch(replayer: Replayer, histories: list[WorkflowHistory]) -> tuple[float, float, int]:
    """Wall and CPU seconds (the whole process: Python and the SDK's core threads) to replay ``histories`` in one
    batch, as ``journeys replay`` does; and the failures."""

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    failures = 0
    started, cpu = time.perf_counter(), time.process_time()
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            failures += result.replay_failure is not None
    return time.perf_counter() - started, time.process_time() - cpu, failures


class Open:
    """A kind's replayer kept open for the whole run, fed one history at a time: one batch, as ``journeys replay``
    replays many histories, while the kinds take turns history by history."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[WorkflowHistory | None] = asyncio.Queue()
        self.results: AsyncIterator[WorkflowReplayResult] | None = None

    async def histories(self) -> AsyncIterator[WorkflowHistory]:
        while (history := await self.queue.get()) is not None:
            yield history

    async def replay(self, history: WorkflowHistory) -> tuple[float, float, bool]:
        """Wall and CPU seconds (the whole process: Python and the SDK's core threads); whether it failed."""
        assert self.results is not None
        self.queue.put_nowait(history)
        started, cpu = time.perf_counter(), time.process_time()
        result = await anext(self.results)
        return time.perf_counter() - started, time.process_time() - cpu, result.replay_failure is not None


async def compare(kinds: list[Kind], rounds: int) -> list[dict[str, Any]]:
    """Each round replays every history of every kind once, the kinds taking turns history by history (in an
    order that rotates each round), so load on a shared machine falls on all alike. Per history: the median of
    the rounds, and of the rounds' ratios to the reference."""
    opened = [Open() for _ in kinds]
    wall: list[list[float]] = [[] for _ in kinds]
    cpu: list[list[float]] = [[] for _ in kinds]
    failures = [0 for _ in kinds]
    async with AsyncExitStack() as stack:
        for kind, each in zip(kinds, opened, strict=True):
            each.results = await stack.enter_async_context(kind.replayer().workflow_replay_iterator(each.histories()))
            stack.callback(each.queue.put_nowait, None)  # ends its batch on the way out
            await each.replay(kind.histories[0])  # warm: imports, caches
        for turn in range(rounds):
            spent = [[0.0, 0.0] for _ in kinds]
            for position in range(max(len(k.histories) for k in kinds)):
                for offset in range(len(kinds)):
                    index = (turn + offset) % len(kinds)
                    histories = kinds[index].histories
                    if position < len(histories):
                        seconds, cpu_seconds, failed = await opened[index].replay(histories[position])
                        spent[index][0] += seconds
                        spent[index][1] += cpu_seconds
                        failures[index] += failed
            for index, kind in enumerate(kinds):
                wall[index].append(spent[index][0] / len(kind.histories))
                cpu[index].append(spent[index][1] / len(kind.histories))
    ref = next(index for index, kind in enumerate(kinds) if kind.reference)
    rows = []
    for index, kind in enumerate(kinds):
        events = statistics.mean(len(h.events) for h in kind.histories)
        median = statistics.median(wall[index])
        ratios = [mine / theirs for mine, theirs in zip(wall[index], wall[ref], strict=True)]
        cpu_ratios = [mine / theirs for mine, theirs in zip(cpu[index], cpu[ref], strict=True)]
        rows.append(
            {
                "workflow": kind.name,
                "histories": len(kind.histories),
                "events_per_history": events,
                "bytes_per_history": statistics.mean(sum(e.ByteSize() for e in h.events) for h in kind.histories),
                "ms_per_history": median * 1000,
                "cpu_ms_per_history": statistics.median(cpu[index]) * 1000,
                "histories_per_s": 1 / median,
                "events_per_s": events / median,
                "ratio_to_plain": statistics.median(ratios),
                "cpu_ratio_to_plain": statistics.median(cpu_ratios),
                "best_ratio_to_plain": min(wall[index]) / min(wall[ref]),
                "failures": failures[index],
                "ratio_rounds": [round(r, 3) for r in ratios],
                "cpu_ratio_rounds": [round(r, 3) for r in cpu_ratios],
            }
        )
    return rows


def save(kinds: list[Kind], folder: Path) -> None:
    """Each history as JSON, named ``interpreter-N`` or ``handwritten-N`` (for ``--load`` or a profiler)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, kind in zip(("interpreter", "handwritten"), kinds[:2], strict=True):
        for index, history in enumerate(kind.histories):
            (folder / f"{prefix}-{index}.json").write_text(history.to_json())


def reload(folder: Path) -> list[Kind]:
    """The kinds :func:`save` wrote to ``folder``."""
    return kinds_of(load(folder, "interpreter-*.json"), load(folder, "handwritten-*.json"))


def load(folder: Path, pattern: str = "*.json") -> list[WorkflowHistory]:
    return [WorkflowHistory.from_json(path.stem, path.read_text()) for path in sorted(folder.glob(pattern))]


async def files(folder: Path, repeat: int) -> dict[str, Any]:
    """``--histories``: every file in ``folder``, ``repeat`` times in one batch, as ``journeys replay`` would."""
    histories = load(folder)
    replayer = replay_command.replayer(DATA_CONVERTER)
    await replayer.replay_workflow(histories[0])
    batch = histories * repeat
    seconds, cpu_seconds, failures = await replay_batch(replayer, batch)
    events = sum(len(h.events) for h in batch)
    return {
        "workflow": f"{len(histories)} histories from {folder}",
        "histories": len(batch),
        "events": events,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "histories_per_s": len(batch) / seconds,
        "events_per_s": events / seconds,
        "failures": failures,
    }


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--histories", type=Path, help="replay these JSON histories (interpreter only)")
    args_parser.add_argument("--customers", type=int, default=2, help="pharmacy years generated per workflow")
    args_parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds; the ratio is their median")
    args_parser.add_argument("--repeat", type=int, default=10, help="--histories: each history replayed this often")
    args_parser.add_argument("--save-histories", type=Path, help="also write the generated histories here")
    args_parser.add_argument("--load", type=Path, help="compare the histories --save-histories wrote, not new ones")
    args_parser.add_argument(
        "--bytecode", action="store_true", help="the hand-written module byte-compiled too, as pip installs it"
    )
    args = args_parser.parse_args()
    customers, rounds, repeat = (1, 3, 2) if args.quick else (args.customers, args.rounds, args.repeat)
    if args.histories is not None:
        with workflow_bytecode(replay_command.WORKFLOWS):
            row = asyncio.run(files(args.histories, repeat))
        report("replay", {"repeat": repeat, "runner": "journeys replay"}, [row], args.json)
        return
    kinds = reload(args.load) if args.load is not None else asyncio.run(generate(customers))
    if args.save_histories is not None:
        save(kinds, args.save_histories)
    # What journeys replay does (its workflow module compiled once); with --bytecode, the hand-written one's too,
    # as both would be when installed with pip.
    compiled = [*replay_command.WORKFLOWS, *([handwritten.HandwrittenRefill] if args.bytecode else [])]
    with workflow_bytecode(compiled):
        rows = asyncio.run(compare(kinds, rounds))
    report(
        "replay time per history, pharmacy year",
        {"customers": customers, "rounds": rounds, "bytecode": args.bytecode},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
