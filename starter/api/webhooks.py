"""Provider webhooks: delivery receipts and inbound SMS, verified by the provider's own signature scheme.

- ``POST /webhooks/twilio/status``: Twilio message/call status callbacks (``X-Twilio-Signature``).
- ``POST /webhooks/twilio/inbound``: an SMS from a customer; STOP unsubscribes at once, START resubscribes, HELP
  is answered with ``JOURNEYS_SMS_HELP_TEXT`` (``X-Twilio-Signature``).
- ``POST /webhooks/email``: Resend events (Svix headers ``svix-id``, ``svix-timestamp``, ``svix-signature``).

An endpoint whose provider secret is not configured answers 404: nobody can feed receipts into a deployment
that cannot check them. A bad signature gets 401 and changes nothing. The ledger is updated by the delivery
code (:mod:`activities.receipts`); the resulting event goes to the customer's journeys like any other.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape as xml_escape

from fastapi import APIRouter, Request
from fastapi.responses import Response

from activities.receipts import (
    ReceiptEvent,
    apply_inbound_sms,
    apply_receipt,
    parse_resend_event,
    parse_twilio_status,
    sms_keyword,
    verify_twilio_signature,
)
from contracts.errors import AccessDenied, InputError, NotConfigured
from runtime.settings import Settings
from starter.api.identities import merged_customer
from starter.api.services import get_services
from starter.consent_segments import consent_changed

SVIX_TOLERANCE_SECONDS = 300


def verify_svix_signature(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> bool:
    """Svix's scheme (used by Resend): base64 HMAC-SHA256 of ``"<id>.<timestamp>.<body>"``, key from ``whsec_``."""
    msg_id, stamp, given = headers.get("svix-id"), headers.get("svix-timestamp"), headers.get("svix-signature")
    if not msg_id or not stamp or not given or not stamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(stamp)) > SVIX_TOLERANCE_SECONDS:
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    candidates = [part.partition(",")[2] for part in given.split() if part.startswith("v1,")]
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def webhook_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])

    async def _twilio_form(request: Request) -> dict[str, str]:
        token = settings.delivery.twilio_auth_token
        if not token:
            raise NotConfigured("Twilio is not configured (JOURNEYS_TWILIO_AUTH_TOKEN)")
        body = (await request.body()).decode("utf-8", errors="replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        url = (settings.api_public_url or str(request.base_url)).rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not verify_twilio_signature(token, url, form, request.headers.get("x-twilio-signature", "")):
            raise AccessDenied("X-Twilio-Signature does not match")
        return form

    async def _deliver(request: Request, found: ReceiptEvent | None) -> list[str]:
        if found is None:
            return []
        services = get_services(request)
        # The ledger names the customer a journey ran under, which identify may have merged into another since.
        customer_id, absorbed = await asyncio.to_thread(merged_customer, services.engine, found.customer_id)
        routed = await services.journeys.send_event(customer_id, found.event, absorbed=absorbed)
        if found.consent_changed:  # a STOP or a bounce takes the customer out of consent segments now
            await consent_changed(services.engine, services.audiences, services.journeys, [found.customer_id])
        return [r.journey for r in routed]

    @router.post("/twilio/status")
    async def twilio_status(request: Request) -> dict[str, object]:
        """Delivery receipts for SMS and voice: the ledger row is updated and the journey hears about it."""
        form = await _twilio_form(request)
        receipt = parse_twilio_status(form)
        if receipt is None:
            return {"recorded": False, "journeys": []}  # an intermediate status (queued, sent): nothing to do
        engine = get_services(request).engine
        found = await asyncio.to_thread(apply_receipt, engine, receipt)
        return {"recorded": found is not None, "journeys": await _deliver(request, found)}

    @router.post("/twilio/inbound")
    async def twilio_inbound(request: Request) -> Response:
        """An SMS from a customer: STOP revokes SMS consent at once, START restores it, HELP is answered with
        the brand's help text (TwiML ``<Message>``); anything else gets empty TwiML (no auto-reply)."""
        form = await _twilio_form(request)
        engine = get_services(request).engine
        body = form.get("Body", "")
        found = await asyncio.to_thread(
            apply_inbound_sms, engine, form.get("From", ""), body, message_id=form.get("MessageSid")
        )
        await _deliver(request, found)
        if sms_keyword(body) == "help":
            # Answered whoever asks: carriers require HELP to work for any number, customer or not.
            return Response(
                f"<Response><Message>{xml_escape(settings.sms_help_text)}</Message></Response>",
                media_type="application/xml",
            )
        return Response("<Response/>", media_type="application/xml")

    @router.post("/email")
    async def email_events(request: Request) -> dict[str, object]:
        """Resend email events (delivered, bounced, opened, clicked, complained)."""
        secret = settings.email_webhook_secret
        if not secret:
            raise NotConfigured("email receipts are not configured")
        body = await request.body()
        if not verify_svix_signature(secret, {k.lower(): v for k, v in request.headers.items()}, body):
            raise AccessDenied("svix-signature does not match")
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputError(f"body: not JSON ({exc.msg})") from exc
        receipt = parse_resend_event(payload) if isinstance(payload, dict) else None
        if receipt is None:
            return {"recorded": False, "journeys": []}
        engine = get_services(request).engine
        found = await asyncio.to_thread(apply_receipt, engine, receipt)
        return {"recorded": found is not None, "journeys": await _deliver(request, found)}

    return router
