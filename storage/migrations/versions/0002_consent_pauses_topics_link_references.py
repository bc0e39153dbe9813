"""Consent pauses and topics, link references (issue 16).

``consent.until`` lets a row hold for a period (a customer pausing promotions); ``consent.category`` grows to
hold a topic a brand declares (``refill_reminders``); ``linkreference`` is the opaque reference signed links
carry instead of the customer id. Existing consent rows keep their meaning (no ``until``: they hold until a
later word).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "linkreference",
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref"),
        sa.UniqueConstraint("customer_id"),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("until", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column(
            "category", existing_type=sa.String(length=20), type_=sa.String(length=64), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.alter_column(
            "category", existing_type=sa.String(length=64), type_=sa.String(length=20), existing_nullable=False
        )
        batch_op.drop_column("until")
    op.drop_table("linkreference")
