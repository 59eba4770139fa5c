"""Scale benchmarks: a million-key HAMT, and multi-GB datasets on disk.

Every case runs in its own subprocess, so its peak RSS is its own.

    python benchmarks/scale.py hamt --keys 1000000
    python benchmarks/scale.py dataset --store hamt --gb 4 --dir /tmp/scale
    python benchmarks/scale.py all --dir /tmp/scale --out benchmarks/results

``all`` runs the million-key case and every store at 0.25, 1 and 4 GB, writes
``results/scale.json`` and draws ``results/scale.png`` (needs matplotlib:
``pip install matplotlib``).

Datasets are float32 (time, 360, 360), written from dask arrays made chunk
by chunk (the source never sits in memory), chunks of (32, 90, 90) = 1 MiB,
uncompressed; read back as 16 time slices of 32 steps each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

MiB = 2**20


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------ a million keys
async def hamt_case(n: int, cache_mb: int) -> dict[str, Any]:
    from zarr.core.buffer import cpu, default_buffer_prototype
    from zarr.storage import MemoryStore

    from py_hamt import HAMT, InMemoryCAS, ZarrHAMTStore

    keys = [f"v/c/{i // 1000}/{i % 1000}" for i in range(n)]
    values = [cpu.Buffer.from_bytes(i.to_bytes(8, "little") * 4) for i in range(n)]
    proto = default_buffer_prototype()
    out: dict[str, Any] = {"keys": n, "read_cache_MiB": cache_mb}

    async def fill(store: Any) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(
                    store.set(k, v)
                    for k, v in zip(
                        keys[start : start + 1000], values[start : start + 1000], strict=True
                    )
                )
            )
        return time.perf_counter() - t0

    async def read(store: Any) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            await asyncio.gather(*(store.get(k, proto) for k in keys[start : start + 1000]))
        return time.perf_counter() - t0

    memory = MemoryStore()
    out["memory_set_s"] = round(await fill(memory), 2)
    out["memory_get_s"] = round(await read(memory), 2)
    del memory

    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    out["hamt_set_s"] = round(await fill(ZarrHAMTStore(hamt)), 2)
    t0 = time.perf_counter()
    await hamt.make_read_only()
    out["hamt_commit_s"] = round(time.perf_counter() - t0, 2)
    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    store = ZarrHAMTStore(ro, read_only=True)
    out["hamt_get_cold_s"] = round(await read(store), 2)
    out["sets_per_s"] = round(n / (out["hamt_set_s"] + out["hamt_commit_s"]))
    out["gets_per_s"] = round(n / out["hamt_get_cold_s"])
    out["set_ratio_to_memory"] = round(
        (out["hamt_set_s"] + out["hamt_commit_s"]) / out["memory_set_s"], 2
    )
    out["get_ratio_to_memory"] = round(out["hamt_get_cold_s"] / out["memory_get_s"], 2)

    t0 = time.perf_counter()
    counted = 0
    async for _ in ro.keys():
        counted += 1
    out["keys_iter_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    assert await ro.len() == n == counted
    out["len_s"] = round(time.perf_counter() - t0, 2)
    for attempt in ("first", "second"):
        t0 = time.perf_counter()
        names = [x async for x in store.list_dir("v/c")]
        out[f"list_dir_{attempt}_s"] = round(time.perf_counter() - t0, 4)
    assert len(names) == -(-n // 1000)
    stats = await ro.stats()
    out["depth"], out["nodes"] = stats["depth"], stats["nodes"]
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# ------------------------------------------------------------ big datasets
def dataset(gb: float) -> Any:
    import dask.array as da
    import numpy as np
    import pandas as pd
    import xarray as xr

    n_time = max(32, int(gb * 2**30 / (360 * 360 * 4)) // 32 * 32)
    data = da.random.default_rng(0).standard_normal(
        (n_time, 360, 360), chunks=(32, 90, 90), dtype=np.float32
    )
    return xr.Dataset(
        {"temp": (("time", "lat", "lon"), data)},
        coords={
            "time": pd.date_range("2000-01-01", periods=n_time, freq="h"),
            "lat": np.linspace(-89.75, 89.75, 360),
            "lon": np.linspace(0, 359.5, 360),
        },
    )


async def dataset_case(kind: str, gb: float, folder: Path) -> dict[str, Any]:
    import numpy as np
    import xarray as xr
    from zarr.storage import LocalStore

    from py_hamt import HAMT, LocalCAS, ShardedZarrStore, ZarrHAMTStore

    warnings.filterwarnings("ignore", message="Consolidated metadata")
    ds = dataset(gb)
    nbytes = ds["temp"].nbytes
    enc = {"temp": {"chunks": (32, 90, 90), "compressors": None}}
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    if kind == "local":
        await asyncio.to_thread(
            ds.to_zarr, LocalStore(str(folder)), mode="w", zarr_format=3, encoding=enc
        )
        t1 = time.perf_counter()
        reader = LocalStore(str(folder), read_only=True)
    elif kind == "hamt":
        cas = LocalCAS(folder)
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        await asyncio.to_thread(
            ds.to_zarr, store=ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=enc
        )
        await hamt.make_read_only()
        t1 = time.perf_counter()
        ro = await HAMT.build(
            cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
        )
        reader = ZarrHAMTStore(ro, read_only=True)
    else:
        cas = LocalCAS(folder)
        store = await ShardedZarrStore.open(
            cas,
            False,
            array_shape=ds["temp"].shape,
            chunk_shape=(32, 90, 90),
            chunks_per_shard=1024,
        )
        await asyncio.to_thread(ds.to_zarr, store=store, mode="w", zarr_format=3, encoding=enc)
        root = await store.flush()
        t1 = time.perf_counter()
        reader = await ShardedZarrStore.open(cas, True, root)
    write_s = t1 - t0
    opened = await asyncio.to_thread(xr.open_zarr, reader, chunks=None)
    n_time = opened.sizes["time"]
    t2 = time.perf_counter()
    for start in np.linspace(0, n_time - 32, 16).astype(int):
        part = await asyncio.to_thread(
            lambda s=start: opened["temp"].isel(time=slice(s, s + 32)).values
        )
        assert part.shape == (32, 360, 360)
    read_s = time.perf_counter() - t2
    size_on_disk = await asyncio.to_thread(
        lambda: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    )
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "store": kind,
        "GB": round(nbytes / 2**30, 2),
        "write_s": round(write_s, 2),
        "write_MBps": round(nbytes / MiB / write_s, 1),
        "read_16_slices_s": round(read_s, 2),
        "read_MBps": round(16 * 32 * 360 * 360 * 4 / MiB / read_s, 1),
        "disk_GB": round(size_on_disk / 2**30, 2),
        "peak_rss_mb": peak_rss_mb(),
    }


# ------------------------------------------------------------------ driver
def run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args, "--json"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = {
        "hamt": "ZarrHAMTStore (LocalCAS)",
        "sharded": "ShardedZarrStore (LocalCAS)",
        "local": "zarr LocalStore",
    }
    for kind, label in labels.items():
        rows = sorted((r for r in results["datasets"] if r["store"] == kind), key=lambda r: r["GB"])
        sizes = [r["GB"] for r in rows]
        axes[0].plot(sizes, [r["write_s"] for r in rows], "o-", label=label)
        axes[1].plot(sizes, [r["read_16_slices_s"] for r in rows], "o-", label=label)
        axes[2].plot(sizes, [r["peak_rss_mb"] for r in rows], "o-", label=label)
    axes[0].set(title="write (commit included)", xlabel="dataset GB", ylabel="seconds")
    axes[1].set(title="read 16 time slices", xlabel="dataset GB", ylabel="seconds")
    axes[2].set(title="peak RSS", xlabel="dataset GB", ylabel="MiB")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("py_hamt at scale: cost against dataset size (2-core machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hamt")
    h.add_argument("--keys", type=int, default=1_000_000)
    h.add_argument("--cache-mb", type=int, default=128, help="the read cache (default 128)")
    h.add_argument("--json", action="store_true")
    d = sub.add_parser("dataset")
    d.add_argument("--store", choices=("hamt", "sharded", "local"), required=True)
    d.add_argument("--gb", type=float, default=4.0)
    d.add_argument("--dir", type=Path, default=Path("/tmp/py-hamt-scale"))
    d.add_argument("--json", action="store_true")
    a = sub.add_parser("all")
    a.add_argument("--dir", type=Path, default=Path("/tmp/py-hamt-scale"))
    a.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a.add_argument("--sizes", default="0.25,1,4")
    a.add_argument("--keys", type=int, default=1_000_000)
    args = p.parse_args()
    if args.cmd == "hamt":
        print(json.dumps(asyncio.run(hamt_case(args.keys, args.cache_mb))))
    elif args.cmd == "dataset":
        print(json.dumps(asyncio.run(dataset_case(args.store, args.gb, args.dir / args.store))))
    else:
        results: dict[str, Any] = {
            "hamt": run_child(["hamt", "--keys", str(args.keys)]),
            "datasets": [],
        }
        print(json.dumps(results["hamt"]), file=sys.stderr)
        for gb in (float(x) for x in args.sizes.split(",")):
            for kind in ("local", "hamt", "sharded"):
                row = run_child(
                    ["dataset", "--store", kind, "--gb", str(gb), "--dir", str(args.dir)]
                )
                print(json.dumps(row), file=sys.stderr)
                results["datasets"].append(row)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(results, args.out / "scale.png")
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
