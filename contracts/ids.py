"""Names derived from the business, never from Temporal: workflow ids, idempotency keys, split buckets.

Temporal's run ids and activity ids change across continue-as-new and retries; these do not, so a send
retried, replayed or re-run after continue-as-new carries the same key and is delivered once.
"""

from __future__ import annotations

import hashlib

TASK_QUEUE = "journeys"
"""Task queue of the journey workflows (and, until delivery has its own, their activities)."""


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def journey_workflow_id(journey: str, customer_id: str, instance_key: str | None = None) -> str:
    """``journey/<name>/<customer>[/<instance digest>]``: findable by backends and ops.

    The instance key (a prescription number, an order id) is hashed: workflow ids are stored unencrypted and
    shown in the UI, and an instance key may be sensitive.
    """
    base = f"journey/{journey}/{customer_id}"
    return f"{base}/{_digest(instance_key)}" if instance_key else base


def idempotency_key(workflow_id: str, entry_id: str, step_id: str, visit: int) -> str:
    """The key of one side effect: this journey instance, this entry, this step, this pass through a loop."""
    return f"{workflow_id}/{_digest(entry_id, length=12)}/{step_id}/{visit}"


def split_bucket(journey: str, step_id: str, customer_id: str, instance_key: str | None, total: int) -> int:
    """A number in ``[0, total)`` fixed for this customer at this split: replays and re-entries agree."""
    value = int(_digest(journey, step_id, customer_id, instance_key or "", length=15), 16)
    return value % total
