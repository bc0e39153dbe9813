"""The generic signed webhook channel: JSON to a configured URL, HMAC-signed, with an ``Idempotency-Key``.

Signature (Stripe's scheme): ``X-Journeys-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
The timestamp lets a receiver refuse replays; :func:`verify_signature` is what a receiver runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from activities.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    post,
    raise_for_transient,
)
from runtime.settings import DeliverySettings

SIGNATURE_HEADER = "X-Journeys-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_seconds: int = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is no older than the tolerance."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookProvider:
    name = "webhook"
    accepts_idempotency_key = True

    def __init__(self, http: httpx.AsyncClient, settings: DeliverySettings) -> None:
        self._http = http
        self._settings = settings

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        s = self._settings
        if not s.webhook_url:
            raise PermanentDeliveryError("webhook: JOURNEYS_WEBHOOK_URL is not set")
        payload = {"idempotency_key": message.idempotency_key, "customer_id": message.to, **message.metadata}
        if message.content:
            payload["content"] = json.loads(message.content.get("json", "{}"))
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key}
        if s.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(s.webhook_secret, int(time.time()), body)
        response = await post(self._http, self.name, s.webhook_url, content=body, headers=headers)
        raise_for_transient(response, self.name)
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"{self.name}: rejected ({response.status_code})")
        return ProviderReceipt(self.name, response.headers.get("x-message-id") or message.idempotency_key)
