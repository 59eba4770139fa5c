"""A text progress bar on stderr, fed by the library's progress callbacks."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from py_hamt.jobs.progress import Progress

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Renders :class:`Progress` updates.

    On a terminal it redraws one line at most every 0.1 s. Otherwise (a log)
    it writes a line per tenth of a known total, each tenth once, or at
    1, 2, 4, 8... units when the total is unknown, so logs stay short.
    :meth:`close` shows the last update if it was not drawn.

    The count shown never exceeds the total: jobs report ``done <= total``
    (see :class:`Progress`); if one ever reports more, the bar takes the
    total to be ``done`` rather than show ``120%``.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self._last_draw = 0.0
        self._last_mark = -1
        self._drawn = False
        self._pending: Progress | None = None
        self._shown: tuple[int, int | None] | None = None

    def __call__(self, progress: Progress) -> None:
        done, total = progress.done, progress.total
        if total is not None and done > total:
            total = done
        finished = total is not None and done >= total
        if self._tty:
            now = time.monotonic()
            if not finished and now - self._last_draw < 0.1:
                self._pending = progress
                return
            self._last_draw = now
            self._draw(progress, "\r", "")
        else:
            mark = 10 * done // total if total else done.bit_length()
            if mark == self._last_mark:
                self._pending = progress
                return
            self._last_mark = mark
            self._draw(progress, "", "\n")

    def _draw(self, progress: Progress, before: str, after: str) -> None:
        self._pending = None
        self._shown = (progress.done, progress.total)
        self.stream.write(before + self._line(progress) + after)
        self._drawn = True
        self.stream.flush()

    def _line(self, progress: Progress) -> str:
        done, total = progress.done, progress.total
        if total:
            total = max(total, done)
            filled = _WIDTH * done // total
            bar = "#" * filled + "-" * (_WIDTH - filled)
            pct = 100 * done // total
            return f"{self.label} [{bar}] {pct:3d}% {done}/{total} {progress.unit}"
        return f"{self.label} {done} {progress.unit}"

    def close(self) -> None:
        """Show the last update if it was not drawn; end the line on a terminal."""
        pending = self._pending
        if pending is not None and (pending.done, pending.total) != self._shown:
            self._draw(pending, "\r" if self._tty else "", "" if self._tty else "\n")
        if self._drawn and self._tty:
            self.stream.write("\n")
            self.stream.flush()
