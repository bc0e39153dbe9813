"""The floors of the house hold: no import runs back up a layer, and the workflow loads no side-effect library.

The table below is the architecture (the README's layout table states it too). A package may import the
packages on the floors below its own, never a sibling on its floor nor anything above; ``contracts`` imports
nothing of ours. The walk reads every import statement, those inside functions included, so a lazy import that
runs back up a floor is caught as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from temporalio import activity

from contracts import activities as contracts
from contracts.broadcasts import BROADCAST_STUBS
from testkit.harness import ROOT

FLOORS: list[set[str]] = [
    {"contracts"},
    {"journeymap"},
    {"storage", "runtime"},
    {"audiences"},
    {"workflows", "activities"},
    {"workers"},
    {"analytics"},
    {"starter"},
    {"testkit"},
    {"bench", "tests"},
]
"""Bottom to top. Packages on one floor are siblings and may not import each other."""

FLOOR_OF = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) for every absolute import in ``path``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _violations() -> list[str]:
    problems = []
    for package, level in FLOOR_OF.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for line, imported in _imports(path):
                if imported == package or imported not in FLOOR_OF:
                    continue
                if FLOOR_OF[imported] >= level and not {package, imported} <= {"bench", "tests"}:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {imported}")
    return problems


def test_no_import_runs_up_a_floor() -> None:
    assert _violations() == []


def test_every_package_has_a_floor() -> None:
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".") and path.parent.name != "journeys"
    }
    assert packages - set(FLOOR_OF) == set(), "give the new package a floor in FLOORS and in the README"


def test_the_walk_sees_an_import_that_runs_up(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from starter.client import JourneyClient\n")
    assert _imports(module) == [(2, "starter")]


def test_the_workflow_module_loads_no_side_effect_library() -> None:
    """Loading the interpreter, as a worker's sandbox does, brings no HTTP client, ORM or database driver."""
    heavy = (
        "httpx",
        "sqlalchemy",
        "sqlmodel",
        "psycopg",
        "sqlite3",
        "aiosmtpd",
        "fastapi",
        "activities",
        "storage",
        "audiences",
    )
    script = (
        "import sys, workflows.journey\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


@pytest.mark.parametrize(
    "stub", contracts.STUBS + contracts.AUDIENCE_STUBS + BROADCAST_STUBS, ids=lambda stub: stub.__name__
)
def test_each_stub_has_an_implementation_of_its_shape(stub: typing.Any) -> None:
    from activities.broadcasts import BroadcastActivities
    from activities.delivery import DeliveryActivities
    from activities.profiles import ProfileActivities
    from activities.segments import SegmentActivities
    from activities.webhooks import WebhookActivities

    implementations = {
        activity._Definition.must_from_callable(method).name: method
        for method in (
            DeliveryActivities.send_message,
            ProfileActivities.load_profile,
            ProfileActivities.update_profile,
            WebhookActivities.call_webhook,
            SegmentActivities.refresh_segments,
            BroadcastActivities.start_broadcast_page,
            BroadcastActivities.segment_size,
        )
    }
    name = activity._Definition.must_from_callable(stub).name
    assert name in implementations, f"no implementation registered as {name!r}"
    expected = typing.get_type_hints(stub)
    actual = typing.get_type_hints(implementations[name])
    assert actual == expected
