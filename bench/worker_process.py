"""A ``journeys worker`` in its own process, configured only through ``JOURNEYS_*`` variables, as deployed.

The benchmarks that measure a worker (memory, wake-ups) run the real command rather than building a worker
in-process: the settings reach it exactly as they reach a deployment, and the worker's start line says what it
runs with (the cache size as its ``Worker`` holds it), which is what the benchmark then prints.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from storage import make_engine
from testkit.harness import ROOT
from testkit.processes import journeys_env

SLOTS = {"WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": "10"}
"""The benchmarks' workers run 10 workflow tasks at once, not the SDK's 100: on the shared 2-core machine 100 at
a time each took longer than the server's 10-second workflow-task timeout, were timed out and run again, and a
load of 10,000 journeys crawled at under one a second (docs/scaling.md)."""

_RUNNING = re.compile(r"worker running on task queue (\S+) \(caching up to (\d+) journeys\)")


@dataclass
class RunningWorker:
    process: psutil.Process
    task_queue: str
    max_cached_workflows: int
    """As the worker reported it at start, not as asked for."""
    log: Path
    popen: subprocess.Popen[bytes]

    def check_running(self) -> None:
        """Raise, with the end of its log, when the worker has exited: a benchmark must not wait on a dead one."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"the worker exited: {self.log.read_text(errors='replace')[-2000:]}")

    def rss_mib(self) -> float:
        return float(self.process.memory_info().rss) / 2**20


@asynccontextmanager
async def journeys_worker(
    temporal_address: str, folder: Path, task_queue: str, **settings: str
) -> AsyncIterator[RunningWorker]:
    """``journeys worker`` on ``task_queue`` with its own SQLite database in ``folder``; stopped with SIGTERM.

    ``settings`` are more ``JOURNEYS_*`` variables, named without the prefix (``WORKER_MAX_CACHED_WORKFLOWS``).
    """
    data = folder / task_queue
    data.mkdir(parents=True, exist_ok=True)
    # `journeys setup`'s part: the worker refuses a database whose schema it has not upgraded.
    make_engine(f"sqlite:///{data / 'journeys.db'}").dispose()
    env = journeys_env(
        JOURNEYS_TEMPORAL_ADDRESS=temporal_address,
        JOURNEYS_TASK_QUEUE=task_queue,
        JOURNEYS_DATA_DIR=str(data),
        **{f"JOURNEYS_{name}": value for name, value in settings.items()},
    )
    log = folder / f"{task_queue}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "starter.cli", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        for _ in range(1200):
            found = _RUNNING.search(log.read_text(errors="replace"))
            if found:
                break
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: {log.read_text(errors='replace')[-2000:]}")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the worker did not start: {log.read_text(errors='replace')[-2000:]}")
        yield RunningWorker(psutil.Process(process.pid), found[1], int(found[2]), log, process)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
