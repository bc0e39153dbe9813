"""Email over SMTP (any mail server; a local one for development): multipart/alternative, text and HTML, or
a single text/plain part when the template gives no HTML.

SMTP has no idempotency key. The Message-ID is derived from the key, so a repeat carries the same id and a
mailbox that deduplicates on it (many do) shows one message; the delivery ledger covers every other case but
the crash window described in docs/delivery.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from email.message import EmailMessage

from activities.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
)
from runtime.settings import DeliverySettings


def message_id_for(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@journeys>"


class SmtpProvider:
    name = "smtp"
    accepts_idempotency_key = False

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings

    def build(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._settings.email_from
        email["To"] = message.to
        email["Subject"] = message.content["subject"]
        email["Message-ID"] = message_id_for(message.idempotency_key)
        email["X-Journeys-Idempotency-Key"] = message.idempotency_key
        for name, value in message.headers.items():
            email[name] = value
        email.set_content(message.content["text"])
        if "html" in message.content:
            email.add_alternative(message.content["html"], subtype="html")
        return email

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        email = self.build(message)
        # smtplib blocks: run it in a thread so the worker's event loop keeps serving workflows.
        await asyncio.to_thread(self._send_blocking, email)
        return ProviderReceipt(self.name, str(email["Message-ID"]))

    def _send_blocking(self, email: EmailMessage) -> None:
        s = self._settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if any(400 <= code < 500 for code in codes):
                raise RetryableDeliveryError(f"smtp: recipient deferred ({codes[0]})") from exc
            raise PermanentDeliveryError(f"smtp: recipient refused ({codes[0] if codes else '?'})") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(f"smtp: rejected ({exc.smtp_code})") from exc
            raise RetryableDeliveryError(f"smtp: answered {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
            raise RetryableDeliveryError(f"smtp: {type(exc).__name__}") from exc
