"""Replay: today's workflow code must reproduce every recorded history, and an incompatible change is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from runtime.connection import DATA_CONVERTER
from tests.histories.incompatible import JourneyWithoutProfileLoad
from workers.worker import workflow_runner
from workflows.journey import JourneyWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"journey-{path.stem}", path.read_text())


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    assert "pharmacy_refill_two_cycles_with_voicemail" in names
    assert any(name.endswith("_run1") for name in names), "a history that continued-as-new"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(workflows=[JourneyWorkflow], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(_history(path))


async def test_an_incompatible_change_is_caught_by_replay() -> None:
    replayer = Replayer(
        workflows=[JourneyWithoutProfileLoad], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER
    )
    path = next(p for p in HISTORIES if p.stem == "pharmacy_refill_two_cycles_with_voicemail")
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))
