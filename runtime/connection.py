"""Connect to Temporal with the data converter every process must agree on."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from runtime.settings import Settings

DATA_CONVERTER = pydantic_data_converter
"""Pydantic models in and out of workflows and activities. The payload codec (encryption) plugs in here."""


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
    )
