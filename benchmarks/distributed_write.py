"""py_hamt.dask.to_zarr: one process (dask threads) vs a 2-worker process cluster.

A float32 dataset (1 GiB by default), zstd, 1 MiB chunks, into a LocalCAS.
Each mode runs in a fresh interpreter so the coordinator's peak RSS is its
own. Reported per mode: wall time, coordinator peak RSS, bytes of task
results the coordinator received (pickled pointers: what passes through the
scheduler), and the merge+commit time (pointers into the HAMT, then the
commit) with its share of the wall time and its cost per pointer.

    python benchmarks/distributed_write.py [--gib 1.0] [--dir /tmp/bench]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHUNK = (64, 64, 64)  # 262144 float32 = 1 MiB


def _dataset(gib: float) -> Any:
    import dask.array as da
    import numpy as np
    import xarray as xr

    n_time = max(64, int(gib * 2**30 / (4 * 512 * 512)) // 64 * 64)
    rng = da.random.default_rng(0)
    # rounded values: something zstd can compress, made on the workers
    data = (rng.random((n_time, 512, 512), chunks=CHUNK, dtype="f4") * 100).round(1)
    return xr.Dataset(
        {"field": (("time", "y", "x"), data.astype("f4"))},
        coords={"time": np.arange(n_time), "y": np.arange(512), "x": np.arange(512)},
    )


def run_mode(mode: str, gib: float, directory: str) -> dict[str, Any]:
    import dask
    from zarr.codecs import ZstdCodec

    import py_hamt.dask as phd
    from py_hamt import HAMT, LocalCAS, ZarrHAMTStore

    stats = {"result_bytes": 0, "pointers": 0, "commit_s": 0.0}
    run_distributed, commit = phd._run_distributed, phd._commit

    def counting_run(client: Any, tasks: list[Any], on_result: Any) -> None:
        def counted(result: Any) -> None:
            stats["result_bytes"] += len(pickle.dumps(result))
            on_result(result)

        run_distributed(client, tasks, counted)

    async def timed_commit(store: Any, pointers: dict[str, object], cas: Any) -> Any:
        start = time.perf_counter()
        try:
            return await commit(store, pointers, cas)
        finally:
            stats["commit_s"] = time.perf_counter() - start
            stats["pointers"] = len(pointers)

    phd._run_distributed = counting_run  # type: ignore[assignment]
    phd._commit = timed_commit  # type: ignore[assignment]

    ds = _dataset(gib)
    encoding = {"field": {"chunks": CHUNK, "compressors": [ZstdCodec(level=3)]}}
    cas = LocalCAS(directory)
    hamt = asyncio.run(HAMT.build(cas=cas, values_are_bytes=True))
    client = None
    if mode == "cluster":
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        client = distributed.Client(cluster)
        context: Any = dask.config.set({})
    else:
        context = dask.config.set(scheduler="threads", num_workers=2)
    with context:
        start = time.perf_counter()
        result = phd.to_zarr(ds, ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=encoding)
        wall = time.perf_counter() - start
    if client is not None:
        client.close()
        cluster.close()
    return {
        "mode": mode,
        "dataset_bytes": int(ds.nbytes),
        "wall_s": round(wall, 2),
        "coordinator_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "result_bytes_to_coordinator": stats["result_bytes"],
        "pointers": stats["pointers"],
        "merge_commit_s": round(stats["commit_s"], 3),
        "merge_commit_share": round(stats["commit_s"] / wall, 4),
        "merge_commit_us_per_pointer": round(
            1e6 * stats["commit_s"] / max(1, stats["pointers"]), 1
        ),
        "root": str(result.id),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--dir", default=None, help="where the LocalCAS directories go")
    parser.add_argument("--mode", choices=["threads", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.gib, args.store)))
        return
    base = Path(args.dir or tempfile.mkdtemp(prefix="py_hamt-bench-"))
    rows = []
    for mode in ("threads", "cluster"):
        store = base / mode
        shutil.rmtree(store, ignore_errors=True)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--gib",
                str(args.gib),
                "--store",
                str(store),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(store, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    same = rows[0]["root"] == rows[1]["root"]
    print(f"same root in both modes: {same}")


if __name__ == "__main__":
    main()
