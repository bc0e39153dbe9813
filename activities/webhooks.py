"""``webhook`` steps: call an HTTP endpoint with the step's idempotency key."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.activities import CallWebhookInput, CallWebhookResult


class WebhookActivities:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @activity.defn(name="call_webhook")
    async def call_webhook(self, input: CallWebhookInput) -> CallWebhookResult:
        try:
            response = await self._http.request(
                input.method, input.url, json=input.body, headers={"Idempotency-Key": input.idempotency_key}
            )
        except httpx.HTTPError as exc:
            raise ApplicationError(f"webhook unreachable: {type(exc).__name__}", type="WebhookUnreachable") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ApplicationError(f"webhook answered {response.status_code}", type="WebhookRetryable")
        if response.status_code >= 400:
            raise ApplicationError(
                f"webhook rejected the call ({response.status_code})",
                type="PermanentDeliveryError",
                non_retryable=True,
            )
        return CallWebhookResult(status_code=response.status_code)
