"""The API as an ASGI factory for running it under a process manager: ``uvicorn --factory
starter.api.asgi:app --workers N`` (each worker process builds its own app from ``JOURNEYS_*``).

One Python process serves a few hundred events a second on a couple of cores; more processes behind one port
are how the API scales out (docs/benchmarks.md). ``journeys api --workers N`` runs exactly this.
"""

from __future__ import annotations

from fastapi import FastAPI

from runtime.settings import Settings
from starter.api.app import create_app


def app() -> FastAPI:
    return create_app(Settings())
