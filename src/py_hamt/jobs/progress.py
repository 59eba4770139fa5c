"""Progress reporting for long jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Progress", "ProgressCallback", "report"]


@dataclass(frozen=True)
class Progress:
    """Where a job is: ``done`` of ``total`` units (``total`` may be unknown).

    Jobs keep ``done <= total`` whenever ``total`` is known: ``done`` counts
    distinct units of work (a key written twice is one key), ``total`` is the
    job's plan, and it grows when the job finds work it did not plan for. The
    last report of a finished job has ``done == total`` (less work than
    planned shrinks the total then). ``bytes_moved`` counts every byte moved,
    rewrites included.
    """

    done: int
    total: int | None
    unit: str = "keys"
    bytes_moved: int = 0


ProgressCallback: TypeAlias = Callable[[Progress], None]


def report(callback: ProgressCallback | None, progress: Progress) -> None:
    """Call ``callback`` if there is one."""
    if callback is not None:
        callback(progress)
