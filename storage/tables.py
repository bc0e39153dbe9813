"""Tables. Personal data lives here, in the database, and not in workflow histories or search attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class Customer(SQLModel, table=True):
    """A customer's profile: the traits journeys read (time zone and locale among them)."""

    id: str = Field(primary_key=True, max_length=200)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=_now)


class Delivery(SQLModel, table=True):
    """The delivery ledger and outbox: one row per (idempotency key, channel), so a send happens once."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True, max_length=400)
    channel: str = Field(max_length=20)
    delivery_key: str = Field(unique=True, max_length=430)
    """``<idempotency key>#<channel>``: the unique constraint that makes a send effectively once."""
    customer_id: str = Field(index=True, max_length=200)
    journey: str = Field(index=True, max_length=64)
    step: str = Field(max_length=64)
    template: str = Field(max_length=64)
    category: str = Field(max_length=20)
    status: str = Field(max_length=20)
    """pending, sent, failed or suppressed."""
    reason: str | None = None
    provider: str = Field(default="outbox", max_length=40)
    provider_message_id: str | None = Field(default=None, max_length=200)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
