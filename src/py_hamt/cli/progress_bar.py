"""A text progress bar on stderr, fed by the library's progress callbacks."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from py_hamt.jobs.progress import Progress

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Renders :class:`Progress` updates; redraws at most every 0.1 s on a
    terminal, and every 10% otherwise (so logs stay short)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        finished = progress.total is not None and progress.done >= progress.total
        if self._tty:
            now = time.monotonic()
            if not finished and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(progress))
        else:
            tenth = (10 * progress.done // progress.total) if progress.total else -1
            if tenth == self._last_tenth and not finished:
                return
            self._last_tenth = tenth
            self.stream.write(self._line(progress) + "\n")
        self._drawn = True
        self.stream.flush()

    def _line(self, progress: Progress) -> str:
        if progress.total:
            filled = _WIDTH * progress.done // progress.total
            bar = "#" * filled + "-" * (_WIDTH - filled)
            pct = 100 * progress.done // progress.total
            return (
                f"{self.label} [{bar}] {pct:3d}% {progress.done}/{progress.total} {progress.unit}"
            )
        return f"{self.label} {progress.done} {progress.unit}"

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._drawn and self._tty:
            self.stream.write("\n")
            self.stream.flush()
