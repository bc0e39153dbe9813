"""Frequency caps across every journey: at most N promotional messages per customer per rolling window.

The count is taken after the send's own ``pending`` row is written, and counts only rows written before it
(lower id). Two journeys sending at the same moment therefore agree on who came first, and the cap holds without
a lock: the later one sees the earlier one's reservation. Transactional messages are exempt and not counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def cap_refusal(session: Session, customer_id: str, *, row_id: int, now: datetime, cap: int, days: int) -> str | None:
    if cap <= 0:
        return None
    since = now - timedelta(days=days)
    count = promotional_count(session, customer_id, before_id=row_id, since=since)
    if count >= cap:
        return f"frequency cap: {count} promotional in {days} days (cap {cap})"
    return None
