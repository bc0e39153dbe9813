"""The broadcast fan-out: one occurrence of a broadcast, starting one journey per member of its segment.

The workflow only keeps the place and the counts (``BroadcastProgress``, carried across continue-as-new): each
page of members is one activity (``start_broadcast_page``) that reads the page by key (customer id after the last
one done), drops the members who may not be sent to now and starts the others' journeys under ids made of the
occurrence and the customer. A retried page, or a page re-run after a worker was killed, starts nobody twice:
the journey id is the same, and Temporal refuses a second start.

The rate limit is kept here, with durable timers: a page of N starts takes at least N / rate seconds, so the
fan-out runs at most ``rate_per_second`` on average whatever the page size, and a paused occurrence costs
nothing while it waits. ``pause``/``resume`` are signals, ``progress`` a query; cancelling the workflow stops it
between pages. The Temporal UI shows the counts in the current details and in the memo ``progress``.

Billable actions: the start, one activity per page, one timer per page when the rate binds, a memo upsert per
page, one continue-as-new per ``pages_per_run`` pages; plus the journeys it starts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts import broadcasts as contracts
    from contracts.broadcasts import (
        BROADCAST_WORKFLOW,
        PAGE_HEARTBEAT,
        PAGE_TIMEOUT,
        BroadcastInput,
        BroadcastPageInput,
        BroadcastProgress,
        BroadcastResult,
        SegmentSizeInput,
    )
    from journeymap.timing import customer_zone  # zoneinfo, outside the sandbox's restrictions

MEMO = "progress"


@workflow.defn(name=BROADCAST_WORKFLOW)
class BroadcastWorkflow:
    def __init__(self) -> None:
        self._paused = False
        self._progress: BroadcastProgress | None = None
        self._shown: dict[str, Any] | None = None

    @workflow.signal
    def pause(self) -> None:
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False

    @workflow.query
    def progress(self) -> BroadcastProgress | None:
        return self._progress

    @workflow.run
    async def run(self, input: BroadcastInput) -> BroadcastResult:
        self._paused = self._paused or input.paused
        progress = input.progress or BroadcastProgress(
            broadcast=input.broadcast, occurrence=workflow.info().workflow_id
        )
        self._progress = progress
        local_date = input.local_date or workflow.now().astimezone(customer_zone(input.zone, "UTC")).date()
        if progress.members is None:
            progress.members = await workflow.execute_activity(
                contracts.segment_size,
                SegmentSizeInput(segment=input.segment),
                start_to_close_timeout=PAGE_TIMEOUT,
                summary=f"size of {input.segment}",
            )
        taken = 0
        try:
            while True:
                self._show(progress, "paused" if self._paused else "running")
                await workflow.wait_condition(lambda: not self._paused)
                self._show(progress, "running")
                began = workflow.now()
                page = await workflow.execute_activity(
                    contracts.start_broadcast_page,
                    BroadcastPageInput(
                        broadcast=input.broadcast,
                        occurrence=progress.occurrence,
                        journey=input.journey,
                        segment=input.segment,
                        category=input.category,
                        channels=input.channels,
                        after=progress.after,
                        page_size=input.page_size,
                        local_time=input.local_time,
                        local_date=local_date,
                        default_timezone=input.default_timezone,
                        now=began,
                    ),
                    start_to_close_timeout=PAGE_TIMEOUT,
                    heartbeat_timeout=PAGE_HEARTBEAT,
                    retry_policy=RetryPolicy(non_retryable_error_types=["InputError"]),
                    summary=f"page {progress.pages + 1}",
                )
                progress.pages += 1
                progress.started += page.started
                for reason, count in page.skipped.items():
                    progress.skipped[reason] = progress.skipped.get(reason, 0) + count
                progress.after = page.upto
                taken += 1
                if page.upto is None:
                    self._show(progress, "done")
                    return BroadcastResult(progress=progress)
                # The rate limit: this page's starts spread over at least started / rate seconds.
                rest = began + timedelta(seconds=page.started / input.rate_per_second) - workflow.now()
                if rest > timedelta(0):
                    await workflow.sleep(rest, summary="rate limit")
                if taken >= input.pages_per_run or workflow.info().is_continue_as_new_suggested():
                    self._show(progress, "running")
                    workflow.continue_as_new(
                        input.model_copy(
                            update={"progress": progress, "local_date": local_date, "paused": self._paused}
                        )
                    )
        except asyncio.CancelledError:
            self._show(progress, "cancelled")
            raise

    def _show(self, progress: BroadcastProgress, state: Literal["running", "paused", "done", "cancelled"]) -> None:
        """Current details and the memo: what the Temporal UI shows of this occurrence (written on change only)."""
        progress.state = state
        snapshot = progress.model_dump(mode="json")
        if snapshot == self._shown:
            return
        self._shown = snapshot
        skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(progress.skipped.items()))
        total = "?" if progress.members is None else str(progress.members)
        workflow.set_current_details(
            f"{state}: {progress.started} journeys started, {sum(progress.skipped.values())} skipped"
            f"{f' ({skipped})' if skipped else ''}; {progress.done} of about {total} members, {progress.pages} pages"
        )
        workflow.upsert_memo({MEMO: snapshot})
