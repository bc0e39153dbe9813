"""``journeys dev`` as a newcomer runs it: a real process, probed from outside, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowQueryFailedError

from contracts import search_attributes as sa
from runtime.codec import new_key_line
from runtime.connection import DATA_CONVERTER, data_converter
from runtime.settings import Settings
from testkit.processes import free_port, journeys_env

ROOT = Path(__file__).resolve().parent.parent
KEY = "dev-test-key"


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Dev:
    process: asyncio.subprocess.Process
    data_dir: Path
    temporal: str
    ui: str
    api: str
    output: list[str]


@contextlib.asynccontextmanager
async def running_dev(tmp_path: Path, *flags: str, **settings: str) -> AsyncIterator[Dev]:
    """``journeys dev`` with ``flags``, up (its banner printed); killed with its children afterwards."""
    ports = [free_port() for _ in range(3)]
    # SQLite only, no database_url: the point is the embedded default, a journeys.db in the data folder.
    env = journeys_env(**settings)
    env["JOURNEYS_API_KEYS"] = KEY
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "dev",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(ports[0]),
        "--ui-port",
        str(ports[1]),
        "--api-port",
        str(ports[2]),
        *flags,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        while not output or "journeys dev is up" not in output[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), 90)
            if not line:
                raise AssertionError("journeys dev exited while starting:\n" + "".join(output))
            output.append(line.decode())
        yield Dev(
            process,
            tmp_path / "data",
            f"127.0.0.1:{ports[0]}",
            f"http://127.0.0.1:{ports[1]}",
            f"http://127.0.0.1:{ports[2]}",
            output,
        )
    finally:
        if process.returncode is None:
            for pid in descendants(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
            await process.wait()


@pytest_asyncio.fixture
async def dev_process(tmp_path: Path) -> AsyncIterator[Dev]:
    async with running_dev(tmp_path) as dev:
        yield dev


async def _eventually_listed(client: Client, query: str) -> list[str]:
    for _ in range(200):  # visibility is eventually consistent
        found = [w.id async for w in client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_dev_brings_everything_up_and_ctrl_c_stops_it_all(dev_process: Dev) -> None:
    dev = dev_process
    printed = "".join(dev.output)
    assert dev.ui in printed and dev.api in printed

    async with httpx.AsyncClient(timeout=30) as http:
        ui = await http.get(dev.ui)
        assert ui.status_code == 200

        tracked = await http.post(
            f"{dev.api}/v1/track",
            auth=(KEY, ""),
            json={
                "messageId": "dev-m-1",
                "userId": "dev-customer",
                "event": "prescription_filled",
                "properties": {
                    "rx_id": "RX-SECRET-4711",
                    "days_supply": 30,
                    "refills_remaining": 1,
                    # Today: the reminder is weeks away, so the journey is found waiting for it. (A fixed date
                    # stopped working once its reminder day had passed.)
                    "filled_at": datetime.now(UTC).date().isoformat(),
                },
            },
        )
        assert tracked.status_code == 200, tracked.text
        reached = tracked.json()["journeys"]
        assert [r["journey"] for r in reached] == ["pharmacy_refill"]

    # The workflow appears, found by its search attributes.
    plain = await Client.connect(dev.temporal, data_converter=DATA_CONVERTER)
    found = await _eventually_listed(
        plain, f"{sa.CUSTOMER_ID.name} = 'dev-customer' AND {sa.JOURNEY_NAME.name} = 'pharmacy_refill'"
    )
    assert found == [reached[0]["workflowId"]]
    handle = plain.get_workflow_handle(found[0])
    keyed = await Client.connect(
        dev.temporal, data_converter=data_converter(Settings(codec_key_file=dev.data_dir / "codec.key"))
    )
    # Where it rests, as the Temporal UI shows it on the journey's page (no search attribute by default).
    assert "at step `wait_for_reminder`" in await _resting(keyed, found[0], "wait_for_reminder")

    # journeys dev encrypts payloads with the key it made: the history holds no prescription number in clear,
    # and a client holding the key reads it back.
    history = await handle.fetch_history()
    assert b"RX-SECRET-4711" not in b"".join(e.SerializeToString() for e in history.events)
    snapshot = await keyed.get_workflow_handle(found[0]).query("state")
    assert snapshot["vars"]["rx_id"] == "RX-SECRET-4711"
    # Nothing to set up: the journeys database is a SQLite file in the data folder.
    assert (dev.data_dir / "journeys.db").is_file()

    children = descendants(dev.process.pid)
    assert children, "the Temporal dev server runs as a child process"
    dev.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(dev.process.wait(), 60) == 0
    assert not [pid for pid in children if alive(pid)]


@pytest.mark.parametrize("flag", ["--port", "--api-port"])
async def test_dev_says_which_port_is_taken(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = {"--port": free_port(), "--ui-port": free_port(), "--api-port": free_port(), flag: busy}
        env = journeys_env()  # the embedded default (SQLite), as a newcomer runs it: no database_url
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            "dev",
            "--data-dir",
            str(tmp_path),
            *[str(x) for pair in ports.items() for x in pair],
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 1
    assert str(busy) in err.decode()


async def _pollers(client: Client, task_queue: str) -> int:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(described.pollers)


async def _resting(client: Client, workflow_id: str, step: str) -> str:
    """The journey's current details once they name ``step`` (the Temporal UI asks the worker for them)."""
    details = ""
    for _ in range(600):
        try:
            metadata = await client.get_workflow_handle(workflow_id).query(
                "__temporal_workflow_metadata", result_type=WorkflowMetadata
            )
            details = str(metadata.current_details)
        except WorkflowQueryFailedError:
            details = ""
        if f"`{step}`" in details:
            break
        await asyncio.sleep(0.1)
    return details


