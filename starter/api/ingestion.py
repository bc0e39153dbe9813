"""What the event API does with a valid message, and the lean path that takes JSON messages to it.

:class:`Ingestion` is the one place a track or identify message becomes database rows and signals; the
FastAPI routes in :mod:`starter.api.app` and :class:`IngestionPath` both call it.

:class:`IngestionPath` answers ``POST /v1/track``, ``/v1/identify`` and ``/v1/batch`` with a JSON body as the
app's outermost layer, in front of FastAPI and Starlette's whole middleware stack (``JourneysApi`` in
:mod:`starter.api.app`): it checks the key and the body's size itself, validates with the same models and
answers with the same bodies and errors as the routes. Skipping FastAPI's routing, dependencies and response
handling saved about 0.25 ms of CPU per event; Starlette's middleware around it (its error, telemetry and
body-limit wrappers) held about 6% of the event loop's samples in a py-spy profile; on a host shared with the
Temporal server that CPU is taken from the server (docs/benchmarks.md). The routes stay: they document
the endpoints in the OpenAPI document, and answer what this path passes on (another content type,
``application/*+json`` among them, which FastAPI parses as JSON too; a browser's request, for CORS;
tests/test_api.py sends its messages both ways).

A ``track`` message is judged against the tracking plan (:mod:`starter.api.contract`) before anything else: a
refused one costs no database look-up and reaches no journey; a quarantined one is recorded apart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from activities.preferences import record_words
from contracts.errors import AccessDenied
from contracts.events import JourneyEvent
from starter.api import claims
from starter.api.auth import REFUSED, ApiKeys
from starter.api.bookkeeping import Handled, Lookup, Refused
from starter.api.contract import EventRefused, Verdict
from starter.api.errors import field_errors, refuse
from starter.api.models import (
    BatchMessage,
    BatchResult,
    ErrorResponse,
    FieldError,
    IdentifyMessage,
    JourneyReached,
    MessageResult,
    RefusedMessage,
    TrackMessage,
)
from starter.api.services import ApiServices
from starter.api.wire import ASGIApp, BodyTooLarge, Receive, Scope, Send, answer_json, read_body
from starter.errors import as_ours

log = logging.getLogger("journeys.api")


class Ingestion:
    """Messages into journeys: de-duplication, the customer, the signals, the record (``starter.api.bookkeeping``).

    ``services`` is called per message, not held: the app's services exist only once its lifespan has begun.
    """

    def __init__(self, services: Callable[[], ApiServices]) -> None:
        self._services = services

    async def message(
        self, message: TrackMessage | IdentifyMessage, batch_sent_at: datetime | None = None
    ) -> MessageResult:
        services = self._services()
        received_at = datetime.now(UTC)
        message_id = message.message_id or uuid.uuid4().hex
        # The contract first: a refused event costs no look-up, and reaches no journey.
        verdict = None
        if isinstance(message, TrackMessage):
            verdict = services.contract.judge(message.event, message.properties)
            if verdict is not None and not verdict.quarantine:
                await services.bookkeeping.refused(Refused(message.event, verdict.problems()))
                raise EventRefused(verdict.violations)
        known = await services.bookkeeping.before_routing(message)
        while known.claimed_elsewhere and message.message_id is not None:
            # Another request (here or in another API process) is routing this messageId: its answer is ours.
            first = await claims.first_answer(services.engine, message.message_id)
            if first is not None:
                return first.model_copy(update={"duplicate": True})
            known = await services.bookkeeping.before_routing(message)  # released or abandoned: claim it now
        if known.first is not None:
            return known.first.model_copy(update={"duplicate": True})
        try:
            return await self._route(services, message, message_id, received_at, verdict, known, batch_sent_at)
        except BaseException:
            if known.claim is not None:  # the backend's retry is routed afresh
                await claims.release(services.engine, message_id, known.claim)
            raise

    async def _route(
        self,
        services: ApiServices,
        message: TrackMessage | IdentifyMessage,
        message_id: str,
        received_at: datetime,
        verdict: Verdict | None,
        known: Lookup,
        batch_sent_at: datetime | None,
    ) -> MessageResult:
        """The message's journeys, then its record: what the claim on its ``messageId`` covers."""
        customer_id = known.customer_id
        words = message.consent_words() if isinstance(message, IdentifyMessage) else []
        if words:
            # Before the answer, so a send right after the backend's identify already reads the new word.
            await asyncio.to_thread(record_words, services.engine, customer_id, words, source="identify")
        reached: list[JourneyReached] = []
        event: JourneyEvent | None = None
        if isinstance(message, TrackMessage):
            event = JourneyEvent(
                id=message_id,
                type=message.event,
                properties=message.properties,
                timestamp=message.occurred_at(received_at, batch_sent_at),
            )
            if verdict is None:  # a quarantined event is stored apart, and given to no journey
                routed = await services.journeys.send_event(customer_id, event, absorbed=known.absorbed)
                reached = [
                    JourneyReached(journey=r.journey, workflow_id=r.workflow_id, action=r.action) for r in routed
                ]
        problems = verdict.problems() if verdict is not None else []
        result = MessageResult(
            message_id=message_id,
            type=message.type,
            customer_id=customer_id,
            journeys=reached,
            quarantined=verdict is not None,
            problems=problems,
        )
        traits = frozenset(message.traits) if isinstance(message, IdentifyMessage) else frozenset()
        changes = await services.bookkeeping.after_routing(
            Handled(customer_id, event, result, quarantine=problems or None, traits=traits, consent=bool(words))
        )
        # Entering or leaving a segment is an event like any other: journeys may enter, wait or exit on it.
        for change in changes:
            await services.journeys.send_event(change.customer_id, change.event(), absorbed=known.absorbed)
        log.debug("%s %s for customer %s reached %d journeys", message.type, message_id, customer_id, len(reached))
        return result

    async def batch(self, message: BatchMessage) -> BatchResult:
        """One customer's messages keep their order (an identify before the track that needs it); different
        customers' messages go at once, so a batch costs about as long as its busiest customer. A message whose
        event breaks its declaration is refused alone: its result says why, the others are handled."""
        results: list[MessageResult | RefusedMessage | None] = [None] * len(message.batch)

        async def in_order(indexes: list[int]) -> None:
            for index in indexes:
                item = message.batch[index]
                try:
                    results[index] = await self.message(item, message.sent_at)
                except EventRefused as refused:
                    errors = EventRefused(refused.violations, path=f"batch[{index}]").field_errors()
                    results[index] = RefusedMessage(message_id=item.message_id, errors=errors)

        await asyncio.gather(*(in_order(indexes) for indexes in same_person(message.batch)))
        return BatchResult(results=[r for r in results if r is not None])


