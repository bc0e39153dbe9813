"""The event API app: ``/v1/track``, ``/v1/identify``, ``/v1/batch`` (Segment-compatible) and the codec server.

Guarantees a backend relies on:

- Authenticated by API key (HTTP Basic with the key as user name, as Segment's libraries send it, or
  ``Authorization: Bearer <key>``), compared in constant time: every path under ``/v1/`` (``starter.api.auth``).
- A body over ``api_max_body_bytes`` is refused (413) before it is parsed.
- A malformed message gets 422 naming the field path (``batch[2].event``) and nothing is delivered: a batch
  is validated whole before any message in it is.
- A declared event that breaks its declaration (docs/events.md) gets 422 naming the event, the property and
  what was expected, and reaches no journey; in a batch that message alone is refused (its result says why),
  or, under ``on_invalid: quarantine``, it is accepted, stored apart and marked ``quarantined``.
- The same ``messageId`` twice has effect once: the second gets the first answer, marked ``duplicate``.
  (The journey workflows also drop an event id they saw, which covers two copies arriving at once.)
- The answer lists the journeys each event reached.

Bodies are never logged: they carry personal data. ``/v1/track``, ``/v1/identify`` and ``/v1/batch`` in JSON are
answered by :class:`~starter.api.ingestion.IngestionPath`, in front of FastAPI and its middleware, for the CPU it saves
per event.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at run time, and they
# name dependencies local to create_app.

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from activities.links import customer_links
from analytics.api import ReportContext, report_router
from contracts.errors import AccessDenied, InputError, NotConfigured
from journeymap.preferences import load_preferences
from runtime.codec import CodecError
from runtime.settings import Settings
from starter.api import errors
from starter.api.auth import REFUSED, ApiKeys, document_api_keys
from starter.api.broadcasts import broadcasts_router
from starter.api.contract import document_events
from starter.api.ingestion import Ingestion, IngestionPath
from starter.api.middleware import BodyLimit, RequireApiKey
from starter.api.models import (
    BatchMessage,
    BatchResult,
    ErrorResponse,
    IdentifyMessage,
    MessageResult,
    TrackMessage,
)
from starter.api.preferences import PreferencePages, preferences_router
from starter.api.privacy import customers_router
from starter.api.segments import segments_router
from starter.api.services import ApiServices, app_services, get_services, open_services
from starter.api.webhooks import webhook_router
from starter.api.wire import ASGIApp, Receive, Scope, Send

log = logging.getLogger("journeys.api")


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

    app = JourneysApi(
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
            503: {"model": ErrorResponse, "description": "Temporal or the database did not answer: send it again"},
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
            raise AccessDenied(REFUSED)

    async def services_of(request: Request) -> ApiServices:
        return get_services(request)

    Services = Annotated[ApiServices, Depends(services_of)]

    errors.install(app)

    ingestion = Ingestion(lambda: app_services(app))

    # The three ingestion routes document the endpoints (OpenAPI) and answer what IngestionPath passes on: a
    # content type other than application/json (application/*+json, which FastAPI parses as JSON too, or one it
    # refuses with 422). IngestionPath answers the rest with the same Ingestion, past FastAPI's routing.
    @app.post("/v1/track", response_model=MessageResult, response_model_by_alias=True)
    async def track(message: TrackMessage) -> Response:
        """Send an event to every journey whose map names it (trigger, wait_for, exit_on, goal)."""
        return _answer(await ingestion.message(message))

    @app.post("/v1/identify", response_model=MessageResult, response_model_by_alias=True)
    async def identify(message: IdentifyMessage) -> Response:
        """Link identities (userId, anonymousId, email, phone, device token) and update the customer's traits."""
        return _answer(await ingestion.message(message))

    @app.post("/v1/batch", response_model=BatchResult, response_model_by_alias=True)
    async def batch(message: BatchMessage) -> Response:
        """Several track/identify messages, handled in order once all of them are valid."""
        return _answer(await ingestion.batch(message))

    def _report_context(services: Services) -> ReportContext:
        journeys = services.journeys
        return ReportContext(
            services.engine, journeys.catalog, journeys.temporal, settings=settings.report, plan=journeys.plan
        )

    app.include_router(report_router(_report_context))
    app.include_router(segments_router(services_of))
    app.include_router(broadcasts_router(services_of, settings))

    async def _codec(request: Request, services: ApiServices, encode: bool) -> Response:
        if services.codec is None:
            raise NotConfigured("no codec key is configured")
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            raise InputError(f"payloads: {exc}") from exc
        try:
            if encode:
                result = await services.codec.encode(payloads.payloads)
            else:
                result = await services.codec.decode(payloads.payloads)
        except CodecError as exc:
            # Ours, but a configuration error elsewhere: to the UI asking, the payloads it sent cannot be read.
            raise InputError(str(exc)) from exc
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
    catalog = load_preferences(settings.preferences_file)
    app.include_router(customers_router(settings, catalog))
    app.include_router(
        preferences_router(
            PreferencePages(
                catalog,
                customer_links(settings),
                settings.delivery.promotional_requires_opt_in,
                settings.preferences_templates_dir,
            )
        )
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Added last, so outermost: a request without a key is refused before its body is read, and an oversized
    # body before anything else reads it.
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(RequireApiKey, keys=keys)
    document_api_keys(app)
    _document_events(app)
    app.front = IngestionPath(app.behind_front, ingestion, keys, settings.api_max_body_bytes)
    return app


class JourneysApi(FastAPI):
    """The FastAPI app with :class:`~starter.api.ingestion.IngestionPath` in front of everything, Starlette's own
    middleware stack included: a JSON message to the three ingestion routes passes through none of it (its
    error, telemetry and body-limit wrappers: about 6% of the event loop's samples in a py-spy profile,
    docs/benchmarks.md). ``front`` is set once the app is built; until then every request goes to FastAPI."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None:
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def behind_front(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the front passes on: FastAPI as it is."""
        await super().__call__(scope, receive, send)


def _document_events(app: FastAPI) -> None:
    """The declared events in the OpenAPI document, from the plan the app enforces (known once it has started)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            services = getattr(app.state, "services", None)
            document_events(schema, services.journeys.plan if services is not None else None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _answer(result: MessageResult | BatchResult) -> Response:
    """The answer as JSON, built once: FastAPI would validate a returned model against ``response_model`` again
    (which still documents it) before serializing it, a cost per request for a value built here."""
    return Response(result.model_dump_json(by_alias=True), media_type="application/json")
