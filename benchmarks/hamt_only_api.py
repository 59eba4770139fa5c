"""py_hamt's public API for ``shared/bench/bench_api.py`` sections a, b and c.

The yardstick imports ``ShardedZarrStore`` at start-up; until py_hamt has one,
run it with ``BENCH_API_MODULE=hamt_only_api`` and ``--only a,b,c``::

    PYTHONPATH=benchmarks BENCH_API_MODULE=hamt_only_api PYTHONHASHSEED=0 \\
        python ../shared/bench/bench_api.py --only a,b,c --out /tmp/cand.json
"""

from py_hamt import HAMT, InMemoryCAS, ZarrHAMTStore

ShardedZarrStore = None  # section d is not available yet

__all__ = ["HAMT", "InMemoryCAS", "ShardedZarrStore", "ZarrHAMTStore"]
