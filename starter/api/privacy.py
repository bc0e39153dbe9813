"""The API for backends about a customer's say and data, under ``/v1/`` (so an API key is required):

- ``GET /v1/customers/{id}/consents``: every choice in force (as the next send reads it), a pause, the trail;
- ``POST /v1/customers/{id}/consents``: record a grant or a revocation, with its source;
- ``GET /v1/consents/audit``: the consent audit trail (``?customer_id=``, ``?since=``; ``?format=csv``);
- ``GET /v1/customers/{id}/export``: everything we hold about the customer, as JSON;
- ``DELETE /v1/customers/{id}``: forget the customer (journeys ended, profile and identities removed,
  message contents redacted; ``starter.privacy``).
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from activities.consent import set_consent
from activities.preferences import choices, consent_history, pause_in_force
from activities.privacy import consent_record
from contracts.errors import InputError
from journeymap.fields import Channel
from journeymap.preferences import PreferenceCatalog
from runtime.settings import Settings
from starter import privacy
from starter.api.models import ErrorResponse, Text, Time
from starter.api.services import get_services
from starter.consent_segments import consent_changed


class ConsentChange(BaseModel):
    """One word of the customer's, as a backend passes it on."""

    channel: Channel | Literal["*"] = "*"
    category: str = Field(default="*", pattern=r"^(\*|[a-z][a-z0-9_]{0,47})$")
    """``transactional``, ``promotional``, a topic of ``journeys/brand/preferences.yaml``, or ``*``."""
    granted: bool
    source: Text = Field(default="api", max_length=40)
    """Where the customer said it: ``api`` unless the backend knows better (``signup_form``, ``call_centre``)."""
    until: Time | None = None
    """A revocation that holds only until then (a pause): ISO 8601 text with its offset, as every time here."""


def customers_router(settings: Settings, catalog: PreferenceCatalog) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["customers"])
    opt_in = settings.delivery.promotional_requires_opt_in
    known_scopes = {"*", "transactional", "promotional", *catalog.topics}

    @router.get("/customers/{customer_id}/consents")
    async def consents(request: Request, customer_id: str) -> dict[str, Any]:
        """What the next send to this customer will do for each channel and category or topic, and why."""
        engine = get_services(request).engine
        boxes = await asyncio.to_thread(choices, engine, customer_id, catalog, promotional_requires_opt_in=opt_in)
        pause = await asyncio.to_thread(pause_in_force, engine, customer_id)
        history = await asyncio.to_thread(consent_history, engine, customer_id=customer_id)
        return {
            "customer_id": customer_id,
            "choices": [
                {"channel": b.channel, "scope": b.scope, "allowed": b.allowed, "reason": b.reason} for b in boxes
            ],
            "paused_until": pause.until.isoformat() if pause else None,
            "history": [consent_record(row) for row in history],
        }

    @router.post(
        "/customers/{customer_id}/consents",
        status_code=201,
        responses={400: {"model": ErrorResponse, "description": "a category that is neither ours nor the brand's"}},
    )
    async def change_consent(request: Request, customer_id: str, change: ConsentChange) -> dict[str, Any]:
        """Record a grant or revocation; it holds from the customer's very next send."""
        if change.category not in known_scopes:
            raise InputError(f"category: {change.category!r} is not a category or a topic of this brand")
        services = get_services(request)
        row = await asyncio.to_thread(
            set_consent,
            services.engine,
            customer_id,
            channel=change.channel,
            category=change.category,
            granted=change.granted,
            source=change.source,
            until=change.until,
        )
        # The segments reading consent follow the customer's word now, not at the Schedule's next run.
        await consent_changed(services.engine, services.audiences, services.journeys, [customer_id])
        return consent_record(row)

    @router.get(
        "/consents/audit",
        response_model=None,
        responses={400: {"model": ErrorResponse, "description": "`since` is not a date or time"}},
    )
    async def audit(
        request: Request,
        customer_id: str | None = None,
        since: Annotated[str | None, Query(pattern=ISO_DATE, description="ISO date or time, e.g. 2026-01-31")] = None,
        format: Literal["json", "csv"] = "json",
    ) -> Response | dict[str, Any]:
        """The consent audit trail, oldest first: who said what about which channel and category, when, how."""
        rows = await asyncio.to_thread(
            consent_history, get_services(request).engine, customer_id=customer_id, since=parse_since(since)
        )
        records = [consent_record(row) for row in rows]
        if format == "csv":
            return Response(audit_csv(records), media_type="text/csv")
        return {"consents": records}

    @router.get("/customers/{customer_id}/export")
    async def export(request: Request, customer_id: str) -> dict[str, Any]:
        """Everything held about the customer: profile, identities, consents, events, messages, journeys."""
        services = get_services(request)
        return await privacy.export(services.journeys.temporal, services.engine, services.journeys.catalog, customer_id)

    @router.delete("/customers/{customer_id}")
    async def forget(request: Request, customer_id: str) -> dict[str, Any]:
        """Forget the customer: journeys terminated, profile and identities removed, contents redacted."""
        services = get_services(request)
        return await privacy.forget(services.journeys.temporal, services.engine, services.journeys.catalog, customer_id)

    return router


ISO_DATE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?$"


def parse_since(value: str | None) -> datetime | None:
    """``since`` as an aware time (UTC when it names no offset); an impossible date is an ``InputError``."""
    if value is None:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"since: {value!r} is not an ISO date or time (2026-01-31 or 2026-01-31T09:00)") from exc
    return found if found.tzinfo else found.replace(tzinfo=UTC)


AUDIT_COLUMNS = ("at", "customer_id", "channel", "category", "granted", "source", "until")


def audit_csv(records: list[dict[str, Any]]) -> str:
    """The trail as CSV, for a compliance officer's spreadsheet."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=AUDIT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
