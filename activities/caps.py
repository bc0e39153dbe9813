"""Frequency caps across every journey: at most N promotional messages per customer per rolling window.

The count is taken after the send's own ``pending`` row is written, and counts only rows written before it
(lower id): a send's place in the customer's queue is its row id. ``activities.ledger`` takes it inside the
transaction that writes the row, with this customer's promotional sends queued for the while (SQLite's one
write lock, PostgreSQL's advisory lock), so two journeys sending at the same moment agree on who came first and
the later one sees the earlier one's reservation. Transactional messages are exempt and not counted; the
reason's wording is :func:`activities.decision.cap_refusal`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.tables import Delivery


def promotional_count(session: Session, customer_id: str, *, before_id: int, since: datetime) -> int:
    """Promotional messages sent or about to be sent to ``customer_id`` since ``since``, ahead of ``before_id``."""
    stamp = func.coalesce(Delivery.sent_at, Delivery.created_at)
    query = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.customer_id == customer_id)
        .where(Delivery.category == "promotional")
        .where(col(Delivery.status).in_(("pending", "sent")))
        .where(col(Delivery.id) < before_id)
        .where(stamp >= since)
    )
    return int(session.exec(query).one())
