"""The report over HTTP, for the event API to mount: ``app.include_router(report_router(context))``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from temporalio.client import Client

from analytics.collect import refresh_runs
from analytics.event_counts import event_counts
from analytics.html import render_html
from analytics.report import Report, build_report
from journeymap import JourneyMap
from journeymap.events import TrackingPlan
from runtime.settings import ReportSettings


@dataclass(frozen=True)
class ReportContext:
    """What a report reads; the app provides it per request (its database and catalog exist only once it runs)."""

    engine: Engine
    catalog: dict[str, JourneyMap]
    client: Client | None = None
    settings: ReportSettings | None = None
    """The report's conventions; None reads ``JOURNEYS_REPORT_*``."""
    plan: TrackingPlan | None = None
    """The events' declarations: with them the report counts events against the plan."""


def report_router(context: Callable[..., ReportContext]) -> APIRouter:
    """``GET /v1/report`` (JSON) and ``GET /v1/report.html``; ``?refresh=true`` asks the journeys first.

    ``context`` is a FastAPI dependency giving the :class:`ReportContext`. The paths are under ``/v1/``, so the
    event API's key check (``starter.api.auth``) guards them as it guards the events.
    """
    router = APIRouter(tags=["analytics"])

    async def _report(refresh: bool, ctx: ReportContext) -> Report:
        if refresh and ctx.client is not None:
            await refresh_runs(ctx.client, ctx.engine, ctx.catalog)
        report = await asyncio.to_thread(build_report, ctx.engine, ctx.catalog, settings=ctx.settings)
        counts = await asyncio.to_thread(event_counts, ctx.engine, ctx.plan)
        return report.model_copy(update={"event_contract": counts})

    @router.get("/v1/report", response_model=Report)
    async def report_json(refresh: bool = False, ctx: ReportContext = Depends(context)) -> Report:  # noqa: B008
        return await _report(refresh, ctx)

    @router.get("/v1/report.html", response_class=HTMLResponse)
    async def report_html(refresh: bool = False, ctx: ReportContext = Depends(context)) -> HTMLResponse:  # noqa: B008
        return HTMLResponse(render_html(await _report(refresh, ctx)))

    return router
