"""Channel providers: one module per provider API, each taking an ``OutgoingMessage`` and giving a receipt."""

from activities.channels.base import (
    ChannelProvider,
    DeliveryError,
    OutgoingMessage,
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
)

__all__ = [
    "ChannelProvider",
    "DeliveryError",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "ProviderReceipt",
    "RetryableDeliveryError",
]
