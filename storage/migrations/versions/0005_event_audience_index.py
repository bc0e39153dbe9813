"""Audiences (issue 15): an index on event (customer_id, type, occurred_at).

Segment conditions (``performed``) and scores (lead score, customer value) read one customer's events of a type
inside a per-customer subquery. With only the one-column indexes SQLite searched by ``type`` there, reading every
customer's events of that type for each customer; this index makes each look-up one customer's rows. Adds an
index only: no row changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_customer_type_time", ["customer_id", "type", "occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_customer_type_time")
