"""Cost: history events and Temporal billable actions per customer per simulated year, for each built-in journey.

Counted from the real histories (every run of the continue-as-new chain) that a simulated year of each scenario
in ``bench.scenarios`` leaves on the time-skipping server. What the scenarios do to pace themselves is left
out: they wait for each journey to rest with its ``rested`` update, which a production backend never sends
(:func:`without_pacing`).

    python -m bench.cost [--customers N] [--save-histories DIR] [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from bench import handwritten
from bench.common import parser, report
from bench.scenarios import SCENARIOS
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER
from runtime.search_attributes import register_search_attributes
from starter.catalog import load_catalog
from starter.client import Routed
from testkit.harness import ROOT, Journeys, running_journeys

QUICK = ["order_updates"]
"""``--quick``: pharmacy four ways, and one short journey besides (seconds, for tests)."""

#: History event type -> the billable action it records.
ACTIONS = {
    "WORKFLOW_EXECUTION_STARTED": "starts",
    "WORKFLOW_EXECUTION_SIGNALED": "signals",
    "TIMER_STARTED": "timers",
    "ACTIVITY_TASK_SCHEDULED": "activities",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "upserts",
    "WORKFLOW_PROPERTIES_MODIFIED": "upserts",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continue_as_new",
}


async def chain(client: Client, workflow_id: str, run_id: str | None = None) -> list[WorkflowHistory]:
    """Every run of one execution chain, first to last, followed back through continue-as-new."""
    histories: list[WorkflowHistory] = []
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return histories
        run_id = started.continued_execution_run_id


class RecordingJourneys(Journeys):
    """Remembers the run each event reached: a re-entered journey is a new execution under the same workflow
    id, which the time-skipping server cannot list, so the runs are noted as they start."""

    runs: set[tuple[str, str]]

    async def send(self, customer_id: str, type: str, event_id: str | None = None, **properties: Any) -> list[Routed]:
        routed = await super().send(customer_id, type, event_id, **properties)
        for r in routed:
            if r.workflow_id is not None and r.action == "started_or_signalled":
                self.runs.add((r.workflow_id, await _current_run(self.client, r.workflow_id)))
        return routed


async def _current_run(client: Client, workflow_id: str) -> str:
    """The run id, read from the raw description: the time-skipping server sends a Datetime search attribute
    (JourneyWaitUntil) in a form the SDK's ``describe()`` cannot decode."""
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    described = await client.workflow_service.describe_workflow_execution(request)
    return str(described.workflow_execution_info.execution.run_id)


async def all_runs(client: Client, workflow_id: str, run_ids: set[str]) -> list[WorkflowHistory]:
    """Every run under one workflow id that was seen starting, with its continue-as-new chain, oldest first."""
    seen: set[str] = set()
    histories: list[WorkflowHistory] = []
    for run_id in [*sorted(run_ids), None]:
        for history in await chain(client, workflow_id, run_id):
            if history.run_id not in seen:
                seen.add(history.run_id)
                histories.append(history)
    histories.sort(key=lambda h: h.events[0].event_time.ToDatetime())
    return histories


#: Events a workflow task's commands write; a task that wrote none of these only took the tests' update.
COMMANDED = {
    "ACTIVITY_TASK_SCHEDULED",
    "TIMER_STARTED",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "WORKFLOW_PROPERTIES_MODIFIED",
    "MARKER_RECORDED",
    "WORKFLOW_EXECUTION_COMPLETED",
    "WORKFLOW_EXECUTION_FAILED",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
}


def without_pacing(events: list[str]) -> list[str]:
    """The history (event type names) as a backend's journey writes it: without the harness's ``rested`` updates.

    The scenarios wait for a journey to rest with that update, which a backend never sends. It leaves its
    accepted and completed events and, when it came alone, the workflow task that took it: one whose commands
    wrote nothing (an approximation: a task for a signal the journey ignores writes nothing either, and the
    scenarios send none).
    """
    return [events[index] for index in kept(events)]


def kept(events: list[str]) -> list[int]:
    """The indices of the events :func:`without_pacing` keeps."""
    out: list[int] = []
    for index, kind in enumerate(events):
        if kind.startswith("WORKFLOW_EXECUTION_UPDATE_"):
            continue
        if kind == "WORKFLOW_TASK_COMPLETED" and _took_only_an_update(events, index):
            for drop in ("WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_SCHEDULED"):  # the last of each kept: this task's
                last = next(i for i in range(len(out) - 1, -1, -1) if events[out[i]] == drop)
                del out[last]
            continue
        out.append(index)
    return out


def _took_only_an_update(events: list[str], completed: int) -> bool:
    after = events[completed + 1 :]
    if "WORKFLOW_TASK_SCHEDULED" in after:
        after = after[: after.index("WORKFLOW_TASK_SCHEDULED")]
    return "WORKFLOW_EXECUTION_UPDATE_ACCEPTED" in after and not COMMANDED & set(after)


def _kinds(history: WorkflowHistory) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]


def count(histories: list[WorkflowHistory]) -> dict[str, int]:
    kinds = Counter(kind for h in histories for kind in without_pacing(_kinds(h)))
    actions: Counter[str] = Counter()
    for kind, n in kinds.items():
        if kind in ACTIONS:
            actions[ACTIONS[kind]] += n
    # A continued run's start is the continue-as-new action already counted, not a second start.
    actions["starts"] -= actions["continue_as_new"]
    return {"events": sum(kinds.values()), "runs": len(histories), **actions}


