"""Email over an HTTP provider API, in Resend's published format (``POST /emails`` with an ``Idempotency-Key``).

The key makes a repeated request (a retry, or a worker killed after the provider took the message) a no-op at
the provider, so email over this provider is effectively once with no crash window.
"""

from __future__ import annotations

import httpx

from activities.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    post,
    raise_for_transient,
)
from runtime.settings import DeliverySettings


class HttpEmailProvider:
    name = "http_email"
    accepts_idempotency_key = True

    def __init__(self, http: httpx.AsyncClient, settings: DeliverySettings) -> None:
        self._http = http
        self._settings = settings

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        s = self._settings
        body: dict[str, object] = {
            "from": s.email_from,
            "to": [message.to],
            "subject": message.content["subject"],
            "text": message.content["text"],
            "tags": [{"name": k, "value": v} for k, v in message.metadata.items() if k in ("journey", "step")],
        }
        if "html" in message.content:  # left out, the provider sends text/plain only
            body["html"] = message.content["html"]
        if message.headers:  # List-Unsubscribe and List-Unsubscribe-Post on promotional mail
            body["headers"] = dict(message.headers)
        response = await post(
            self._http,
            self.name,
            f"{s.http_email_url.rstrip('/')}/emails",
            json=body,
            headers=_headers(s.http_email_api_key, message.idempotency_key),
        )
        raise_for_transient(response, self.name)
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"{self.name}: rejected ({response.status_code})")
        return ProviderReceipt(self.name, str(response.json()["id"]))


def _headers(api_key: str | None, idempotency_key: str) -> dict[str, str]:
    headers = {"Idempotency-Key": idempotency_key}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers
