"""One way to run a process's main coroutine: on uvloop where it exists (not on Windows).

The event API spends a large share of its CPU in the event loop, and on these machines uvloop's loop costs
less per request than asyncio's (docs/benchmarks.md). ``bench.ingest`` runs its raw temporalio client and its
HTTP load generator on the same loop, so the two paths it compares run on the same kind of loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
