"""The segment refresh: re-evaluates, page by page, the segments whose conditions change with time alone.

"No order in 60 days" becomes true with no event at all, so the event path cannot see it; a Temporal Schedule
(``starter.schedules``, created by ``journeys setup`` and ``journeys dev``) starts this workflow every interval,
skipping a start while the previous refresh still runs. Each page is one activity (``refresh_segments``): the
database computes the page's entries and exits set-based, records them as events and the activity routes them
to journeys. The workflow only keeps the place: the last customer id done, carried across continue-as-new, so a
worker killed mid-refresh resumes at the page it was in, and a retried page announces nothing twice (each
change's event id names its membership row).

Billable actions: one activity per page (2,000 customers by default) and one continue-as-new per 200 pages.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts import activities as activity_contracts
    from contracts.activities import RefreshSegmentsInput
    from contracts.segments import (
        REFRESH_HEARTBEAT,
        REFRESH_PAGE_TIMEOUT,
        REFRESH_WORKFLOW,
        SegmentRefreshInput,
        SegmentRefreshResult,
    )


@workflow.defn(name=REFRESH_WORKFLOW)
class SegmentRefreshWorkflow:
    @workflow.run
    async def run(self, input: SegmentRefreshInput) -> SegmentRefreshResult:
        progress = input.model_copy(update={"now": input.now or workflow.now()})
        assert progress.now is not None
        which = "the time-dependent segments" if progress.segments is None else ", ".join(progress.segments)
        taken = 0
        while True:
            workflow.set_current_details(
                f"refreshing {which}: {progress.pages} pages done, {progress.entered} entered, {progress.exited} left"
            )
            page = await workflow.execute_activity(
                activity_contracts.refresh_segments,
                RefreshSegmentsInput(
                    segments=progress.segments, after=progress.after, page_size=progress.page_size, now=progress.now
                ),
                start_to_close_timeout=REFRESH_PAGE_TIMEOUT,
                heartbeat_timeout=REFRESH_HEARTBEAT,
                retry_policy=RetryPolicy(non_retryable_error_types=["InputError"]),
                summary=f"page {progress.pages + 1}",
            )
            progress.pages += 1
            progress.entered += page.entered
            progress.exited += page.exited
            progress.after = page.upto
            taken += 1
            if page.upto is None:
                return SegmentRefreshResult(pages=progress.pages, entered=progress.entered, exited=progress.exited)
            if taken >= progress.pages_per_run or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(progress)
