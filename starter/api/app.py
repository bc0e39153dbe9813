"""The event API app: ``/v1/track``, ``/v1/identify``, ``/v1/batch`` (Segment-compatible) and the codec server.

Guarantees a backend relies on:

- Authenticated by API key (HTTP Basic with the key as user name, as Segment's libraries send it, or
  ``Authorization: Bearer <key>``), compared in constant time: every path under ``/v1/`` (``starter.api.auth``).
- A body over ``api_max_body_bytes`` is refused (413) before it is parsed.
- A malformed message gets 422 naming the field path (``batch[2].event``) and nothing is delivered: a batch
  is validated whole before any message in it is.
- The same ``messageId`` twice has effect once: the second gets the first answer, marked ``duplicate``.
  (The journey workflows also drop an event id they saw, which covers two copies arriving at once.)
- The answer lists the journeys each event reached.

Bodies are never logged: they carry personal data.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at run time, and they
# name dependencies local to create_app.

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from analytics.api import ReportContext, report_router
from runtime.codec import CodecError
from runtime.settings import Settings
from starter.api.auth import REFUSED, ApiKeys, document_api_keys
from starter.api.bookkeeping import Handled
from starter.api.middleware import BodyLimit, RequireApiKey
from starter.api.models import (
    BatchMessage,
    BatchResult,
    ErrorResponse,
    FieldError,
    IdentifyMessage,
    JourneyReached,
    MessageResult,
    TrackMessage,
)
from starter.api.services import ApiServices, get_services, open_services
from starter.api.webhooks import webhook_router
from workflows.models import JourneyEvent

log = logging.getLogger("journeys.api")


def _path(loc: tuple[int | str, ...]) -> str:
    """``('body', 'batch', 2, 'track', 'event')`` -> ``batch[2].event`` (the union's tag is not a field)."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    previous: int | str | None = None
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in ("track", "identify"):
            pass
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out


def create_app(settings: Settings, services: ApiServices | None = None) -> FastAPI:
    """The API app. Without ``services`` it connects to Temporal and the database at start-up."""
    keys = ApiKeys.parse(settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        async with open_services(settings) as opened:
            app.state.services = opened
            yield

    app = FastAPI(
        title="journeys event API",
        version="1",
        description=(
            "Segment-compatible ingestion of events into customer journeys, and the payload codec "
            "server for the Temporal UI. Authenticate with an API key: HTTP Basic (key as user name) "
            "or `Authorization: Bearer <key>`."
        ),
        lifespan=lifespan,
        responses={
            401: {"model": ErrorResponse, "description": REFUSED},
            413: {"model": ErrorResponse, "description": "body too large"},
            422: {"model": ErrorResponse, "description": "malformed message, with the field path"},
        },
    )
    if services is not None:
        # Set now, not only in the lifespan: tests drive the app through httpx's ASGI transport, which has none.
        app.state.services = services
    origins = [o.strip() for o in settings.codec_cors_origins.split(",") if o.strip()]
    if origins:
        # The Temporal UI calls the codec server from the browser: only its origin may.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
        )

    bearer = HTTPBearer(auto_error=False)

    # ``async def`` though it never awaits: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per
    # request for nothing.
    async def codec_access(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        """The codec server is not under ``/v1/``: the Temporal UI presents a key as Bearer, or none when
        ``codec_allow_unauthenticated``. ``_bearer`` declares the scheme in the OpenAPI document."""
        if settings.codec_allow_unauthenticated:
            return
        if not keys.allow(request.headers.get("authorization")):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, REFUSED)

    async def services_of(request: Request) -> ApiServices:
        return get_services(request)

    Services = Annotated[ApiServices, Depends(services_of)]

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(path=_path(tuple(e.get("loc", ()))), message=str(e.get("msg"))) for e in exc.errors()]
        return JSONResponse(ErrorResponse(errors=errors).model_dump(), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        body = ErrorResponse(errors=[FieldError(path="", message=str(exc.detail))]).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def _handle(
        services: ApiServices, message: TrackMessage | IdentifyMessage, batch_sent_at: datetime | None = None
    ) -> MessageResult:
        received_at = datetime.now(UTC)
        message_id = message.message_id or uuid.uuid4().hex
        known = await services.bookkeeping.before_routing(message)
        if known.first is not None:
            return known.first.model_copy(update={"duplicate": True})
        customer_id = known.customer_id
        reached: list[JourneyReached] = []
        event: JourneyEvent | None = None
        if isinstance(message, TrackMessage):
            event = JourneyEvent(
                id=message_id,
                type=message.event,
                properties=message.properties,
                timestamp=message.occurred_at(received_at, batch_sent_at),
            )
            routed = await services.journeys.send_event(customer_id, event)
            reached = [JourneyReached(journey=r.journey, workflow_id=r.workflow_id, action=r.action) for r in routed]
        result = MessageResult(message_id=message_id, type=message.type, customer_id=customer_id, journeys=reached)
        await services.bookkeeping.after_routing(Handled(customer_id, event, result))
        log.debug("%s %s for customer %s reached %d journeys", message.type, message_id, customer_id, len(reached))
        return result

    @app.post("/v1/track", response_model=MessageResult, response_model_by_alias=True)
    async def track(message: TrackMessage, services: Services) -> Response:
        """Send an event to every journey whose map names it (trigger, wait_for, exit_on, goal)."""
        return _answer(await _handle(services, message))

    @app.post("/v1/identify", response_model=MessageResult, response_model_by_alias=True)
    async def identify(message: IdentifyMessage, services: Services) -> Response:
        """Link identities (userId, anonymousId, email, phone, device token) and update the customer's traits."""
        return _answer(await _handle(services, message))

    def _report_context(services: Services) -> ReportContext:
        return ReportContext(services.engine, services.journeys.catalog, services.journeys.temporal)

    app.include_router(report_router(_report_context))

    @app.post("/v1/batch", response_model=BatchResult, response_model_by_alias=True)
    async def batch(message: BatchMessage, services: Services) -> Response:
        """Several track/identify messages, handled in order once all of them are valid."""
        # One customer's messages keep their order (an identify before the track that needs it); different
        # customers' messages go at once, so a batch costs about as long as its busiest customer.
        results: list[MessageResult | None] = [None] * len(message.batch)
        by_customer = _same_person(message.batch)

        async def in_order(indexes: list[int]) -> None:
            for index in indexes:
                results[index] = await _handle(services, message.batch[index], message.sent_at)

        await asyncio.gather(*(in_order(indexes) for indexes in by_customer))
        return _answer(BatchResult(results=[r for r in results if r is not None]))

    async def _codec(request: Request, services: ApiServices, encode: bool) -> Response:
        if services.codec is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no codec key is configured")
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"payloads: {exc}") from exc
        try:
            if encode:
                result = await services.codec.encode(payloads.payloads)
            else:
                result = await services.codec.decode(payloads.payloads)
        except CodecError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")

    @app.post("/codec/encode", dependencies=[Depends(codec_access)])
    async def codec_encode(request: Request, services: Services) -> Response:
        """Temporal's remote codec protocol: ``{"payloads": [...]}`` in, encrypted payloads out."""
        return await _codec(request, services, encode=True)

    @app.post("/codec/decode", dependencies=[Depends(codec_access)])
    async def codec_decode(request: Request, services: Services) -> Response:
        """Temporal's remote codec protocol: the Temporal UI shows decrypted payloads to ops allowed to see them."""
        return await _codec(request, services, encode=False)

    app.include_router(webhook_router(settings))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Added last, so outermost: a request without a key is refused before its body is read, and an oversized
    # body before anything else reads it.
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(RequireApiKey, keys=keys)
    document_api_keys(app)
    return app


def _answer(result: MessageResult | BatchResult) -> Response:
    """The answer as JSON, built once: FastAPI would validate a returned model against ``response_model`` again
    (which still documents it) before serializing it, a cost per request for a value built here."""
    return Response(result.model_dump_json(by_alias=True), media_type="application/json")


def _same_person(messages: list[TrackMessage | IdentifyMessage]) -> list[list[int]]:
    """Indexes of the messages grouped so that two sharing a user id or an anonymous id are in one group."""
    parent = list(range(len(messages)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for index, item in enumerate(messages):
        for identity in (
            f"u:{item.user_id}" if item.user_id else None,
            f"a:{item.anonymous_id}" if item.anonymous_id else None,
        ):
            if identity is None:
                continue
            if identity in first_seen:
                parent[root(index)] = root(first_seen[identity])
            else:
                first_seen[identity] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(messages)):
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())
