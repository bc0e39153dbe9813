"""A worker SIGKILLed mid fan-out, then restarted (real processes, real dev server): the broadcast resumes at
its page, and every member's journey was started exactly once, none skipped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from contracts.broadcasts import (
    BROADCAST_WORKFLOW,
    BroadcastInput,
    BroadcastProgress,
    BroadcastResult,
    occurrence_workflow_id,
)
from storage import Customer, Delivery, make_engine
from storage.tables import SegmentMembership
from testkit.harness import ROOT, write_journeys

MAP = """
name: flu
entry:
  events: [broadcast.flu]
  key: broadcast
steps:
  - id: remind
    send: {channel: email, template: flu, category: transactional}
"""
CUSTOMERS = [f"c{i:03d}" for i in range(120)]


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "journeys"), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def test_a_worker_killed_mid_fan_out_starts_every_member_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    maps = write_journeys(tmp_path, {"flu": MAP}, {"flu": "email:\n  subject: flu\n  text: flu\n"})
    (maps / "segments").mkdir()
    (maps / "segments" / "audience.yaml").write_text("name: audience\nwhere: {trait: pharmacy, equals: true}\n")
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": c, "traits": {"pharmacy": True}, "updated_at": now} for c in CUSTOMERS],
        )
        connection.execute(
            insert(SegmentMembership.__table__),  # type: ignore[attr-defined]
            [{"segment": "audience", "customer_id": c, "entered_at": now} for c in CUSTOMERS],
        )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "PYTHONPATH": str(ROOT),  # the worker runs this checkout's code, whatever is installed
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_JOURNEYS_DIR": str(maps),
    }
    log = tmp_path / "worker.log"
    occurrence = occurrence_workflow_id("flu", "kill")
    handle = await dev_env.client.start_workflow(
        BROADCAST_WORKFLOW,
        BroadcastInput(
            broadcast="flu",
            journey="flu",
            segment="audience",
            category="transactional",
            page_size=10,
            rate_per_second=10,
            pages_per_run=3,
        ),
        id=occurrence,
        task_queue=task_queue,
        result_type=BroadcastResult,
    )
    worker = _worker(env, log)
    try:
        # Some pages are done, most are not: kill the worker now.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while True:
            progress = await handle.query("progress", result_type=BroadcastProgress)
            if progress is not None and progress.started >= 30:
                break
            assert loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert progress.started < len(CUSTOMERS), "the fan-out was still under way when the worker died"

        worker = _worker(env, log)
        result = await asyncio.wait_for(handle.result(), timeout=240)
        assert (result.progress.started, result.progress.skipped) == (len(CUSTOMERS), {})
        # Every member's journey ran and sent once: none started twice, none skipped.
        while len(_sends(engine)) < len(CUSTOMERS):
            assert loop.time() < deadline + 240, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        sent = Counter(_sends(engine))
        assert set(sent) == set(CUSTOMERS)
        assert max(sent.values()) == 1
        query = "WorkflowType = 'Journey' AND WorkflowId STARTS_WITH 'journey/flu/'"
        runs: Counter[str] = Counter()
        async for execution in dev_env.client.list_workflows(query):
            if execution.id.split("/")[2] in sent:
                runs[execution.id] += 1
        assert all(n == 1 for n in runs.values()), "no journey id has a second run"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        engine.dispose()


def _sends(engine: object) -> list[str]:
    with Session(engine) as session:  # type: ignore[arg-type]
        return [d.customer_id for d in session.exec(select(Delivery).where(Delivery.journey == "flu"))]
