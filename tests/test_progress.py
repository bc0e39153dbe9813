"""The progress line of long commands: in place on a terminal, a tenth at a time in a log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from starter.cli import main
from starter.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_a_line_per_tenth_and_the_last() -> None:
    log = io.StringIO()
    line = ProgressLine(365, "day", stream=log)
    for day in range(1, 366):
        line.update(day, f"{day * 3} events")
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("day 37/365 (10%), ") and "elapsed, about " in lines[0]
    assert lines[-1].startswith("day 365/365 (100%), ") and lines[-1].endswith("left; 1095 events")


def test_on_a_terminal_one_line_rewritten_in_place() -> None:
    terminal = Terminal()
    line = ProgressLine(3, "day", stream=terminal)
    for day in (1, 2, 3):
        line.update(day)
    text = terminal.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("0:00 left\x1b[K\n")


def test_simulate_shows_its_progress_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database, out = f"sqlite:///{tmp_path / 'sim.db'}", tmp_path / "report.html"
    assert main(["simulate", "--customers", "3", "--days", "10", "--database-url", database, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "day 10/10 (100%)" in captured.err and " events, " in captured.err
    assert "3 customers" in captured.out and out.is_file()
