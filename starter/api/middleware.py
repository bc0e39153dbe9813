"""The event API's two gates, as plain ASGI middleware in front of FastAPI: who may call, and how much they may
send. Both answer before FastAPI reads or parses anything, so a refused request costs next to nothing."""

from __future__ import annotations

from contracts.errors import AccessDenied
from starter.api.auth import PROTECTED_PREFIX, REFUSED, ApiKeys
from starter.api.errors import refuse
from starter.api.wire import ASGIApp, BodyTooLarge, Message, Receive, Scope, Send, read_body


class RequireApiKey:
    """Refuse a request under ``/v1/`` without a valid key (``starter.api.auth``): 401."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIX):
            authorization = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
            if not self.keys.allow(authorization.decode("latin-1")):
                await refuse(send, AccessDenied(REFUSED), [(b"www-authenticate", b"Basic")])
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
        declared = dict(scope.get("headers", [])).get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                raise BodyTooLarge(f"request body is larger than {self.limit} bytes")
            body = await read_body(receive, self.limit)
        except BodyTooLarge as error:
            await refuse(send, error)
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
