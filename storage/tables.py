"""Tables. Personal data lives here, in the database, and not in workflow histories or search attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, text
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
    provider_message_id: str | None = Field(default=None, index=True, max_length=200)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    # Delivery (issue 3): when it went out, how often it was tried, and what the provider reported since.
    sent_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    """Provider calls made for this row; more than one means a retry or a worker crash in the send."""
    receipt: str | None = Field(default=None, max_length=20)
    """The latest provider receipt: delivered, failed, bounced, opened, clicked, complained."""
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None


class Consent(SQLModel, table=True):
    """A customer's word on a channel and/or a category (issue 3); the latest row for a scope wins.

    ``channel`` or ``category`` may be ``*`` (every one): an SMS STOP revokes ``sms``/``*``, an email
    unsubscribe link revokes ``email``/``promotional``. Read at every send, so a revocation holds at once.
    """

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True, max_length=200)
    channel: str = Field(default="*", max_length=20)
    category: str = Field(default="*", max_length=64)
    """``transactional``, ``promotional``, a topic the brand declares (``journeys/brand/preferences.yaml``) or ``*``."""
    granted: bool
    source: str = Field(default="api", max_length=40)
    """Where it came from (``sms_stop``, ``unsubscribe_link``, ``api``, ``bounce``): the audit trail."""
    at: datetime = Field(default_factory=_now)
    until: datetime | None = None
    """A pause (issue 16): the row holds until then, and the customer's earlier word applies again after."""


class LinkReference(SQLModel, table=True):
    """The opaque reference signed links carry instead of the customer id (which may be an email address).

    One per customer, random; erasure deletes it, so every link in old mail stops working.
    """

    ref: str = Field(primary_key=True, max_length=40)
    customer_id: str = Field(unique=True, max_length=200)
    created_at: datetime = Field(default_factory=_now)


IDENTITY_VALUE_MAX = 400
"""The longest identity value (an email, a device token) the table holds; PostgreSQL enforces it."""


class CustomerIdentity(SQLModel, table=True):
    """One identity (user id, anonymous id, email, phone, device token) linked to one customer.

    ``identify`` links them; an event under any linked identity reaches that customer's journeys.
    """

    kind: str = Field(primary_key=True, max_length=20)
    """``user_id``, ``anonymous_id``, ``email``, ``phone``, ``device_token``, or ``customer_id``: a customer id
    identify merged into this customer, whose journeys still run under it (``starter.api.identities``)."""
    value: str = Field(primary_key=True, max_length=IDENTITY_VALUE_MAX)
    customer_id: str = Field(index=True, max_length=200)
    linked_at: datetime = Field(default_factory=_now)


class ProcessedMessage(SQLModel, table=True):
    """A ``messageId`` the event API has handled: the same message again gets the first answer, no effect."""

    message_id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    """``track`` or ``identify``."""
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(default_factory=_now)


class Event(SQLModel, table=True):
    """Analytics (issue 5): every event a backend sent, once per event id, at the time it happened.

    The report's customer value (purchases, revenue, time between purchases) and its goal conversions are
    computed from these rows, so they hold whatever the journeys did with the events.
    """

    __table_args__ = (
        # One customer's events of a type, by time: what segment conditions (``performed``) and scores (lead
        # score, customer value) read for each customer. With only the one-column indexes, SQLite searches by
        # ``type`` (every customer's orders) inside the per-customer subquery: quadratic in the audience.
        Index("ix_event_customer_type_time", "customer_id", "type", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=200)
    customer_id: str = Field(index=True, max_length=200)
    type: str = Field(index=True, max_length=128)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(default_factory=_now, index=True)
    recorded_at: datetime = Field(default_factory=_now)


class JourneyRun(SQLModel, table=True):
    """Analytics (issue 5): the latest known state of one journey workflow, refreshed by ``journeys report``.

    Copied from the workflow's ``state`` query, so the report can count entries, steps, exits and splits
    without a visibility store (the time-skipping server has none) and without asking Temporal per page view.
    """

    workflow_id: str = Field(primary_key=True, max_length=400)
    journey: str = Field(index=True, max_length=64)
    customer_id: str = Field(index=True, max_length=200)
    status: str = Field(max_length=20)
    step: str | None = Field(default=None, max_length=64)
    end_reason: str | None = None
    entered_at: datetime | None = None
    goal_reached_at: datetime | None = None
    split_variants: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    refreshed_at: datetime = Field(default_factory=_now)


class QuarantinedEvent(SQLModel, table=True):
    """Issue 17: an event that broke its declaration, accepted under ``on_invalid: quarantine``.

    Kept apart from ``event``: no journey was given it and the report does not count it as customer activity.
    An operator reads it (``journeys events --stats``), fixes the sender, and replays it if it matters.
    """

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=200)
    customer_id: str = Field(index=True, max_length=200)
    type: str = Field(index=True, max_length=128)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    problems: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """What broke the declaration, one line each (``picked_up_at: required, missing``), without the values."""
    occurred_at: datetime = Field(default_factory=_now)
    received_at: datetime = Field(default_factory=_now)


class RefusedEventCount(SQLModel, table=True):
    """Issue 17: how many events of a type the API refused for breaking their declaration (nothing else of a
    refused event is kept: it was answered 422, and its sender keeps it). One row per type, added to per batch."""

    type: str = Field(primary_key=True, max_length=128)
    count: int = 0
    last_problem: str = Field(default="", max_length=400)
    """The latest reason, without the value (``picked_up_at: required, missing``)."""
    last_at: datetime = Field(default_factory=_now)


class SegmentMembership(SQLModel, table=True):
    """Audiences (issue 15): one row per stay of a customer in a segment, so history is queryable.

    A customer is a current member while their row's ``exited_at`` is empty; leaving closes the row, coming back
    opens a new one. Computed by ``audiences.membership`` in set-based SQL, never by hand.
    """

    __table_args__ = (
        # At most one open stay per customer and segment: a second refresh racing the first cannot open two.
        Index(
            "ix_segmentmembership_open",
            "segment",
            "customer_id",
            unique=True,
            sqlite_where=text("exited_at IS NULL"),
            postgresql_where=text("exited_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment: str = Field(index=True, max_length=64)
    customer_id: str = Field(index=True, max_length=200)
    entered_at: datetime
    exited_at: datetime | None = None


class SegmentListMember(SQLModel, table=True):
    """Audiences (issue 15): a static list imported from CSV (``journeys segments import NAME FILE.csv``)."""

    list: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=200)
    added_at: datetime = Field(default_factory=_now)
