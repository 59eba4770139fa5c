"""What CPython itself costs per operation, against the scale targets.

    python benchmarks/floors.py                  # ~30 s; writes results/floors.json
    python benchmarks/floors.py --out ''         # print only

None of this runs py_hamt's code. It times the steps that any pure-Python
HAMT must take for the operations ``scale.py`` measures, each at its cheapest
(no lookups, no parsing beyond one byte an entry, no error checks), and adds
them up into the best rate such a library could reach in the same harness:

- ``gather_item_us``: one no-op coroutine in ``asyncio.gather`` batches of
  1,000, the way ``scale.py`` (and zarr) issue sets and gets.
- ``await_item_us``: one no-op coroutine awaited on its own.
- ``async_for_item_us``: one item of an async generator (``keys()``).
- ``blake3_key_us``: blake3 of a zarr key (where the key belongs).
- ``value_read_us``: open, read and close a 64-byte file, then blake3 it
  (a value block of ``LocalCAS``, page cache warm).
- ``node_read_us``: ``pread`` 10 kB from an open file and blake3 it (a packed
  leaf of a ten-million-key HAMT, page cache warm).
- ``entry_loop_us``: a Python loop over a node's 256 entries that reads one
  length byte an entry and moves on: less than any parser of the format does.

The bounds (``bounds``) compare each target of the scale issue with the sum of
the floors its operation cannot avoid, in ``scale.py``'s harness and (for
gets) awaited one at a time, where the harness costs almost nothing.
``--miss-rate`` is the share of cold gets at ten million keys that must read
a leaf (0.79 measured: 39,380 node loads for 50,000 gets with the default
128 MiB cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3

N = 200_000


def per_item_us(run: Callable[[], int], repeat: int = 3) -> float:
    """The best of ``repeat`` runs of ``run`` (which returns its item count),
    in microseconds an item."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        items = run()
        best = min(best, (time.perf_counter() - t0) / items)
    return round(best * 1e6, 3)


async def _noop(i: int) -> None:
    return None


def gather_item() -> int:
    async def main() -> None:
        for start in range(0, N, 1000):
            await asyncio.gather(*(_noop(i) for i in range(start, start + 1000)))

    asyncio.run(main())
    return N


def await_item() -> int:
    async def main() -> None:
        for i in range(N):
            await _noop(i)

    asyncio.run(main())
    return N


def async_for_item() -> int:
    async def items() -> Any:
        for block in range(N // 15):
            for k in range(15):  # a node's worth of keys at a time, as keys() has them
                yield block + k

    async def main() -> None:
        async for _ in items():
            pass

    asyncio.run(main())
    return N // 15 * 15


KEYS = [f"t2m/c/{i % 8760}/{i % 97}/{i % 13}".encode() for i in range(N)]


def blake3_key() -> int:
    for key in KEYS:
        blake3.blake3(key).digest()
    return len(KEYS)


def value_read(folder: str, count: int) -> Callable[[], int]:
    def run() -> int:
        for i in range(count):
            fd = os.open(f"{folder}/{i}", os.O_RDONLY)
            try:
                data = os.read(fd, 1 << 16)
            finally:
                os.close(fd)
            blake3.blake3(data).digest()
        return count

    return run


def node_read(path: str, count: int, size: int) -> Callable[[], int]:
    def run() -> int:
        fd = os.open(path, os.O_RDONLY)
        try:
            for i in range(count):
                blake3.blake3(os.pread(fd, size, i * size)).digest()
        finally:
            os.close(fd)
        return count

    return run


def leaf_like(entries: int = 256, used: int = 150) -> bytes:
    """Bytes laid out as one length byte then that many bytes, per entry."""
    out = bytearray()
    for i in range(entries):
        n = 60 if i * used // entries != (i + 1) * used // entries else 0
        out += bytes((n,)) + os.urandom(n)
    return bytes(out)


def entry_loop(data: bytes, reps: int) -> Callable[[], int]:
    def run() -> int:
        for _ in range(reps):
            pos = 0
            for _ in range(256):
                pos += 1 + data[pos]
        return reps

    return run


def measure(miss_rate: float) -> dict[str, Any]:
    floors: dict[str, float] = {}
    floors["gather_item_us"] = per_item_us(gather_item)
    floors["await_item_us"] = per_item_us(await_item)
    floors["async_for_item_us"] = per_item_us(async_for_item)
    floors["blake3_key_us"] = per_item_us(blake3_key)
    with tempfile.TemporaryDirectory() as folder:
        count = 2000
        for i in range(count):
            Path(folder, str(i)).write_bytes(os.urandom(64))
        floors["value_read_us"] = per_item_us(value_read(folder, count))
        pack = Path(folder, "pack")
        pack.write_bytes(os.urandom(count * 10_000))
        floors["node_read_us"] = per_item_us(node_read(str(pack), count, 10_000))
    floors["entry_loop_us"] = per_item_us(entry_loop(leaf_like(), 2000))

    get_work_us = floors["value_read_us"] + miss_rate * (
        floors["node_read_us"] + floors["entry_loop_us"]
    )
    bounds = {
        "raw_sets_per_s_ten_million": {
            "target": 100_000,
            "best_possible": round(1e6 / floors["gather_item_us"]),
            "floor": "gather_item_us alone (no work at all per set)",
        },
        "cold_gets_per_s_ten_million": {
            "target": 30_000,
            "best_possible": round(1e6 / (floors["gather_item_us"] + get_work_us)),
            "floor": "gather_item_us + value_read_us + miss_rate * (node_read_us + entry_loop_us)",
        },
        "cold_gets_per_s_ten_million_one_at_a_time": {
            "target": 30_000,
            "best_possible": round(1e6 / (floors["await_item_us"] + get_work_us)),
            "floor": "the same with await_item_us: gets awaited one by one, not gathered",
        },
        "keys_s_one_million": {
            "target": 1.0,
            # microseconds a key is seconds a million keys
            "best_possible": round(floors["blake3_key_us"] + floors["async_for_item_us"], 2),
            "floor": "a million * (blake3_key_us + async_for_item_us): placement check, yield",
        },
    }
    return {
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "miss_rate": miss_rate,
        "floors": floors,
        "bounds": bounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miss-rate", type=float, default=0.79)
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent / "results" / "floors.json"),
        help="where to write the JSON ('' to print only)",
    )
    args = parser.parse_args()
    result = measure(args.miss_rate)
    for name, value in result["floors"].items():
        print(f"{name:20s} {value:8.3f}")
    for name, bound in result["bounds"].items():
        print(f"{name}: target {bound['target']:,}, best possible {bound['best_possible']:,}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
