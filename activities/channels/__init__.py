"""Channel providers: one module per provider API, each taking an ``OutgoingMessage`` and giving a receipt."""

from activities.channels.base import (
    ChannelProvider,
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
)
from contracts.errors import DeliveryError

__all__ = [
    "ChannelProvider",
    "DeliveryError",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "ProviderReceipt",
    "RetryableDeliveryError",
]
