"""The embedded default: the message is kept in the ledger row (``journeys outbox`` shows it), nothing leaves."""

from __future__ import annotations

import uuid

from activities.channels.base import OutgoingMessage, ProviderReceipt

_NAMESPACE = uuid.UUID("6f1c1d4e-2f5b-4b0e-9a61-4f0d2b8f7a10")


class OutboxProvider:
    name = "outbox"
    accepts_idempotency_key = True
    """Trivially: the id is derived from the key, and the ledger row is the delivery."""

    async def send(self, message: OutgoingMessage) -> ProviderReceipt:
        return ProviderReceipt("outbox", f"outbox-{uuid.uuid5(_NAMESPACE, message.idempotency_key)}")
