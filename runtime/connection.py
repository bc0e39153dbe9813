"""Connect to Temporal with the data converter every process must agree on.

Workers, the API, the CLI and the codec server must all use the same converter: a worker without the codec
key could not read the events the API encrypted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from contracts.errors import UnavailableError
from runtime.codec import load_codec
from runtime.settings import Settings

DATA_CONVERTER = pydantic_data_converter
"""Pydantic models in and out of workflows and activities, unencrypted (tests, and no key configured)."""


def codec_key_file(settings: Settings) -> Path | None:
    """The configured key file, else the data folder's ``codec.key`` when there is one and no keys are set."""
    if settings.codec_key_file is not None or settings.codec_keys:
        return settings.codec_key_file
    default = settings.data_dir / "codec.key"
    return default if default.is_file() else None


def codec_key_source(settings: Settings) -> str:
    """Where this process's codec keys come from, for people: ``JOURNEYS_CODEC_KEYS``, a file, or both."""
    file = codec_key_file(settings)
    sources = (["JOURNEYS_CODEC_KEYS"] if settings.codec_keys else []) + ([str(file)] if file else [])
    return " and ".join(sources) or "nowhere"


def data_converter(settings: Settings) -> DataConverter:
    """:data:`DATA_CONVERTER`, with the AES-GCM codec when a key is configured."""
    if not settings.codec_enabled:
        return DATA_CONVERTER
    codec = load_codec(settings.codec_keys, codec_key_file(settings))
    return DATA_CONVERTER if codec is None else dataclasses.replace(DATA_CONVERTER, payload_codec=codec)


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert is not None and settings.temporal_tls_key is not None:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


class TemporalUnreachable(UnavailableError, RuntimeError):
    """No Temporal server answered at the configured address; the message says where and what to do."""


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """A client for the configured cluster (local, self-hosted, or Temporal Cloud with an API key or mTLS).

    Raises :class:`TemporalUnreachable` naming the address when nothing answers there: the SDK's own error is a
    transport dump that does not say which setting to change.
    """
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            api_key=settings.temporal_api_key,
            tls=_tls(settings),
            runtime=runtime,
        )
    except RuntimeError as exc:
        if not str(exc).startswith("Failed client connect"):
            raise
        reason = str(exc).removeprefix("Failed client connect: ")
        if "Connection refused" in reason:
            reason = "connection refused; is it running? (`journeys dev` starts one on this machine)"
        raise TemporalUnreachable(
            f"cannot connect to Temporal at {settings.temporal_address} (JOURNEYS_TEMPORAL_ADDRESS): {reason}"
        ) from exc


_NOT_ANSWERED = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


def temporal_error(exc: RPCError) -> UnavailableError | None:
    """A call Temporal did not answer (down, too slow, rate-limited) as ours; None when it answered no."""
    if exc.status not in _NOT_ANSWERED:
        return None
    return UnavailableError(f"Temporal did not answer ({exc.status.name}): {exc.message}")
