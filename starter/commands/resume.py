"""``journeys resume WORKFLOW_ID``: an operator's decision for a faulted journey (docs/events.md).

A journey whose step could not evaluate an expression or render a template stops, records the fault
(``journeys describe`` shows it) and, unless its map says otherwise, waits for this: try the step again (after
the data was fixed: a profile updated, a template corrected in a new map version is not picked up by a running
journey), go to another step (``--goto``), or end it (``--end``). Sent as the ``resume`` update: refused, and
nothing changed, when the journey is not faulted.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.errors import InputError
from contracts.journey import JourneySnapshot, ResumeInput
from runtime.connection import connect
from runtime.settings import Settings


class NotResumable(InputError):
    """The journey is not faulted, the step is unknown, or there is no such journey."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("resume", help="retry, redirect or end a journey stopped by a fault")
    parser.add_argument("workflow_id", help="the journey's workflow id (journeys describe CUSTOMER shows it)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--goto", metavar="STEP", default=None, help="go to this step instead of retrying")
    choice.add_argument("--end", action="store_true", help="end the journey")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.end:
        decision = ResumeInput(action="end")
    elif args.goto:
        decision = ResumeInput(action="goto", step=args.goto)
    else:
        decision = ResumeInput(action="retry")
    snapshot = asyncio.run(_resume(args.workflow_id, decision))
    print(f"{args.workflow_id}: {snapshot.status}" + (f" at step {snapshot.step}" if snapshot.step else ""))
    return 0


async def _resume(workflow_id: str, decision: ResumeInput) -> JourneySnapshot:
    client = await connect(Settings())
    handle = client.get_workflow_handle(workflow_id)
    try:
        snapshot: JourneySnapshot = await handle.execute_update("resume", decision, result_type=JourneySnapshot)
    except WorkflowUpdateFailedError as exc:
        raise NotResumable(f"{workflow_id}: {exc.cause or exc}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotResumable(f"{workflow_id}: no running journey has this id") from exc
        raise
    return snapshot
