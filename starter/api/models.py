"""Request and response shapes of the event API, following the Segment spec backends already emit.

Unknown fields (``context``, ``integrations``...) are accepted and ignored, as Segment does, so an existing
Segment library can point at this API unchanged. Times must carry a UTC offset: a naive time is ambiguous.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from activities.preferences import CONSENT_TRAIT, consent_from_traits
from starter.api.identities import TRAIT_IDENTITIES
from storage.tables import IDENTITY_VALUE_MAX


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""Stored text: PostgreSQL text cannot hold NUL, so it is refused here, on every database, as a 422."""
Id = Annotated[Text, Field(min_length=1, max_length=200)]
"""An id is stored as text (see :data:`Text`)."""


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would also read a number, or a numeric string, as seconds since 1970, which
    the OpenAPI document (and Segment's spec) does not promise; such a value is more likely a mistake."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time string with a UTC offset, e.g. 2026-11-25T10:00:00Z")


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates that can be stored (years 1 to 9999 in UTC)") from None


Time = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc)]
"""A point in time, in UTC."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_id: Id | None = Field(default=None, alias="messageId")
    """The message's own id: the same id twice has effect once. Generated when missing (no deduplication)."""
    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    timestamp: Time | None = None
    """When it happened, by the sender's clock."""
    sent_at: Time | None = Field(default=None, alias="sentAt")
    """When the sender sent it, by the same clock: the difference to when it arrived is that clock's skew."""

    @model_validator(mode="after")
    def _someone(self) -> _Message:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId is required")
        return self

    def occurred_at(self, received_at: datetime, batch_sent_at: datetime | None = None) -> datetime:
        """When it happened by our clock, as Segment computes it: ``receivedAt - (sentAt - timestamp)``.

        A device whose clock is a day ahead sends tomorrow's ``timestamp`` and ``sentAt``; the difference
        between them is what counts. Without ``sentAt`` the ``timestamp`` is taken as is (historical imports
        keep their dates), except that nothing happened later than it arrived. Without ``timestamp``: arrival.
        """
        sent_at = self.sent_at or batch_sent_at
        if self.timestamp is None:
            return received_at
        if sent_at is not None:
            try:
                return received_at - max(sent_at - self.timestamp, timedelta(0))
            except OverflowError:  # sent thousands of years after it happened: no clock is that skewed
                pass
        return min(self.timestamp, received_at)


def _storable(value: Any) -> Any:
    """Nothing in it that PostgreSQL's JSON cannot work with: no NaN or Infinity (JSON has none; pydantic reads
    them) and no NUL character in a key or a string (PostgreSQL stores it, then fails every query that reads the
    document). Such a message is the sender's mistake (422), not a failed insert or a broken report (500)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite: JSON has no NaN or Infinity")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain a NUL character (\\u0000)")
    if isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list):
        for item in value:
            _storable(item)
    return value


Data = Annotated[dict[str, Any], AfterValidator(_storable)]


class TrackMessage(_Message):
    """``POST /v1/track``: something the customer did."""

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    properties: Data = Field(default_factory=dict)


class IdentifyMessage(_Message):
    """``POST /v1/identify``: who the customer is; links identities and updates traits."""

    type: Literal["identify"] = "identify"
    traits: Data = Field(default_factory=dict)

    @field_validator("traits")
    @classmethod
    def _identity_traits_fit(cls, traits: dict[str, Any]) -> dict[str, Any]:
        for name in TRAIT_IDENTITIES:
            value = traits.get(name)
            if isinstance(value, str) and (len(value) > IDENTITY_VALUE_MAX or "\x00" in value):
                raise ValueError(f"{name}: at most {IDENTITY_VALUE_MAX} characters, and no NUL character")
        if CONSENT_TRAIT in traits:
            consent_from_traits(traits[CONSENT_TRAIT])  # a malformed one is a 422 naming the entry
        return traits

    def profile_traits(self) -> dict[str, Any]:
        """The traits kept on the profile: all but ``consent``, which becomes consent rows."""
        return {k: v for k, v in self.traits.items() if k != CONSENT_TRAIT}

    def consent_words(self) -> list[tuple[str, str, bool]]:
        return consent_from_traits(self.traits[CONSENT_TRAIT]) if CONSENT_TRAIT in self.traits else []


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

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    batch: list[BatchItem] = Field(min_length=1, max_length=1000)
    sent_at: Time | None = Field(default=None, alias="sentAt")
    """When the batch was sent, for messages without a ``sentAt`` of their own (Segment's libraries put it here)."""


class FieldError(BaseModel):
    path: str
    """Where in the body, e.g. ``batch[2].event``."""
    message: str


class ErrorResponse(BaseModel):
    errors: list[FieldError]


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
    quarantined: bool = False
    """True when the event broke its declaration and its type says ``on_invalid: quarantine``: it was stored
    apart and given to no journey (docs/events.md)."""
    problems: list[str] = Field(default_factory=list)
    """Why it was quarantined, one line per property."""


class RefusedMessage(BaseModel):
    """A message of a batch refused for breaking its event's declaration; the rest of the batch is handled."""

    message_id: str | None = Field(serialization_alias="messageId")
    type: Literal["track"] = "track"
    status: Literal[422] = 422
    errors: list[FieldError]


class BatchResult(BaseModel):
    results: list[MessageResult | RefusedMessage]
    """One per message, in order: what it did, or why it was refused."""
