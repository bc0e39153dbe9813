"""Broadcasts (issue 15): a map sent to a segment's members at a set time, by a fan-out workflow.

The fan-out workflow (``workflows.broadcasts``) keeps only its place and counts; each page of members is one
activity (``start_broadcast_page``) that reads the page by key, drops whoever may not be sent to now, and starts
one journey per member under a business id made of the occurrence and the customer. Everything the workflow
carries across continue-as-new is in :class:`BroadcastInput`, so a worker killed mid fan-out resumes at its page.
Fields are only ever added with defaults.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import activity

BROADCAST_WORKFLOW = "Broadcast"
BROADCAST_PREFIX = "broadcast/"
EVENT_PREFIX = "broadcast"
"""A broadcast starts each member's journey with the event ``broadcast.<broadcast name>``."""
OCCURRENCE_PROPERTY = "broadcast"
"""The trigger's property naming the occurrence; a broadcast's map keys its instances by it (``key: broadcast``)."""

PAGE_TIMEOUT = timedelta(minutes=10)
PAGE_HEARTBEAT = timedelta(seconds=30)

Skip = Literal["consent", "capped"]


def broadcast_event_type(broadcast: str) -> str:
    return f"{EVENT_PREFIX}.{broadcast}"


def broadcast_schedule_id(task_queue: str, broadcast: str) -> str:
    """The Schedule of one broadcast, one per task queue (``journeys setup``/``dev``/``broadcast schedule``)."""
    return f"journeys-broadcast/{task_queue}/{broadcast}"


def occurrence_prefix(broadcast: str) -> str:
    """Every occurrence's workflow id starts so: the Schedule appends ``-<scheduled time>``, a manual start
    ``-<its label>``."""
    return f"{BROADCAST_PREFIX}{broadcast}-"


def occurrence_workflow_id(broadcast: str, label: str) -> str:
    return f"{occurrence_prefix(broadcast)}{label}"


class BroadcastProgress(BaseModel):
    """Where one occurrence is: the query ``progress`` answers it, the memo ``progress`` mirrors it per page."""

    broadcast: str
    occurrence: str = ""
    """The occurrence's workflow id: part of every member's journey id."""
    state: Literal["running", "paused", "done", "cancelled"] = "running"
    members: int | None = None
    """The segment's size when the occurrence began (for the progress bar; members come and go meanwhile)."""
    after: str | None = None
    """The last customer id of the last page done (keyset)."""
    pages: int = 0
    started: int = 0
    """Journeys started (or found already started by an earlier try of the same page)."""
    skipped: dict[str, int] = Field(default_factory=dict)
    """Members not sent to, by reason (``consent``, ``capped``)."""

    @property
    def done(self) -> int:
        return self.started + sum(self.skipped.values())


class BroadcastInput(BaseModel):
    """One occurrence of a broadcast. The Schedule starts it with the definition's settings; the run fills the
    rest on its first run and carries it across continue-as-new."""

    broadcast: str = Field(min_length=1, max_length=64)
    journey: str = Field(min_length=1, max_length=64)
    segment: str = Field(min_length=1, max_length=64)
    category: Literal["transactional", "promotional"] = "promotional"
    channels: list[str] = Field(default_factory=list)
    """Consent on one of these (for ``category``) is needed; none named: consent is left to the send."""
    local_time: str | None = None
    """``HH:MM`` in each customer's own zone: each journey's start is delayed to it."""
    zone: str = "UTC"
    """The zone the occurrence's date is read in (the earliest zone for ``local_time``)."""
    default_timezone: str = "UTC"
    """For a customer whose profile names no ``timezone``."""
    rate_per_second: float = Field(default=50.0, gt=0)
    page_size: int = Field(default=500, ge=1, le=10_000)
    pages_per_run: int = Field(default=100, ge=1)
    local_date: date | None = None
    """The occurrence's date in ``zone``: set by the first run."""
    progress: BroadcastProgress | None = None
    """Set by the first run, carried across continue-as-new."""
    paused: bool = False


class BroadcastResult(BaseModel):
    progress: BroadcastProgress


class BroadcastPageInput(BaseModel):
    """One page of members after ``after`` (by id), at most ``page_size``: start a journey for each allowed."""

    broadcast: str
    occurrence: str
    journey: str
    segment: str
    category: Literal["transactional", "promotional"] = "promotional"
    channels: list[str] = Field(default_factory=list)
    after: str | None = None
    page_size: int = 500
    local_time: str | None = None
    local_date: date | None = None
    default_timezone: str = "UTC"
    now: datetime
    """The workflow's clock: caps are counted over the window before it."""


class BroadcastPageResult(BaseModel):
    upto: str | None
    """The last member id of this page; None when it was the last page."""
    started: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)


class SegmentSizeInput(BaseModel):
    segment: str


@activity.defn(name="start_broadcast_page")
async def start_broadcast_page(input: BroadcastPageInput) -> BroadcastPageResult:
    """Start the journeys of one page of a broadcast's members (``activities.broadcasts``)."""
    raise NotImplementedError("a contract: the worker registers BroadcastActivities.start_broadcast_page")


@activity.defn(name="segment_size")
async def segment_size(input: SegmentSizeInput) -> int:
    """How many customers are in a segment now (``activities.broadcasts``): the progress bar's total."""
    raise NotImplementedError("a contract: the worker registers BroadcastActivities.segment_size")


BROADCAST_STUBS = (start_broadcast_page, segment_size)
"""Every activity the fan-out workflow calls."""
