"""Provider delivery receipts and inbound SMS: the ledger is updated, and the journey hears about it.

The HTTP endpoints live with the event API; they verify the provider's signature (:func:`verify_twilio_signature`
for Twilio; the webhook channel's own scheme for others), parse the body with one of the ``parse_*`` functions
and call :func:`apply_receipt` or :func:`apply_inbound_sms`, then send the returned event to the customer's
journeys (``JourneyClient.send_event``). A receipt becomes an event typed ``<channel>_<status>``
(``email_opened``, ``sms_delivered``, ``email_bounced``...), so a map may ``wait_for: email_opened``.

The event id is derived from the provider's message id and the status, so a provider retrying its webhook
(they all do) reaches the journey once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from activities.consent import set_consent
from contracts.events import JourneyEvent
from storage.tables import Customer, CustomerIdentity, Delivery

ReceiptStatus = Literal["delivered", "failed", "bounced", "opened", "clicked", "complained"]
RECEIPT_STATUSES: tuple[str, ...] = ("delivered", "failed", "bounced", "opened", "clicked", "complained")

#: SMS keywords carriers and CTIA guidelines require honouring at once (compared without spaces or punctuation,
#: so "Stop." and "opt out" count).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def sms_keyword(body: str) -> Literal["stop", "start", "help"] | None:
    """The keyword an inbound SMS is, if it is one: the whole message, case, spaces and punctuation aside."""
    word = "".join(c for c in body.upper() if c.isalnum())
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


@dataclass(frozen=True)
class Receipt:
    """What a provider reported about one message."""

    provider_message_id: str
    status: ReceiptStatus
    at: datetime | None = None
    detail: str | None = None
    """Provider's error code or bounce type; no personal data."""


@dataclass(frozen=True)
class ReceiptEvent:
    """The event for the journeys of ``customer_id``."""

    customer_id: str
    event: JourneyEvent

    @property
    def consent_changed(self) -> bool:
        """Whether applying it wrote a consent row (an email bounce or complaint, an SMS STOP or START)."""
        return self.event.type in CONSENT_CHANGING


CONSENT_CHANGING = frozenset({"email_bounced", "email_complained", "sms_stop", "sms_start"})
"""The receipt events whose receipt revoked or granted consent: the segments reading consent are re-checked."""


def apply_receipt(engine: Engine, receipt: Receipt) -> ReceiptEvent | None:
    """Record ``receipt`` on its ledger row; the event for the customer's journeys, or None if unknown.

    ``failed`` and ``bounced`` turn a ``sent`` row ``failed`` (the message never arrived); a hard bounce also
    revokes email for the customer, so no journey keeps writing to a dead address.
    """
    at = receipt.at or datetime.now(UTC)
    with Session(engine) as session:
        row = session.exec(select(Delivery).where(Delivery.provider_message_id == receipt.provider_message_id)).first()
        if row is None:
            return None
        row.receipt = receipt.status
        if receipt.status == "delivered":
            row.delivered_at = row.delivered_at or at
        elif receipt.status == "opened":
            row.opened_at = row.opened_at or at
        elif receipt.status == "clicked":
            row.clicked_at = row.clicked_at or at
            row.opened_at = row.opened_at or at
        elif receipt.status in ("failed", "bounced"):
            row.status = "failed"
            row.reason = f"{receipt.status} after sending" + (f" ({receipt.detail})" if receipt.detail else "")
        row.updated_at = datetime.now(UTC)
        session.add(row)
        session.commit()
        customer_id, channel = row.customer_id, row.channel
        properties = {"journey": row.journey, "step": row.step, "template": row.template, "channel": channel}
    if receipt.status in ("bounced", "complained") and channel == "email":
        set_consent(engine, customer_id, channel="email", granted=False, source=receipt.status, at=at)
    digest = hashlib.sha256(f"{receipt.provider_message_id}|{receipt.status}".encode()).hexdigest()[:32]
    event = JourneyEvent(
        id=f"receipt-{digest}", type=f"{channel}_{receipt.status}", properties=properties, timestamp=at
    )
    return ReceiptEvent(customer_id, event)


def apply_inbound_sms(
    engine: Engine, from_number: str, body: str, *, message_id: str | None = None
) -> ReceiptEvent | None:
    """An SMS from a customer: STOP (and its synonyms) revokes SMS at once, START grants it again; HELP changes
    nothing (the webhook answers it with the brand's help text, :func:`sms_keyword`).

    Returns an ``sms_stop`` / ``sms_start`` / ``sms_help`` / ``sms_received`` event for the customer, or None
    when the number belongs to no customer. The message text is not put in the event (it is the customer's
    words). Pass the provider's ``message_id`` (Twilio's ``MessageSid``) so a redelivered webhook is one event.
    """
    customer_id = customer_by_phone(engine, from_number)
    if customer_id is None:
        return None
    keyword = sms_keyword(body)
    if keyword == "stop":
        set_consent(engine, customer_id, channel="sms", granted=False, source="sms_stop")
    elif keyword == "start":
        set_consent(engine, customer_id, channel="sms", granted=True, source="sms_start")
    kind = f"sms_{keyword}" if keyword else "sms_received"
    now = datetime.now(UTC)
    return ReceiptEvent(
        customer_id,
        JourneyEvent(id=f"inbound-{message_id or now.timestamp()}", type=kind, timestamp=now),
    )


def customer_by_phone(engine: Engine, phone: str) -> str | None:
    """The customer with the identity ``phone`` (as the event API links it), else whose profile has it
    (compared digits only, so ``+1 555-0100`` matches)."""
    wanted = _digits(phone)
    with Session(engine) as session:
        linked = session.exec(
            select(CustomerIdentity)
            .where(CustomerIdentity.kind == "phone")
            .where(col(CustomerIdentity.value).in_({phone.strip(), f"+{wanted}"}))
        ).first()
        if linked is not None:
            return linked.customer_id
        # Profiles written directly (imports, tests) have no identity rows: a scan, fine for an inbound SMS.
        for customer in session.exec(select(Customer)):
            if wanted and _digits(str(customer.traits.get("phone", ""))) == wanted:
                return customer.id
    return None


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


# --- provider formats ---------------------------------------------------------------------------------------

_TWILIO_STATUS: dict[str, ReceiptStatus] = {"delivered": "delivered", "failed": "failed", "undelivered": "failed"}
_RESEND_TYPES: dict[str, ReceiptStatus] = {
    "email.delivered": "delivered",
    "email.bounced": "bounced",
    "email.opened": "opened",
    "email.clicked": "clicked",
    "email.complained": "complained",
    "email.failed": "failed",
}


def parse_twilio_status(form: Mapping[str, str]) -> Receipt | None:
    """A Twilio status callback (``MessageSid``/``MessageStatus`` or ``CallSid``/``CallStatus``)."""
    sid = form.get("MessageSid") or form.get("CallSid")
    raw = form.get("MessageStatus") or form.get("CallStatus") or ""
    status = _TWILIO_STATUS.get(raw) or ("delivered" if raw == "completed" else None)
    if not sid or status is None:
        return None
    return Receipt(sid, status, detail=form.get("ErrorCode"))


def parse_resend_event(payload: Mapping[str, Any]) -> Receipt | None:
    """A Resend webhook event (``{"type": "email.opened", "data": {"email_id": ...}}``)."""
    status = _RESEND_TYPES.get(str(payload.get("type")))
    data = payload.get("data")
    if status is None or not isinstance(data, Mapping) or not data.get("email_id"):
        return None
    return Receipt(str(data["email_id"]), status)


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by the sorted POST params."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    expected = base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    return hmac.compare_digest(expected, signature)
