"""One input and one result model per activity, so fields can be added without breaking histories."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ChannelStatus = Literal["sent", "suppressed", "failed", "deferred"]


class SendMessageInput(BaseModel):
    """One message of one journey step to one customer, over one or more channels."""

    idempotency_key: str
    """From the business (journey instance, entry, step, loop pass): the same key is delivered once."""
    journey: str
    step: str
    customer_id: str
    channels: list[str]
    mode: Literal["all", "first"] = "all"
    template: str
    category: Literal["transactional", "promotional"]
    variables: dict[str, Any] = Field(default_factory=dict)
    """What templates may read: ``trigger``, ``event``, ``vars``, ``journey`` (the profile is read at send)."""


class ChannelOutcome(BaseModel):
    channel: str
    status: ChannelStatus
    reason: str | None = None
    provider_message_id: str | None = None
    retry_at: datetime | None = None
    """With ``deferred``: when to try again (quiet hours)."""


class SendMessageResult(BaseModel):
    outcomes: list[ChannelOutcome]

    @property
    def delivered(self) -> list[str]:
        return [o.channel for o in self.outcomes if o.status == "sent"]

    @property
    def retry_at(self) -> datetime | None:
        times = [o.retry_at for o in self.outcomes if o.status == "deferred" and o.retry_at]
        return min(times) if times else None


class LoadProfileInput(BaseModel):
    customer_id: str


class LoadProfileResult(BaseModel):
    profile: dict[str, Any] = Field(default_factory=dict)
    """Traits the journey's conditions may read (``timezone`` and ``locale`` among them)."""


class UpdateProfileInput(BaseModel):
    customer_id: str
    idempotency_key: str
    set: dict[str, Any]


class UpdateProfileResult(BaseModel):
    profile: dict[str, Any]


class CallWebhookInput(BaseModel):
    idempotency_key: str
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, Any] = Field(default_factory=dict)


class CallWebhookResult(BaseModel):
    status_code: int
