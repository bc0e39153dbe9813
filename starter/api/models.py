"""Request and response shapes of the event API, following the Segment spec backends already emit.

Unknown fields (``context``, ``integrations``, ``sentAt``...) are accepted and ignored, as Segment does, so
an existing Segment library can point at this API unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_id: Id | None = Field(default=None, alias="messageId")
    """The message's own id: the same id twice has effect once. Generated when missing (no deduplication)."""
    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    timestamp: datetime | None = None

    @model_validator(mode="after")
    def _someone(self) -> _Message:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId is required")
        return self


class TrackMessage(_Message):
    """``POST /v1/track``: something the customer did."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyMessage(_Message):
    """``POST /v1/identify``: who the customer is; links identities and updates traits."""

    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


def _message_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("track", "identify") else None


BatchItem = Annotated[
    Annotated[TrackMessage, Tag("track")] | Annotated[IdentifyMessage, Tag("identify")],
    Discriminator(
        _message_type,
        custom_error_type="message_type",
        custom_error_message="each batch message needs `type`: 'track' or 'identify'",
    ),
]


class BatchMessage(BaseModel):
    """``POST /v1/batch``: several messages; all are validated before any is delivered."""

    model_config = ConfigDict(extra="ignore")

    batch: list[BatchItem] = Field(min_length=1, max_length=1000)


class JourneyReached(BaseModel):
    journey: str
    workflow_id: str | None = Field(serialization_alias="workflowId")
    action: str
    """``started_or_signalled``, ``signalled``, ``not_in_journey`` or ``missing_instance_key``."""


class MessageResult(BaseModel):
    message_id: str = Field(serialization_alias="messageId")
    type: Literal["track", "identify"]
    customer_id: str = Field(serialization_alias="customerId")
    duplicate: bool = False
    """True when this ``messageId`` was handled before: nothing happened this time."""
    journeys: list[JourneyReached] = Field(default_factory=list)


class BatchResult(BaseModel):
    results: list[MessageResult]


class FieldError(BaseModel):
    path: str
    """Where in the body, e.g. ``batch[2].event``."""
    message: str


class ErrorResponse(BaseModel):
    errors: list[FieldError]
