"""Baseline: the tables as ``SQLModel.metadata.create_all`` made them before migrations existed.

A database made by that code (these tables, no ``alembic_version``) is stamped at this revision by
:func:`storage.schema.upgrade` instead of running it; an empty database runs it.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # sqlmodel's UTCDateTime: an aware datetime, TIMESTAMP WITH TIME ZONE on PostgreSQL.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int | None, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customer",
        _text("id", 200),
        sa.Column("traits", sa.JSON(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        _text("idempotency_key", 400),
        _text("channel", 20),
        _text("delivery_key", 430),
        _text("customer_id", 200),
        _text("journey", 64),
        _text("step", 64),
        _text("template", 64),
        _text("category", 20),
        _text("status", 20),
        _text("reason", None, nullable=True),
        _text("provider", 40),
        _text("provider_message_id", 200, nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("sent_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _text("receipt", 20, nullable=True),
        _when("delivered_at", nullable=True),
        _when("opened_at", nullable=True),
        _when("clicked_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_key"),
    )
    for column in ("customer_id", "idempotency_key", "journey", "provider_message_id", "sent_at"):
        op.create_index(f"ix_delivery_{column}", "delivery", [column])
    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        _text("customer_id", 200),
        _text("channel", 20),
        _text("category", 20),
        sa.Column("granted", sa.Boolean(), nullable=False),
        _text("source", 40),
        _when("at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consent_customer_id", "consent", ["customer_id"])
    op.create_table(
        "customeridentity",
        _text("kind", 20),
        _text("value", 400),
        _text("customer_id", 200),
        _when("linked_at"),
        sa.PrimaryKeyConstraint("kind", "value"),
    )
    op.create_index("ix_customeridentity_customer_id", "customeridentity", ["customer_id"])
    op.create_table(
        "processedmessage",
        _text("message_id", 200),
        _text("customer_id", 200),
        _text("kind", 20),
        sa.Column("response", sa.JSON(), nullable=False),
        _when("received_at"),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        _text("event_id", 200),
        _text("customer_id", 200),
        _text("type", 128),
        sa.Column("properties", sa.JSON(), nullable=False),
        _when("occurred_at"),
        _when("recorded_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    for column in ("customer_id", "occurred_at", "type"):
        op.create_index(f"ix_event_{column}", "event", [column])
    op.create_table(
        "journeyrun",
        _text("workflow_id", 400),
        _text("journey", 64),
        _text("customer_id", 200),
        _text("status", 20),
        _text("step", 64, nullable=True),
        _text("end_reason", None, nullable=True),
        _when("entered_at", nullable=True),
        _when("goal_reached_at", nullable=True),
        sa.Column("split_variants", sa.JSON(), nullable=False),
        _when("refreshed_at"),
        sa.PrimaryKeyConstraint("workflow_id"),
    )
    for column in ("customer_id", "journey"):
        op.create_index(f"ix_journeyrun_{column}", "journeyrun", [column])


def downgrade() -> None:
    for table in ("journeyrun", "event", "processedmessage", "customeridentity", "consent", "delivery", "customer"):
        op.drop_table(table)  # their indexes go with them
