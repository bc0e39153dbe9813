"""A new step kind is one module: the worked example of ``docs/developing.md``, registered here, is validated,
checked, drawn and run without a line changed anywhere else.

The module is taken from the page itself, so the documented example is the one tested. It is registered for
these tests only (and removed after): a kind registered after the map's model was built needs that model, and
the workflow input that embeds it, rebuilt, because the steps' tagged union is made when a schema is built.
A shipped kind's module is imported with the package, before any model is built, and needs none of this.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from journeymap import MapValidationError, load_map_text
from journeymap.mermaid import node_id, to_mermaid
from journeymap.models import JourneyMap
from journeymap.steps import kind_of, kinds, unregister
from testkit.harness import ROOT, running_journeys, write_journeys
from workflows.models import JourneyInput

DOC = ROOT / "docs" / "developing.md"
BUILT_IN = "send, wait, wait_for, branch, split, set, update_profile, webhook, goto, end"

NOTED = """
name: noted
entry: {events: [signed_up]}
steps:
  - id: hello
    send: {channel: sms, template: hi, category: transactional}
  - id: reminded
    note: {text: welcome sent}
"""


def _rebuild() -> None:
    JourneyMap.model_rebuild(force=True)
    JourneyInput.model_rebuild(force=True)


@pytest.fixture
def note_kind(tmp_path: Path) -> Iterator[None]:
    """The ``note`` kind of docs/developing.md, registered for one test."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"The whole kind, `journeymap/steps/note.py`:\n\n```python\n(.*?)```", text, re.S)
    assert found, "docs/developing.md no longer shows the note kind's module"
    module_file = tmp_path / "docs_note_kind.py"
    module_file.write_text(found.group(1), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("docs_note_kind", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    _rebuild()
    try:
        yield
    finally:
        unregister("note")
        del sys.modules[spec.name]
        _rebuild()


def _problems(text: str) -> list[str]:
    with pytest.raises(MapValidationError) as failed:
        load_map_text(text, source="noted.yaml")
    return [str(error) for error in failed.value.errors]


def test_a_step_kind_unknown_to_the_registry_is_refused() -> None:
    assert _problems(NOTED) == [
        f"noted.yaml: steps[1]: a step needs an `id` and exactly one of: {BUILT_IN}",
    ]


@pytest.mark.usefixtures("note_kind")
def test_the_new_kind_is_validated_and_checked() -> None:
    journey = load_map_text(NOTED, source="noted.yaml")
    assert kind_of(journey.steps[1]).name == "note"
    assert [kind.name for kind in kinds()][-1] == "note"
    head = NOTED.split("  - id: hello")[0]
    assert _problems(head + "  - id: a\n    note: {}\n  - id: b\n    note: {text: x}\n    next: nowhere\n") == [
        "noted.yaml: steps[0].note.text: Field required",
    ]
    # Shape first, then meaning: the loop check knows a note does not wait; targets are checked as for any step.
    assert _problems(head + "  - id: a\n    note: {text: x}\n    next: nowhere\n") == [
        "noted.yaml: steps[0].next: unknown step 'nowhere'",
    ]
    assert _problems(head + "  - id: a\n    note: {text: x}\n  - id: b\n    goto: a\n") == [
        "noted.yaml: steps[0]: steps loop without waiting: a -> b -> a; add a wait",
    ]
    assert _problems(head + "  - {id: a, note: {text: x}, wait: {duration: 1d}}\n") == [
        f"noted.yaml: steps[0]: a step needs an `id` and exactly one of: {BUILT_IN}, note",
    ]


@pytest.mark.usefixtures("note_kind")
def test_the_new_kind_is_drawn_with_its_shape_and_an_arrow_on() -> None:
    chart = to_mermaid(load_map_text(NOTED, source="noted.yaml"))
    assert f'{node_id("reminded")}[/"reminded<br/>note: welcome sent"\\]' in chart
    assert f"{node_id('hello')} --> {node_id('reminded')}" in chart


@pytest.mark.usefixtures("note_kind")
async def test_the_new_kind_runs_in_the_journey(
    time_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = write_journeys(tmp_path, {"noted": NOTED}, {"hi": "sms:\n  text: 'Hi'\n"})
    caplog.set_level(logging.INFO, logger="temporalio.workflow")
    async with running_journeys(time_env.client, tmp_path, task_queue, folder, database_url=database_url) as j:
        j.add_customer("n1")
        await j.send("n1", "signed_up")
        result = await j.handle("noted", "n1").result()
        assert (result.status, result.end_reason, result.sends) == ("completed", "reached the end", 1)
    assert any("journey noted, step reminded: welcome sent" in r.getMessage() for r in caplog.records)
