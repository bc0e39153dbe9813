"""``journeys dev``: the whole system on one machine, on embedded defaults, stopped cleanly by Ctrl-C.

It runs the Temporal dev server (Web UI, SQLite in the data folder with WAL, the search attributes
registered) as a child process, and the worker and the event API in this process. On Ctrl-C or SIGTERM it
stops taking events, lets the worker finish the tasks in hand, then stops the server: nothing is left running.
With ``--no-worker`` it runs no worker, so workers run as separate ``journeys worker`` processes (to kill one
mid-journey, or to run several); until one is started, journeys are accepted but do not move.

The data folder keeps everything between runs: Temporal's database, the journeys database, the dev API key
and the dev codec key (payloads in Temporal are encrypted with it; the UI decrypts them through the API's
codec endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from contracts.errors import JourneysError, UnavailableError
from contracts.search_attributes import cli_flags
from journeymap import JourneyMap
from runtime.binaries import find_binary
from runtime.codec import new_key_line
from runtime.connection import codec_key_source, connect
from runtime.search_attributes import register_search_attributes
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from starter.api.server import ApiBindError, serving
from starter.broadcasts import ensure_broadcast_schedules
from starter.catalog import load_catalog
from starter.client import JourneyClient
from starter.commands.stopping import stop_on_signals
from starter.schedules import ensure_refresh_schedule
from storage import make_engine
from workers.worker import journey_worker

log = logging.getLogger("journeys.dev")

STARTUP_TIMEOUT = 60.0
"""Seconds the Temporal dev server gets to answer; a first start creates its SQLite database."""
STOP_TIMEOUT = 15.0


class _Stopped(JourneysError):
    """Ctrl-C while starting: control flow inside ``dev``, it never reaches the command's caller."""


class DevError(UnavailableError, RuntimeError):
    """The local system could not start (a port in use, the server exited); the message says which part."""


@dataclass(frozen=True)
class DevOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233
    api_port: int = 8000
    codec: bool = True
    worker: bool = True


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev", help="run everything locally: Temporal dev server with UI, worker and event API (Ctrl-C stops)"
    )
    defaults = Settings()
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="where all state is kept")
    parser.add_argument("--host", default="127.0.0.1", help="address every part binds to (default: loopback)")
    parser.add_argument("--port", type=int, default=7233, help="Temporal gRPC port")
    parser.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port")
    parser.add_argument("--api-port", type=int, default=defaults.api_port, help="event API port")
    parser.add_argument(
        "--no-codec", action="store_true", help="keep payloads unencrypted (default: a key in the data folder)"
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="run no worker here: start `journeys worker` processes yourself"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("journeys").setLevel(logging.INFO)
    options = DevOptions(
        data_dir=args.data_dir.resolve(),
        host=args.host,
        port=args.port,
        ui_port=args.ui_port,
        api_port=args.api_port,
        codec=not args.no_codec,
        worker=not args.no_worker,
    )
    asyncio.run(dev(options))
    return 0


def _secret_file(path: Path, make: str) -> str:
    """Read ``path``, creating it (readable by its owner only) with ``make`` the first time."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make + "\n")
    return path.read_text().strip()


def dev_settings(options: DevOptions) -> Settings:
    """The environment's settings, with what ``journeys dev`` decides: addresses, data folder, dev keys."""
    base = Settings()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    update: dict[str, Any] = {
        "temporal_address": f"{options.host}:{options.port}",
        "data_dir": options.data_dir,
        "api_host": options.host,
        "api_port": options.api_port,
        "codec_cors_origins": f"http://{options.host}:{options.ui_port},http://localhost:{options.ui_port}",
        # The dev UI has no login, so it has no token to send; the codec server answers it on loopback only.
        "codec_allow_unauthenticated": options.host in ("127.0.0.1", "localhost", "::1"),
    }
    if not base.api_keys:
        update["api_keys"] = _secret_file(options.data_dir / "api-key", secrets.token_urlsafe(24))
    if options.codec and not base.codec_keys and base.codec_key_file is None:
        key_file = options.data_dir / "codec.key"
        _secret_file(key_file, new_key_line("dev-1"))
        update["codec_key_file"] = key_file
    if not options.codec:
        update["codec_enabled"] = False
    return base.model_copy(update=update)


def _server_command(options: DevOptions, settings: Settings) -> list[str]:
    command = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        options.host,
        "--port",
        str(options.port),
        "--ui-port",
        str(options.ui_port),
        "--db-filename",
        str(options.data_dir / "temporal.db"),
        "--namespace",
        settings.temporal_namespace,
        # WAL lets the UI's reads run beside the history writes; synchronous=normal is safe with WAL and
        # spares an fsync per transaction.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--ui-disable-news-fetch",
        "--log-level",
        "warn",
        *cli_flags(),
    ]
    if settings.codec_enabled and (settings.codec_keys or settings.codec_key_file is not None):
        command += ["--ui-codec-endpoint", f"http://{options.host}:{options.api_port}/codec"]
    return command