def same_person(messages: Sequence[TrackMessage | IdentifyMessage]) -> list[list[int]]:
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


class IngestionPath:
    """``POST`` of a JSON message to ``/v1/track``, ``/v1/identify`` or ``/v1/batch``, answered without FastAPI.

    The app's outermost layer (:class:`~starter.api.app.JourneysApi` calls it before Starlette's middleware
    stack): it makes the same two checks as :class:`~starter.api.middleware.RequireApiKey` and
    :class:`~starter.api.middleware.BodyLimit` itself, and answers an exception that is not ours (a bug) with
    500 and a log line, as Starlette's ``ServerErrorMiddleware`` would. Anything else goes on to ``app``
    (FastAPI, with those middlewares), and so does a request with an ``Origin`` header: a browser's, which the
    CORS middleware answers when the codec server allows origins.
    """

    def __init__(self, app: ASGIApp, ingestion: Ingestion, keys: ApiKeys, limit: int) -> None:
        self.app = app
        self.keys = keys
        self.limit = limit
        # Per path: how the body is validated, and what handles the valid message.
        self._routes: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], Awaitable[BaseModel]]]] = {
            "/v1/track": (TrackMessage.model_validate_json, ingestion.message),
            "/v1/identify": (IdentifyMessage.model_validate_json, ingestion.message),
            "/v1/batch": (BatchMessage.model_validate_json, ingestion.batch),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        headers = _Headers(scope) if route is not None else None
        if route is None or headers is None or not headers.json or headers.origin:
            await self.app(scope, receive, send)
            return
        if not self.keys.allow(headers.authorization):
            await refuse(send, AccessDenied(REFUSED), [(b"www-authenticate", b"Basic")])
            return
        try:
            if headers.length is not None and headers.length > self.limit:
                raise BodyTooLarge(f"request body is larger than {self.limit} bytes")
            body = await read_body(receive, self.limit)
        except BodyTooLarge as error:
            await refuse(send, error)
            return
        if body is None:
            return  # the client went away: nobody to answer, and nothing was done
        validate, handle = route
        try:
            message = validate(body)
        except ValidationError as error:
            await answer_json(send, 422, field_errors(error.errors()).model_dump_json().encode())
            return
        try:
            result = await handle(message)
        except Exception as exc:
            ours = as_ours(exc)
            if ours is None:
                log.exception("%s failed", scope["path"])  # a bug: never the body, which carries personal data
                await answer_json(send, 500, _INTERNAL)
                return
            await refuse(send, ours)
            return
        await answer_json(send, 200, result.model_dump_json(by_alias=True).encode())


_INTERNAL = ErrorResponse(errors=[FieldError(path="", message="internal error")]).model_dump_json().encode()


class _Headers:
    """What the ingestion path reads of a request's headers, in one pass over them."""

    __slots__ = ("authorization", "json", "length", "origin")

    def __init__(self, scope: Scope) -> None:
        self.authorization = ""
        self.length: int | None = None
        self.origin = False
        content_type = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                self.length = int(value) if value.isdigit() else None
            elif name == b"origin":
                self.origin = True
        self.json = _is_json(content_type)


def _is_json(content_type: bytes) -> bool:
    """No content type, or ``application/json``: what Segment's libraries and our docs send. Other JSON types
    (``application/*+json``) go to FastAPI's routes, which parse them as JSON too."""
    return content_type.split(b";", 1)[0].strip().lower() in (b"", b"application/json")
