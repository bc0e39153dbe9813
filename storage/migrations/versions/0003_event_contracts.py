"""Event contracts (issue 17): quarantined events, and counts of refused events by type.

Two new tables; no existing row changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column[object]:
    # sqlmodel's UTCDateTime: an aware datetime, TIMESTAMP WITH TIME ZONE on PostgreSQL.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _text(name: str, length: int) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "quarantinedevent",
        sa.Column("id", sa.Integer(), nullable=False),
        _text("event_id", 200),
        _text("customer_id", 200),
        _text("type", 128),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        _when("occurred_at"),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("quarantinedevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantinedevent_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantinedevent_type"), ["type"], unique=False)
    op.create_table(
        "refusedeventcount",
        _text("type", 128),
        sa.Column("count", sa.Integer(), nullable=False),
        _text("last_problem", 400),
        _when("last_at"),
        sa.PrimaryKeyConstraint("type"),
    )


def downgrade() -> None:
    op.drop_table("refusedeventcount")
    with op.batch_alter_table("quarantinedevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantinedevent_type"))
        batch_op.drop_index(batch_op.f("ix_quarantinedevent_customer_id"))
    op.drop_table("quarantinedevent")
