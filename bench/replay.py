"""Replay: histories replayed per second with the worker's own sandbox (``workers.worker.workflow_runner``).

This is what ``journeys replay`` and a deploy gate pay per history. Histories come from ``--histories DIR``
(JSON files, e.g. written by ``python -m bench.cost --save-histories DIR``) or, by default, from a fresh
simulated year of each built-in journey.

    python -m bench.replay [--histories DIR] [--repeat N] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from bench import cost
from bench.common import parser, report
from runtime.connection import DATA_CONVERTER
from workers.worker import workflow_runner
from workflows.journey import JourneyWorkflow


async def measure(histories: list[WorkflowHistory], repeat: int) -> dict[str, Any]:
    replayer = Replayer(workflows=[JourneyWorkflow], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER)
    # A first pass warms the sandbox's module cache and the expression cache, as a long-running gate would be.
    await replayer.replay_workflow(histories[0])
    batch = histories * repeat

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in batch:
            yield history

    failures = 0
    started = time.perf_counter()
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            failures += result.replay_failure is not None
    elapsed = time.perf_counter() - started
    events = sum(len(h.events) for h in batch)
    return {
        "histories": len(batch),
        "events": events,
        "seconds": elapsed,
        "histories_per_s": len(batch) / elapsed,
        "events_per_s": events / elapsed,
        "failures": failures,
    }


def load(folder: Path) -> list[WorkflowHistory]:
    return [WorkflowHistory.from_json(path.stem, path.read_text()) for path in sorted(folder.glob("*.json"))]


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--histories", type=Path)
    args_parser.add_argument("--repeat", type=int, default=20)
    args = args_parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.histories
        if folder is None:
            folder = Path(tmp)
            asyncio.run(cost.measure(1, folder))
        histories = load(folder)
        row = asyncio.run(measure(histories, repeat))
    report("replay", {"distinct_histories": len(histories), "repeat": repeat, "runner": "sandboxed"}, [row], args.json)


if __name__ == "__main__":
    main()