def where_bytes_go(histories: list[WorkflowHistory]) -> dict[str, int]:
    """History size in protobuf bytes (what the server stores and every replay reads), and its largest parts."""
    out: Counter[str] = Counter()
    for history in histories:
        for index in kept(_kinds(history)):
            event = history.events[index]
            size = event.ByteSize()
            out["history_bytes"] += size
            kind = event.WhichOneof("attributes")
            if kind == "activity_task_scheduled_event_attributes":
                out["activity_input_bytes"] += event.activity_task_scheduled_event_attributes.input.ByteSize()
            elif kind == "activity_task_completed_event_attributes":
                out["activity_result_bytes"] += event.activity_task_completed_event_attributes.result.ByteSize()
            elif kind in (
                "upsert_workflow_search_attributes_event_attributes",
                "workflow_properties_modified_event_attributes",
            ):
                out["upsert_bytes"] += size
            elif kind == "workflow_execution_started_event_attributes":
                out["workflow_input_bytes"] += event.workflow_execution_started_event_attributes.input.ByteSize()
            elif kind == "workflow_execution_continued_as_new_event_attributes":
                out["workflow_input_bytes"] += (
                    event.workflow_execution_continued_as_new_event_attributes.input.ByteSize()
                )
            elif kind == "workflow_execution_signaled_event_attributes":
                out["signal_bytes"] += event.workflow_execution_signaled_event_attributes.input.ByteSize()
    return dict(out)


ACTION_KEYS = ("starts", "signals", "timers", "activities", "upserts", "continue_as_new")
BYTE_KEYS = (
    "history_bytes",
    "activity_input_bytes",
    "activity_result_bytes",
    "upsert_bytes",
    "workflow_input_bytes",
    "signal_bytes",
)


def row(label: str, customers: int, totals: Counter[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"journey": label}
    for key in ("events", "runs", *ACTION_KEYS):
        out[key] = totals[key] / customers
    out["billable_actions"] = sum(out[k] for k in ACTION_KEYS)
    for key in BYTE_KEYS:
        out[key] = totals[key] / customers
    return out


async def interpreter(
    env: WorkflowEnvironment, name: str, customers: int, save: Path | None, overrides: dict[str, Any] | None = None
) -> Counter[str]:
    """Totals over ``customers`` simulated years of journey ``name`` run by the interpreter."""
    scenario = SCENARIOS[name]
    totals: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        queue = f"bench-cost-{uuid.uuid4().hex[:8]}"
        async with running_journeys(
            env.client,
            Path(tmp),
            queue,
            database_url=f"sqlite:///{tmp}/journeys.db",
            settings_overrides=overrides,
        ) as base:
            j = RecordingJourneys(**{f.name: getattr(base, f.name) for f in fields(base)})
            j.runs = set()
            for index in range(customers):
                customer = f"cost-{uuid.uuid4().hex[:6]}-{index}"
                for workflow_id in await scenario(j, env, customer):
                    histories = await all_runs(
                        env.client, workflow_id, {run for wid, run in j.runs if wid == workflow_id}
                    )
                    totals.update(count(histories))
                    totals.update(where_bytes_go(histories))
                    if save is not None:
                        save.mkdir(parents=True, exist_ok=True)
                        for history in histories:
                            (save / f"{name}-{index}-{history.run_id}.json").write_text(history.to_json())
    return totals


async def hand_written(env: WorkflowEnvironment, customers: int, *, search_by_step: bool) -> Counter[str]:
    totals: Counter[str] = Counter()
    for history in await handwritten.histories(env, search_by_step=search_by_step, customers=customers):
        totals.update(count([history]))
        totals.update(where_bytes_go([history]))
    return totals


def ratios(rows: list[dict[str, Any]], reference: dict[str, Any]) -> None:
    """Each pharmacy row's actions and bytes as a multiple of the plain hand-written workflow's."""
    for r in rows:
        r["actions_vs_plain"] = r["billable_actions"] / reference["billable_actions"]
        r["bytes_vs_plain"] = r["history_bytes"] / reference["history_bytes"]


async def measure(customers: int, save: Path | None, journeys: list[str] | None = None) -> list[dict[str, Any]]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=DATA_CONVERTER
    )
    await register_search_attributes(env.client, check_existing=False)
    rows: list[dict[str, Any]] = []
    try:
        # The pharmacy story four ways, side by side on the same server: what the 1.1x and 1.2x are of.
        pharmacy = [
            row("pharmacy_refill", customers, await interpreter(env, "pharmacy_refill", customers, save)),
            row(
                "pharmacy_refill, search by step on",
                customers,
                await interpreter(env, "pharmacy_refill", customers, None, {"search_by_step": True}),
            ),
            row("hand-written, upserting the step", customers, await hand_written(env, customers, search_by_step=True)),
            row("hand-written, plain", customers, await hand_written(env, customers, search_by_step=False)),
        ]
        ratios(pharmacy, pharmacy[-1])
        rows += pharmacy
        for name in journeys if journeys is not None else sorted(load_catalog(ROOT / "journeys")):
            if name == "pharmacy_refill":
                continue
            if name not in SCENARIOS:
                rows.append({"journey": name, "note": "no scenario in bench/scenarios.py"})
                continue
            rows.append(row(name, customers, await interpreter(env, name, customers, save)))
    finally:
        await env.shutdown()
    return rows


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--customers", type=int, default=3)
    args_parser.add_argument("--save-histories", type=Path, help="write every run's history JSON here (for replay)")
    args = args_parser.parse_args()
    customers = 1 if args.quick else args.customers
    journeys = QUICK if args.quick else None
    rows = asyncio.run(measure(customers, args.save_histories, journeys))
    report(
        "cost per customer per simulated year",
        {"customers": customers, "server": "time-skipping", "queries": "not counted"},
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
