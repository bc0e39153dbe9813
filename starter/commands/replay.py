"""``journeys replay --query '...'``: replay real histories against today's workflow code before deploying it.

Histories are downloaded from the server (a visibility query picks them) and replayed with the same sandbox
the workers use. Any non-determinism (the new code would issue different commands than the history holds)
exits non-zero, naming each workflow, so a deploy pipeline can stop on it.

What can be shared across histories is: one replayer (one SDK worker and sandbox runner) replays the whole
batch, the map language and its parsed expressions are imported and cached once per process (passed through
the sandbox, :mod:`workers.sandbox`), the workflow module is compiled once, and the next histories are
downloaded while one is replayed. The SDK still loads the workflow module into a fresh sandbox for every
history: that isolation is what makes a replay trustworthy. docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from runtime.connection import connect
from runtime.settings import Settings
from workers.sandbox import workflow_bytecode
from workers.worker import workflow_runner
from workflows.journey import JourneyWorkflow

WORKFLOWS: tuple[type, ...] = (JourneyWorkflow,)
"""The workflow code replayed: today's."""
DEFAULT_QUERY = "WorkflowType = 'Journey'"
FETCH_AHEAD = 8
"""Histories downloaded ahead of the one being replayed: a download waits on the server, a replay on the CPU."""


@dataclass
class ReplayReport:
    replayed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    """Workflow id (and run id) -> what went wrong."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay", help="replay histories from the server against the current code; non-zero on non-determinism"
    )
    parser.add_argument(
        "--query", default=DEFAULT_QUERY, help=f"visibility query choosing the workflows (default: {DEFAULT_QUERY})"
    )
    parser.add_argument("--limit", type=int, default=None, help="replay at most this many (newest first)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(_replay(args.query, args.limit))
    for workflow_id, problem in report.failures.items():
        print(f"NON-DETERMINISTIC {workflow_id}: {problem}")
    print(f"replayed {report.replayed} histories: {len(report.failures)} failed")
    return 1 if report.failures else 0


async def _replay(query: str, limit: int | None) -> ReplayReport:
    return await replay_histories(await connect(Settings()), query, limit=limit)


async def replay_histories(client: Client, query: str, *, limit: int | None = None) -> ReplayReport:
    """Replay the histories of the workflows ``query`` finds; every failure is collected, none stops the run."""
    return await _replay_all(_downloaded(client, query, limit), client.data_converter)


async def _downloaded(client: Client, query: str, limit: int | None) -> AsyncIterator[WorkflowHistory]:
    """The histories of the workflows ``query`` finds, in the server's order, up to :data:`FETCH_AHEAD`
    downloading while the caller replays the ones before."""
    pending: deque[asyncio.Task[WorkflowHistory]] = deque()
    try:
        async for execution in client.list_workflows(query, limit=limit):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            pending.append(asyncio.create_task(handle.fetch_history()))
            if len(pending) >= FETCH_AHEAD:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()


async def replay_files(paths: list[Path], data_converter: DataConverter) -> ReplayReport:
    """Replay recorded histories (JSON, as the Temporal UI and CLI export them; the file's stem names it)."""

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in paths:
            yield WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))

    return await _replay_all(histories(), data_converter)


def replayer(data_converter: DataConverter) -> Replayer:
    """One replayer for a whole batch of histories, with the workers' sandbox.

    It names its own build id: the SDK's default hashes the code of every module the process has loaded
    (compiling each one that has no bytecode on disk), about half a second in this command, for an id a replay
    never uses.
    """
    return Replayer(
        workflows=list(WORKFLOWS),
        workflow_runner=workflow_runner(data_converter),
        data_converter=data_converter,
        build_id="journeys-replay",
    )


async def _replay_all(histories: AsyncIterator[WorkflowHistory], data_converter: DataConverter) -> ReplayReport:
    report = ReplayReport()
    with workflow_bytecode(WORKFLOWS):
        async with replayer(data_converter).workflow_replay_iterator(histories) as results:
            async for result in results:
                report.replayed += 1
                if result.replay_failure is not None:
                    where = f"{result.history.workflow_id} (run {result.history.run_id})"
                    report.failures[where] = f"{type(result.replay_failure).__name__}: {result.replay_failure}"
    return report
