"""Helpers for tests and benchmarks that run journeys' own commands, and the Temporal dev server, as separate OS
processes they can kill and start again (tests/test_fault_injection.py, bench/soak.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError

from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def journeys_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``JOURNEYS_*`` it happens to have, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return env | settings


class DevServer:
    """``temporal server start-dev`` on a SQLite file, stoppable and restartable on the same file and port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.folder / "temporal.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    find_binary("temporal"),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--http-port",
                    str(self.http_port),
                    "--metrics-port",
                    str(self.metrics_port),
                    "--db-filename",
                    str(self.folder / "temporal.db"),
                    "--sqlite-pragma",
                    "journal_mode=wal",
                    "--sqlite-pragma",
                    "synchronous=normal",
                ],
                stdout=log,
                stderr=log,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    async def client(self) -> Client:
        for _ in range(300):
            try:
                client = await Client.connect(self.address, data_converter=DATA_CONVERTER)
                await client.count_workflows()
                return client
            except (RPCError, RuntimeError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"the dev server at {self.address} did not come up; see {self.folder}/temporal.log")


class Workers:
    """``journeys worker`` processes on one task queue, as deployed: configuration from the environment."""

    def __init__(
        self, folder: Path, address: str, task_queue: str, database_url: str, extra_env: dict[str, str]
    ) -> None:
        self.folder = folder
        self.env = {
            **os.environ,
            "JOURNEYS_TEMPORAL_ADDRESS": address,
            "JOURNEYS_TASK_QUEUE": task_queue,
            "JOURNEYS_DATA_DIR": str(folder),
            "JOURNEYS_DATABASE_URL": database_url,
            "JOURNEYS_JOURNEYS_DIR": str(folder / "journeys"),
            "JOURNEYS_WORKER_SHUTDOWN_SECONDS": "1",
            **extra_env,
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.killed = 0

    def start(self) -> subprocess.Popen[bytes]:
        with (self.folder / "workers.log").open("ab") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "journeys"), "worker"], env=self.env, stdout=log, stderr=log
            )
        self.processes.append(process)
        return process

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            self.killed += 1

    async def supervise(self, count: int) -> None:
        """Keep ``count`` workers running, as systemd or Kubernetes would: one that exits is started again
        (a worker started while the server is away exits when it cannot connect)."""
        while True:
            while len(self.alive()) < count:
                self.start()
            await asyncio.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the workers' shared log, for a failure message: CI keeps no tmp_path."""
        log = self.folder / "workers.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def stop_all(self) -> None:
        for process in self.alive():
            process.kill()
            process.wait(10)
