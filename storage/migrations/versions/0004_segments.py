"""Audiences (issue 15): segment membership with entered/exited times, and static lists imported from CSV.

Only new tables: rows of every existing table are untouched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("exited_at IS NULL")


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    # sqlmodel's UTCDateTime: an aware datetime, TIMESTAMP WITH TIME ZONE on PostgreSQL.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "segmentlistmember",
        sa.Column("list", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        _when("added_at"),
        sa.PrimaryKeyConstraint("list", "customer_id"),
    )
    op.create_table(
        "segmentmembership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        _when("entered_at"),
        _when("exited_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("segmentmembership", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segmentmembership_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_segmentmembership_segment"), ["segment"], unique=False)
        batch_op.create_index(
            "ix_segmentmembership_open",
            ["segment", "customer_id"],
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )


def downgrade() -> None:
    op.drop_table("segmentmembership")
    op.drop_table("segmentlistmember")
