"""``--verbose``: record py_hamt's counters during a job and print them, with
latency percentiles, to stderr at its end (whether it succeeded or not)."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["report", "start"]


def start() -> None:
    """Turn recording on (see :mod:`py_hamt.observability`)."""
    from py_hamt import observability

    observability.enable()


def report(stream: TextIO | None = None) -> None:
    """Print what was recorded: each counter's total, each histogram's count
    and p50/p95/p99, and the CIDs loaded more than once."""
    from py_hamt import observability

    out = stream if stream is not None else sys.stderr
    snapshot = observability.stats()
    print("stats:", file=out)
    for name, total in snapshot["counters"].items():
        print(f"  {name} = {total:.15g}", file=out)
    for name, h in snapshot["histograms"].items():
        print(
            f"  {name}: n={h['count']} p50={h['p50']:.4g} p95={h['p95']:.4g} p99={h['p99']:.4g}",
            file=out,
        )
    duplicates = snapshot["duplicate_cid_loads"]
    if duplicates:
        print(f"  CIDs loaded more than once: {len(duplicates)}", file=out)
