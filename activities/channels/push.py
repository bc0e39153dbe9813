"""Push over FCM HTTP v1 (``POST /v1/projects/{project}/messages:send``).

FCM accepts no idempotency key, so a worker that dies after FCM took a push and before the ledger recorded it
sends the push again (the crash window of docs/delivery.md). Two things make such a repeat harmless to the
customer: the key travels in the message's ``data`` so the app can drop a repeat, and every attempt of one send
carries the same collapse id (Android's ``tag`` and ``collapse_key``, APNs' ``apns-collapse-id``, Web Push's
``Topic``), so a repeat replaces the notification still on the screen instead of showing a second one, and a
device that was offline gets only one of them.
"""

from __future__ import annotations

import hashlib

import httpx

from activities.channels.base import (
    AddressGone,
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    post,
    raise_for_transient,
)
from runtime.settings import DeliverySettings


class FcmProvider:
    name = "fcm"
    accepts_idempotency_key = False

    def __init__(self, http: httpx.AsyncClient, settings: DeliverySettings) -> None:
        self._http = http
        self._settings = settings

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        s = self._settings
        collapse = collapse_id(message.idempotency_key)
        body = {
            "message": {
                "token": message.to,
                "notification": {"title": message.content["title"], "body": message.content["body"]},
                # FCM data values must be strings.
                "data": {"idempotency_key": message.idempotency_key, **message.metadata},
                "android": {"collapse_key": collapse, "notification": {"tag": collapse}},
                "apns": {"headers": {"apns-collapse-id": collapse}},
                "webpush": {"headers": {"Topic": collapse}},
            }
        }
        response = await post(
            self._http,
            self.name,
            f"{s.fcm_url.rstrip('/')}/v1/projects/{s.fcm_project_id}/messages:send",
            json=body,
            headers={"Authorization": f"Bearer {s.fcm_access_token}"} if s.fcm_access_token else {},
        )
        raise_for_transient(response, self.name)
        if response.status_code >= 400 and _error_code(response) == "UNREGISTERED":
            # The app was uninstalled, or the token rotated: this token will never work again.
            raise AddressGone(f"{self.name}: device token unregistered ({response.status_code})", address=message.to)
        if response.status_code >= 400:
            # 404 UNREGISTERED (the app is gone from the device), 400 INVALID_ARGUMENT, 403 SENDER_ID_MISMATCH.
            raise PermanentDeliveryError(f"{self.name}: rejected ({response.status_code}, {_status(response)})")
        return ProviderReceipt(self.name, str(response.json()["name"]))


def collapse_id(idempotency_key: str) -> str:
    """The same for every attempt of one send, and short enough for each platform: APNs takes 64 bytes, Web
    Push's ``Topic`` 32 characters of URL-safe base64 (hex is). Derived from the key, it names no customer."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _status(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["status"])
    except (ValueError, KeyError, TypeError):
        return "?"


def _error_code(response: httpx.Response) -> str | None:
    """FCM v1's own code (``UNREGISTERED``, ``INVALID_ARGUMENT``...), in the error's ``FcmError`` detail."""
    try:
        details = response.json()["error"].get("details", [])
        return next((str(d["errorCode"]) for d in details if isinstance(d, dict) and "errorCode" in d), None)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