async def test_dev_without_its_worker_runs_journeys_on_a_separate_worker(tmp_path: Path) -> None:
    """The parts separately, as docs/operations.md shows: ``journeys dev --no-worker`` accepts a journey that does
    not move (no worker polls its queue) until a ``journeys worker`` process is started beside it."""
    codec_keys = new_key_line("team-1")
    async with running_dev(tmp_path, "--no-worker", JOURNEYS_CODEC_KEYS=codec_keys) as dev:
        printed = "".join(dev.output)
        assert "Payloads:      encrypted (keys from JOURNEYS_CODEC_KEYS)" in printed
        assert "Worker:        none here" in printed
        async with httpx.AsyncClient(timeout=30) as http:
            tracked = await http.post(
                f"{dev.api}/v1/track",
                auth=(KEY, ""),
                json={
                    "messageId": "apart-m-1",
                    "userId": "apart-customer",
                    "event": "prescription_filled",
                    "properties": {
                        "rx_id": "rx-1",
                        "days_supply": 30,
                        "refills_remaining": 1,
                        "filled_at": datetime.now(UTC).date().isoformat(),
                    },
                },
            )
        assert tracked.status_code == 200, tracked.text
        [reached] = tracked.json()["journeys"]
        client = await Client.connect(dev.temporal, data_converter=data_converter(Settings(codec_keys=codec_keys)))
        handle = client.get_workflow_handle(reached["workflowId"])
        history = await handle.fetch_history()
        assert await _pollers(client, "journeys") == 0
        assert not [e for e in history.events if e.HasField("workflow_task_started_event_attributes")]

        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            "worker",
            cwd=ROOT,
            env=journeys_env(
                JOURNEYS_TEMPORAL_ADDRESS=dev.temporal,
                JOURNEYS_DATA_DIR=str(dev.data_dir),
                JOURNEYS_CODEC_KEYS=codec_keys,
                JOURNEYS_WORKER_SHUTDOWN_SECONDS="1",
            ),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert "at step `wait_for_reminder`" in await _resting(client, reached["workflowId"], "wait_for_reminder")
            worker.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(worker.communicate(), 60)
            assert worker.returncode == 0, err.decode()
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        dev.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(dev.process.wait(), 60) == 0
