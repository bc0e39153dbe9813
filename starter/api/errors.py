"""The event API's status for each error family, and its body: the one place both are decided.

Routes and services raise ``contracts.errors``; :func:`install` registers the handlers that answer them on the
FastAPI app, and the plain ASGI parts in front of it (``starter.api.middleware``, the lean ingestion path) answer
through :func:`refuse`, so a refused request gets the same status and body whichever part refused it. Every body
is an :class:`~starter.api.models.ErrorResponse`: ``{"errors": [{"path": ..., "message": ...}]}``.

A family without an entry takes its nearest ancestor's status; a new family needs a line here only if its status
differs. An exception that is not ours is a bug: Starlette answers it 500 and logs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError

from audiences.scoring import UnknownCustomer
from contracts.errors import (
    AccessDenied,
    InputError,
    JourneysError,
    NotConfigured,
    StorageError,
    UnavailableError,
)
from starter.api.contract import EventRefused
from starter.api.models import ErrorResponse, FieldError
from starter.api.wire import BodyTooLarge, Send, answer_json
from starter.errors import as_ours

STATUSES: dict[type[JourneysError], int] = {
    JourneysError: 500,
    InputError: 400,
    AccessDenied: 401,
    NotConfigured: 404,  # nobody may use a part that is not set up, and it need not say more than "not here"
    UnknownCustomer: 404,  # scores of a customer with no profile and no event
    BodyTooLarge: 413,
    EventRefused: 422,  # a well-formed message whose event breaks its declaration: as a malformed one
    UnavailableError: 503,
    StorageError: 503,
}
"""Error family -> HTTP status. A malformed message (pydantic's errors) is 422, with each field's path."""


def status_of(error: JourneysError) -> int:
    """The status of the most specific family of ``error`` in :data:`STATUSES`."""
    return next(STATUSES[cls] for cls in type(error).__mro__ if cls in STATUSES)


def error_response(error: JourneysError) -> ErrorResponse:
    if isinstance(error, EventRefused):
        return ErrorResponse(errors=error.field_errors())
    return ErrorResponse(errors=[FieldError(path="", message=str(error))])


async def refuse(send: Send, error: JourneysError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``error`` on the plain ASGI path, as :func:`install`'s handlers answer it on FastAPI's."""
    await answer_json(send, status_of(error), error_response(error).model_dump_json().encode(), headers)


def field_errors(errors: Iterable[Any]) -> ErrorResponse:
    """pydantic's (or FastAPI's) validation errors as the API's 422 body, each with its field path."""
    return ErrorResponse(
        errors=[FieldError(path=field_path(tuple(e.get("loc", ()))), message=str(e.get("msg"))) for e in errors]
    )


def field_path(loc: tuple[int | str, ...]) -> str:
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


def install(app: FastAPI) -> None:
    """Register the handlers: our errors by family, the database's translated, FastAPI's own in the same body."""

    async def _ours(_request: Request, exc: Exception) -> JSONResponse:
        error = as_ours(exc)
        if error is None:
            raise exc  # a Temporal refusal we cannot read: a bug, for Starlette's 500
        return JSONResponse(error_response(error).model_dump(), status_code=status_of(error))

    app.add_exception_handler(JourneysError, _ours)
    app.add_exception_handler(OperationalError, _ours)
    app.add_exception_handler(RPCError, _ours)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(field_errors(exc.errors()).model_dump(), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        """FastAPI's own (a security scheme's refusal); our routes raise ours."""
        body = ErrorResponse(errors=[FieldError(path="", message=str(exc.detail))]).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
