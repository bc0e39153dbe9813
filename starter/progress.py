"""A progress line on stderr for long commands (``journeys simulate``): where it is, and how long is left.

On a terminal the line is rewritten in place; elsewhere (a CI log, a file) a line is printed every tenth of
the way, so a log shows progress without a line per step. Hand-written rather than a progress-bar library:
it is one line of text, and it must read well in a log, where bars do not.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    def __init__(self, total: int, unit: str, *, stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.in_place = self.stream.isatty()
        self._tenth = 0

    def update(self, done: int, detail: str = "") -> None:
        """``done`` of ``total`` units are done; ``detail`` (counts so far) goes at the end of the line."""
        tenth = 10 * done // max(1, self.total)
        if not self.in_place and tenth <= self._tenth and done < self.total:
            return
        self._tenth = tenth
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (self.total - done) if done else 0.0
        line = (
            f"{self.unit} {done}/{self.total} ({100 * done // max(1, self.total)}%), "
            f"{_clock(elapsed)} elapsed, about {_clock(left)} left" + (f"; {detail}" if detail else "")
        )
        if self.in_place:
            end = "\n" if done >= self.total else ""
            self.stream.write(f"\r{line}\x1b[K{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}"