@contextlib.asynccontextmanager
async def _temporal_server(options: DevOptions, settings: Settings) -> AsyncIterator[asyncio.subprocess.Process]:
    """The dev server as a child in its own session (Ctrl-C reaches us, and we stop it in order)."""
    log_path = options.data_dir / "temporal.log"
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *_server_command(options, settings),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_for_server(settings: Settings, process: asyncio.subprocess.Process, stop: asyncio.Event) -> Client:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
    while True:
        if process.returncode is not None:
            raise DevError(
                f"the Temporal dev server exited (code {process.returncode}); is port "
                f"{settings.temporal_address} in use? See {settings.data_dir / 'temporal.log'}"
            )
        if stop.is_set():
            raise _Stopped
        try:
            return await asyncio.wait_for(connect(settings), 5)
        except (RuntimeError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise DevError(f"the Temporal dev server did not answer at {settings.temporal_address}") from None
            await asyncio.sleep(0.2)


async def dev(options: DevOptions) -> None:
    """Run until SIGINT/SIGTERM, then stop API, worker and server in that order."""
    settings = dev_settings(options)
    catalog = load_catalog(settings.journeys_dir)
    try:
        with stop_on_signals() as stop:
            await _run_dev(options, settings, catalog, stop)
    except _Stopped:
        pass  # stopped while starting: the exit stack has already stopped what had started
    print("journeys dev: stopped", flush=True)


async def _run_dev(
    options: DevOptions, settings: Settings, catalog: dict[str, JourneyMap], stop: asyncio.Event
) -> None:
    """The API, worker and server, started in order, until ``stop``; the exit stack stops them in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        process = await stack.enter_async_context(_temporal_server(options, settings))
        client = await _wait_for_server(settings, process, stop)
        await register_search_attributes(client)
        await ensure_refresh_schedule(client, settings)
        await ensure_broadcast_schedules(client, settings)
        engine = make_engine(settings.database)
        stack.callback(engine.dispose)
        journeys = JourneyClient.from_settings(client, settings, catalog)
        if options.worker:
            await stack.enter_async_context(
                journey_worker(
                    client, settings, engine, announce=journeys.send_event, start_journey=journeys.start_broadcast
                )
            )
        codec = client.data_converter.payload_codec
        services = ApiServices(journeys, engine, codec)
        try:
            await stack.enter_async_context(
                serving(create_app(settings, services), settings.api_host, settings.api_port)
            )
        except ApiBindError as exc:
            raise DevError(str(exc)) from exc
        _print_ready(options, settings, encrypted=codec is not None)
        await stop.wait()
        print("journeys dev: stopping", flush=True)


def _print_ready(options: DevOptions, settings: Settings, *, encrypted: bool) -> None:
    api = f"http://{options.host}:{options.api_port}"
    today = datetime.now(UTC).date().isoformat()  # so the example journey waits for a reminder weeks away
    lines = [
        f"Temporal UI:   http://{options.host}:{options.ui_port}",
        f"Temporal:      {settings.temporal_address} (namespace {settings.temporal_namespace})",
        f"Event API:     {api}  (OpenAPI: {api}/docs)",
        f"API key:       {settings.api_keys.split(',')[0]}",
        f"Payloads:      {f'encrypted (keys from {codec_key_source(settings)})' if encrypted else 'plain'}",
        f"Worker:        {'in this process' if options.worker else 'none here: start `journeys worker` beside it'}"
        f" (task queue {settings.task_queue})",
        f"Data folder:   {options.data_dir}",
        f'Try:           curl -u "<API key>:" {api}/v1/track -H "content-type: application/json" -d '
        '\'{"userId": "c-1", "event": "prescription_filled", "messageId": "m-1", "properties": '
        f'{{"rx_id": "rx-1", "days_supply": 30, "refills_remaining": 2, "filled_at": "{today}"}}}}\'',
        "journeys dev is up; Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
