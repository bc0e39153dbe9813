"""What every channel provider shares: the message handed to it, its answer, and the error tree.

    DeliveryError                 (contracts.errors: a family of the one tree)
     +-- RetryableDeliveryError   timeouts, connection errors, 429, 5xx: try again (after Retry-After)
     +-- PermanentDeliveryError   invalid number, hard bounce, unsubscribed at the provider: never retry
          +-- AddressGone         the address itself is dead (a push token the provider reports unregistered):
                                  the delivery activity drops it from the profile

Providers translate their library's and HTTP errors into these at the boundary; the delivery activity turns
them into ledger states and Temporal errors. The class names reach Temporal as error types (the journey's retry
policy lists ``PermanentDeliveryError``): never rename them.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx

from contracts.errors import DeliveryError


class RetryableDeliveryError(DeliveryError):
    """Worth another try; ``retry_after`` is what the provider asked for (seconds), if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The provider refused this message for good; trying again cannot help."""


class AddressGone(PermanentDeliveryError):
    """The provider says the address no longer exists (FCM ``UNREGISTERED``): keep no more sends going to it."""

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one channel, addressed.

    ``idempotency_key`` is ``<business key>#<channel>``: the same for every attempt of this send, so a provider
    that accepts a key drops a repeat.
    """

    idempotency_key: str
    channel: str
    to: str
    """Email address, E.164 phone number, device token, or (webhook) the customer id."""
    content: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    """Journey, step, template, category, customer id: no personal data."""
    headers: dict[str, str] = field(default_factory=dict)
    """Email headers the message must carry (``List-Unsubscribe``, ``List-Unsubscribe-Post`` on promotional
    email); every email provider passes them on."""


@dataclass(frozen=True)
class ProviderReceipt:
    provider: str
    message_id: str


class ChannelProvider(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> ProviderReceipt: ...


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header as seconds (both forms: delta-seconds and an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def raise_for_transient(response: httpx.Response, provider: str) -> None:
    """Raise ``RetryableDeliveryError`` for answers worth retrying.

    401 is among them: bad or expired credentials are an operator's to fix, and the message should go once
    they are, not be written off as failed. 409 is a provider still working on the same idempotency key.
    """
    status = response.status_code
    if status in (401, 408, 409, 425, 429) or status >= 500:
        raise RetryableDeliveryError(f"{provider} answered {status}", retry_after=retry_after_seconds(response))


async def post(http: httpx.AsyncClient, provider: str, url: str, **kwargs: object) -> httpx.Response:
    """POST with network errors translated: a timeout or refused connection is retryable."""
    try:
        return await http.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"{provider}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise RetryableDeliveryError(f"{provider}: {type(exc).__name__}") from exc
