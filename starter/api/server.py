"""Serving the API app with uvicorn inside our own event loop (``journeys api`` and ``journeys dev``).

Our SIGINT/SIGTERM handlers own shutdown: uvicorn stops accepting, finishes the requests in flight, and the
process exits 0 (uvicorn's own handlers would re-raise the signal after a graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from contracts.errors import UnavailableError


class ApiBindError(UnavailableError, RuntimeError):
    """The API's address is taken or not ours to bind; the message names it."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or :class:`ApiBindError` naming the address and why."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiBindError(f"the event API cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` on ``host:port`` until the context exits."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    # Bind here, not in uvicorn: a taken port becomes a clear error instead of uvicorn's exit from the loop.
    sock = bind(host, port)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
