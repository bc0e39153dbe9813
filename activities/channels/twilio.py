"""SMS and voice over Twilio's REST API (or a compatible one): ``Messages.json`` and ``Calls.json``.

Voice speaks the message as an automated voicemail: the call carries inline TwiML ``<Say>``. Twilio's
Messages and Calls resources accept no idempotency key, so the crash window of docs/delivery.md applies.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import httpx

from activities.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    post,
    raise_for_transient,
)
from runtime.settings import DeliverySettings

#: Twilio error codes that mean this number will never take this message (invalid, unsubscribed, blocked,
#: not a mobile, landline for SMS, ...). Other 4xx answers are permanent too; these are named for the docs.
PERMANENT_CODES = {21211, 21214, 21408, 21610, 21612, 21614, 30003, 30005, 30006}


def twiml_say(text: str, *, voice: str = "alice", language: str | None = None) -> str:
    lang = f' language="{escape(language)}"' if language else ""
    return f'<Response><Say voice="{voice}"{lang}>{escape(text)}</Say></Response>'


class TwilioProvider:
    name = "twilio"
    accepts_idempotency_key = False

    def __init__(self, http: httpx.AsyncClient, settings: DeliverySettings) -> None:
        self._http = http
        self._settings = settings

    def _url(self, resource: str) -> str:
        s = self._settings
        return f"{s.twilio_url.rstrip('/')}/2010-04-01/Accounts/{s.twilio_account_sid}/{resource}.json"

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        s = self._settings
        form: dict[str, str] = {"To": message.to}
        if message.channel == "voice":
            resource = "Calls"
            form["From"] = s.twilio_from or ""
            form["Twiml"] = twiml_say(message.content["text"], language=message.metadata.get("locale"))
        else:
            resource = "Messages"
            if s.twilio_messaging_service_sid:
                form["MessagingServiceSid"] = s.twilio_messaging_service_sid
            else:
                form["From"] = s.twilio_from or ""
            form["Body"] = message.content["text"]
        response = await post(
            self._http,
            self.name,
            self._url(resource),
            data=form,
            auth=(s.twilio_account_sid or "", s.twilio_auth_token or ""),
        )
        raise_for_transient(response, self.name)
        if response.status_code >= 400:
            code = _error_code(response)
            raise PermanentDeliveryError(f"{self.name}: rejected ({response.status_code}, code {code})")
        return ProviderReceipt(self.name, str(response.json()["sid"]))


def _error_code(response: httpx.Response) -> Any:
    try:
        return response.json().get("code")
    except ValueError:
        return None
