"""The event API's two gates, as plain ASGI middleware in front of FastAPI: who may call, and how much they may
send. Both answer before FastAPI reads or parses anything, so a refused request costs next to nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starter.api.auth import PROTECTED_PREFIX, REFUSED, ApiKeys
from starter.api.models import ErrorResponse, FieldError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def refuse(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer with the API's error body, the same :class:`ErrorResponse` FastAPI's handlers send."""
    body = ErrorResponse(errors=[FieldError(path="", message=message)]).model_dump_json().encode()
    await answer_json(send, status, body, headers)


async def answer_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON answer: its start and its body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequireApiKey:
    """Refuse a request under ``/v1/`` without a valid key (``starter.api.auth``): 401."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIX):
            authorization = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
            if not self.keys.allow(authorization.decode("latin-1")):
                await refuse(send, 401, REFUSED, [(b"www-authenticate", b"Basic")])
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, reading no more than ``limit + 1`` of them.

    The body is buffered (it is small by definition) and replayed to the app, so a client that lies in
    ``Content-Length`` or streams chunks is held to the same limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than {self.limit} bytes"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await refuse(send, 413, too_large)
            return
        try:
            body = await read_body(receive, self.limit)
        except BodyTooLarge:
            await refuse(send, 413, too_large)
            return
        if body is None:
            return  # the client went away: nobody to answer, and the app gets no partial body as if whole
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class BodyTooLarge(Exception):
    """The body went past the limit :func:`read_body` was given."""


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body, or None when the client disconnected before sending all of it.

    Raises :class:`BodyTooLarge` as soon as more than ``limit`` bytes arrived, reading no further.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
