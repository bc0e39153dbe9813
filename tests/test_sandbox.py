"""The journey sandbox (``workers.sandbox``): what it shares across workflow runs, and what it keeps per payload."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import ActivitySerializationContext, PayloadCodec, SerializationContext
from temporalio.converter import WithSerializationContext as WithContext
from temporalio.worker import Replayer

import journeymap.expressions
import starter.commands.replay as replay_command
import workflows
from runtime.codec import AESGCMCodec, CodecKey
from runtime.connection import DATA_CONVERTER
from workers.sandbox import ignores_context, journey_sandbox, workflow_bytecode
from workers.worker import workflow_runner
from workflows.journey import JourneyWorkflow

HISTORY = Path(__file__).parent / "histories" / "pharmacy_refill_two_cycles_with_voicemail.json"


def _history() -> WorkflowHistory:
    return WorkflowHistory.from_json("journey-sandbox", HISTORY.read_text())


class RecordingCodec(PayloadCodec, WithContext):
    """Leaves payloads as they are and notes every serialization context the SDK gives it."""

    def __init__(self, seen: list[SerializationContext], context: SerializationContext | None = None) -> None:
        self.seen = seen
        self.context = context

    def with_context(self, context: SerializationContext) -> RecordingCodec:
        self.seen.append(context)
        return RecordingCodec(self.seen, context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


def test_our_converters_take_no_context_so_payloads_skip_the_per_payload_trip_into_the_sandbox() -> None:
    encrypted = dataclasses.replace(DATA_CONVERTER, payload_codec=AESGCMCodec([CodecKey("k1", b"\0" * 32)]))
    for converter in (DATA_CONVERTER, encrypted):
        assert ignores_context(converter)
        assert journey_sandbox(converter).context_free


async def test_a_context_aware_codec_still_gets_each_activitys_context() -> None:
    seen: list[SerializationContext] = []
    converter = dataclasses.replace(DATA_CONVERTER, payload_codec=RecordingCodec(seen))
    assert not ignores_context(converter)
    seen.clear()
    runner = workflow_runner(converter)
    assert not runner.context_free
    replayer = Replayer(workflows=[JourneyWorkflow], workflow_runner=runner, data_converter=converter)
    await replayer.replay_workflow(_history())
    activities = {c.activity_type for c in seen if isinstance(c, ActivitySerializationContext)}
    assert {"load_profile", "send_message"} <= activities


async def test_a_maps_expressions_are_parsed_once_not_again_for_each_history(monkeypatch: pytest.MonkeyPatch) -> None:
    replayer = Replayer(workflows=[JourneyWorkflow], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(_history())
    parsed: list[str] = []
    environment = journeymap.expressions._ENV
    for method in ("parse", "compile_expression"):
        original = getattr(environment, method)

        def counting(source: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            parsed.append(source)
            return _original(source, *args, **kwargs)

        monkeypatch.setattr(environment, method, counting)
    await replayer.replay_workflow(_history())
    assert parsed == []


async def test_a_replaying_process_compiles_the_workflow_module_once_not_for_each_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    original = SourceFileLoader.source_to_code

    def counting(self: SourceFileLoader, data: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(path))
        return original(self, data, path, *args, **kwargs)

    before = sys.pycache_prefix
    with workflow_bytecode([JourneyWorkflow]):  # compiles them, once
        monkeypatch.setattr(SourceFileLoader, "source_to_code", counting)
        replayer = replay_command.replayer(DATA_CONVERTER)
        for _ in range(2):
            await replayer.replay_workflow(_history())
    workflow_module = {Path(sys.modules[JourneyWorkflow.__module__].__file__ or ""), Path(workflows.__file__ or "")}
    assert [path for path in compiled if Path(path) in workflow_module] == []
    assert sys.pycache_prefix == before
