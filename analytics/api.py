"""The report over HTTP, for the event API to mount: ``app.include_router(report_router(...))``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from temporalio.client import Client

from analytics.collect import refresh_runs
from analytics.html import render_html
from analytics.report import Report, build_report
from journeymap import JourneyMap


def report_router(
    engine: Engine, catalog: dict[str, JourneyMap], *, client: Client | None = None, dependencies: Any = None
) -> APIRouter:
    """``GET /v1/report`` (JSON) and ``GET /v1/report.html``; ``?refresh=true`` asks the journeys first.

    ``dependencies`` are the API's own (its API-key check), so the report is behind the same door.
    """
    router = APIRouter(tags=["analytics"], dependencies=dependencies or [])

    async def _report(refresh: bool) -> Report:
        if refresh and client is not None:
            await refresh_runs(client, engine, catalog)
        return await asyncio.to_thread(build_report, engine, catalog)

    @router.get("/v1/report", response_model=Report)
    async def report_json(refresh: bool = False) -> Report:
        return await _report(refresh)

    @router.get("/v1/report.html", response_class=HTMLResponse)
    async def report_html(refresh: bool = False) -> HTMLResponse:
        return HTMLResponse(render_html(await _report(refresh)))

    return router
