"""The segment refresh workflow's input and result (issue 15): the Schedule starts it, the CLI and tests read it.

A refresh walks the customers in pages by key; its progress travels in the input across continue-as-new, so a
refresh of millions of customers keeps a short history, and one whose worker was killed resumes at the page it
stopped in. Fields are only ever added with defaults.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

REFRESH_WORKFLOW = "SegmentRefresh"


def refresh_schedule_id(task_queue: str) -> str:
    """The Schedule ``journeys setup`` and ``journeys dev`` create: one per namespace and task queue."""
    return f"journeys-segment-refresh/{task_queue}"


def refresh_workflow_id(task_queue: str) -> str:
    """The id of the workflows the Schedule starts (Temporal appends the scheduled time)."""
    return f"segments/refresh/{task_queue}"


REFRESH_PAGE_TIMEOUT = timedelta(minutes=10)
REFRESH_HEARTBEAT = timedelta(seconds=30)


class SegmentRefreshInput(BaseModel):
    """Refresh ``segments`` (None: those that change with time alone) for every customer, page by page."""

    segments: list[str] | None = None
    page_size: int = Field(default=2000, ge=1, le=100_000)
    pages_per_run: int = Field(default=200, ge=1)
    """Pages one run takes before it continues-as-new (sooner when Temporal suggests it)."""
    now: datetime | None = None
    """The moment every page is evaluated at: set by the first run, kept across continue-as-new."""
    after: str | None = None
    """The last customer id of the last page done (keyset)."""
    pages: int = 0
    entered: int = 0
    exited: int = 0


class SegmentRefreshResult(BaseModel):
    pages: int
    entered: int
    exited: int
