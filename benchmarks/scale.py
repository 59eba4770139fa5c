"""Scale benchmarks: a million-key HAMT, ten million keys on LocalCAS, and
multi-GB datasets on disk.

Every case runs in its own subprocess, so its peak RSS is its own.

    python benchmarks/scale.py hamt --keys 1000000
    python benchmarks/scale.py raw --keys 10000000 --dir /tmp/scale-raw
    python benchmarks/scale.py dataset --store hamt --gb 4 --dir /tmp/scale
    python benchmarks/scale.py all --dir /tmp/scale --out benchmarks/results
    python benchmarks/scale.py plot --out benchmarks/results

``all`` runs the million-key case, the raw case at 1M, 3M and 10M keys
(``--raw-keys``) and every store at 0.25, 1 and 4 GB (unless
``--skip-datasets``), writes ``results/scale.json`` and draws
``results/scale.png`` (datasets) and ``results/scale_keys.png`` (cost per key
against key count); ``plot`` redraws both from ``scale.json``. Plots need
matplotlib (``pip install matplotlib``).

The raw case writes ``--keys`` zarr-like keys (``{var}/c/{a}/{b}/{c}`` for the
four variables t2m, u10, v10, tp) into a HAMT on a fsynced ``LocalCAS``, each
pointing (``set_pointer``) at one of 1,024 value blocks stored first, so the
write measures the trie and not 10M fsynced value files. It then reads a
random sample of 200,000 keys cold through a read-only HAMT with the default
caches (checking every value) and times ``len()``. Keys are made from their
index on the fly, so the benchmark itself holds no per-key memory and peak RSS
is the library's.

Datasets are float32 (time, 360, 360), written from dask arrays made chunk
by chunk (the source never sits in memory), chunks of (32, 90, 90) = 1 MiB,
uncompressed; read back as 16 time slices of 32 steps each.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

MiB = 2**20


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float | None:
    """The current RSS (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / MiB, 1)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    root = hamt.root_node_id
    del hamt
    ro = await HAMT.build(
        cas=cas,
        root_node_id=root,
        read_only=True,
        values_are_bytes=True,
        max_cache_bytes=cache_mb * MiB,
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
    out["read_cache_size_per_key"] = round(await ro.cache_size() / n, 1)
    out["peak_rss_mb"] = peak_rss_mb()
    del ro, store
    out.update(await cache_bytes_per_key(cas, root, n))
    return out


async def cache_bytes_per_key(cas: Any, root: Any, n: int) -> dict[str, Any]:
    """Bytes a read-only HAMT's caches hold per key once they hold every node.

    Measured with tracemalloc (Python allocations that are still live), in a
    step of its own after the timed phases, since tracemalloc slows everything:
    a read-only HAMT with a cache big enough for the whole tree (2 GiB, so
    nothing is evicted) walks every key; the bytes allocated by the walk and
    still held after it (and a ``gc.collect()``) are the decoded nodes in its
    cache. Also reports ``cache_size()``, the library's own estimate, and the
    bytes freed by ``cache_vacate()`` afterwards (a cross-check).
    """
    from py_hamt import HAMT

    gc.collect()
    tracemalloc.start()
    try:
        ro = await HAMT.build(
            cas=cas, root_node_id=root, read_only=True, values_are_bytes=True, max_cache_bytes=2**31
        )
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        counted = 0
        async for _ in ro.keys():
            counted += 1
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        size = await ro.cache_size()
        # Cross-check: dropping the cache frees (about) what the walk kept.
        await ro.cache_vacate()
        gc.collect()
        freed = after - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert counted == n
    return {
        "cache_bytes_per_key": round((after - before) / n, 1),
        "cache_bytes_freed_per_key": round(freed / n, 1),
        "cache_size_per_key": round(size / n, 1),
    }


# ------------------------------------------------------------ ten million keys
VARIABLES = ("t2m", "u10", "v10", "tp")
POOL = 1024
BATCH = 1000
SAMPLE = 200_000


def raw_key(i: int, per_var: int) -> str:
    """Key ``i`` of a reanalysis-like store: four variables in turn, each a
    (time, 100, 100) grid of chunks."""
    j = i % per_var
    return f"{VARIABLES[i // per_var]}/c/{j // 10_000}/{j // 100 % 100}/{j % 100}"


def pool_value(k: int) -> bytes:
    return f"value block {k:04d} ".encode() * 2


def dir_size(folder: Path) -> tuple[int, int]:
    """Bytes and files under ``folder``."""
    size = files = 0
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    size += entry.stat(follow_symlinks=False).st_size
                    files += 1
    return size, files


async def raw_case(
    n: int, folder: Path, buffer_mb: int, cache_mb: int | None, with_stats: bool
) -> dict[str, Any]:
    from py_hamt import HAMT, LocalCAS

    per_var = -(-n // len(VARIABLES))
    caches: dict[str, int] = {} if cache_mb is None else {"max_cache_bytes": cache_mb * MiB}
    out: dict[str, Any] = {
        "keys": n,
        "buffer_MiB": buffer_mb,
        "cache_MiB": cache_mb if cache_mb is not None else "default",
        "start_rss_mb": rss_mb(),
    }
    shutil.rmtree(folder, ignore_errors=True)
    cas = LocalCAS(folder)  # fsync=True, the default

    t0 = time.perf_counter()
    pool = [(await cas.put(pool_value(k), "raw")).id for k in range(POOL)]
    out["pool_put_s"] = round(time.perf_counter() - t0, 2)

    hamt = await HAMT.build(
        cas=cas, values_are_bytes=True, max_buffer_bytes=buffer_mb * MiB, **caches
    )
    step = max(BATCH, n // 10 // BATCH * BATCH)
    t0 = last_t = time.perf_counter()
    last_i = 0
    for start in range(0, n, BATCH):
        end = min(start + BATCH, n)
        await asyncio.gather(
            *(hamt.set_pointer(raw_key(i, per_var), pool[i % POOL]) for i in range(start, end))
        )
        if end % step == 0 or end == n:
            now = time.perf_counter()
            log(
                f"raw {n:,}: {end:,} keys set ({100 * end / n:.0f}%), "
                f"{end / (now - t0):,.0f} sets/s overall, "
                f"{(end - last_i) / (now - last_t):,.0f} sets/s last step, RSS {rss_mb()} MiB"
            )
            last_t, last_i = now, end
    t1 = time.perf_counter()
    await hamt.make_read_only()
    t2 = time.perf_counter()
    root = hamt.root_node_id
    out["set_s"] = round(t1 - t0, 2)
    out["commit_s"] = round(t2 - t1, 2)
    out["write_s"] = round(t2 - t0, 2)
    out["sets_per_s"] = round(n / (t2 - t0))
    out["us_per_set"] = round(1e6 * (t2 - t0) / n, 2)
    out["write_peak_rss_mb"] = peak_rss_mb()
    log(f"raw {n:,}: committed in {out['commit_s']} s; {out['sets_per_s']:,} sets/s")
    del hamt
    gc.collect()
    out["rss_after_write_mb"] = rss_mb()

    # Random cold gets: a fresh store object and a read-only HAMT, default caches.
    reader = LocalCAS(folder)
    ro = await HAMT.build(
        cas=reader, root_node_id=root, read_only=True, values_are_bytes=True, **caches
    )
    sample = random.Random(0).sample(range(n), min(SAMPLE, n))
    expected = [pool_value(k) for k in range(POOL)]
    wrong = 0
    t0 = time.perf_counter()
    for start in range(0, len(sample), BATCH):
        part = sample[start : start + BATCH]
        got = await asyncio.gather(*(ro.get(raw_key(i, per_var)) for i in part))
        wrong += sum(v != expected[i % POOL] for i, v in zip(part, got, strict=True))
    get_s = time.perf_counter() - t0
    if wrong:
        raise SystemExit(f"raw {n:,}: {wrong} of {len(sample)} gets returned the wrong value")
    out["gets"] = len(sample)
    out["get_s"] = round(get_s, 2)
    out["gets_per_s"] = round(len(sample) / get_s)
    out["us_per_get"] = round(1e6 * get_s / len(sample), 2)
    out["cache_size_per_key"] = round(await ro.cache_size() / n, 1)
    out["cache_size_mb"] = round(await ro.cache_size() / MiB, 1)
    log(f"raw {n:,}: {out['gets_per_s']:,} random cold gets/s")
    del ro
    gc.collect()

    ro = await HAMT.build(
        cas=LocalCAS(folder), root_node_id=root, read_only=True, values_are_bytes=True, **caches
    )
    t0 = time.perf_counter()
    counted = await ro.len()
    len_s = time.perf_counter() - t0
    assert counted == n, (counted, n)
    out["len_s"] = round(len_s, 2)
    out["us_per_key_len"] = round(1e6 * len_s / n, 3)
    log(f"raw {n:,}: len() in {out['len_s']} s")
    if with_stats:
        t0 = time.perf_counter()
        stats = await ro.stats()
        out["stats_s"] = round(time.perf_counter() - t0, 2)
        out["depth"], out["nodes"] = stats["depth"], stats["nodes"]
        out["node_bytes"] = stats["node_bytes"]
    del ro
    gc.collect()

    size, files = await asyncio.to_thread(dir_size, folder)
    out["disk_MiB"] = round(size / MiB, 1)
    out["disk_files"] = files
    out["disk_bytes_per_key"] = round(size / n, 1)
    out["peak_rss_mb"] = peak_rss_mb()
    out["peak_rss_bytes_per_key"] = round(out["peak_rss_mb"] * MiB / n, 1)
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
    """Run one case in its own process; its progress goes to our stderr."""
    done = subprocess.run(
        [sys.executable, __file__, *args, "--json"], stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{args} failed (exit {done.returncode}); its stderr is above")
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
    plt.close(fig)


def key_label(n: float) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"


def plot_keys(results: dict[str, Any], path: Path) -> None:
    """Cost per key against key count, raw HAMT on LocalCAS: time per
    operation on the left, bytes per key on the right (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    rows = sorted(results["raw"], key=lambda r: r["keys"])
    n = [r["keys"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6))
    series = (
        (left, "us_per_set", "set (commit included)", "C0", 10.0),
        (left, "us_per_get", "random cold get (default caches)", "C1", 1e6 / 30_000),
        (left, "us_per_key_len", "len(), per key", "C2", None),
        (right, "peak_rss_bytes_per_key", "peak RSS / keys", "C3", None),
        (right, "cache_size_per_key", "read cache after gets (cache_size())", "C4", None),
        (right, "disk_bytes_per_key", "on disk", "C5", None),
    )
    for ax, field, label, color, target in series:
        ys = [(k, r[field]) for k, r in zip(n, rows, strict=True) if r.get(field)]
        if ys:
            ax.plot(*zip(*ys, strict=True), "o-", color=color, label=label)
            for x, y in ys:
                ax.annotate(
                    f"{y:,.0f}" if y >= 100 else f"{y:.3g}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 5),
                    fontsize=8,
                    color=color,
                )
        if target is not None:
            ax.axhline(target, color=color, ls=":", lw=1, label=f"target: {target:.3g} µs")
    # The 1 GB RSS target at the largest size, as bytes per key.
    big = max(n, default=0)
    if big >= 1_000_000:
        right.plot(
            [big],
            [2**30 / big],
            "v",
            color="C3",
            ms=9,
            fillstyle="none",
            label=f"target: 1 GB peak RSS at {key_label(big)} keys",
        )
    hamt = results.get("hamt")
    hamt_rows = hamt if isinstance(hamt, list) else [hamt] if hamt else []
    full = [r for r in hamt_rows if r.get("cache_bytes_per_key")]
    if full:
        r = full[-1]
        right.plot(
            [r["keys"]],
            [r["cache_bytes_per_key"]],
            "s",
            color="C6",
            label="whole tree cached (tracemalloc, hamt case)",
        )
        right.axhline(80, color="C6", ls=":", lw=1, label="target: 80 B/key cached")
    left.set(title="time per operation", xlabel="keys", ylabel="µs")
    right.set(title="memory and disk per key", xlabel="keys", ylabel="bytes per key")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(n))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: key_label(x)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,g}"))
        ax.yaxis.set_minor_formatter(
            FuncFormatter(lambda y, _: f"{y:,g}" if f"{y:e}"[0] in "25" else "")
        )
        if n:
            ax.set_xlim(min(n) / 1.4, max(n) * 1.4)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.suptitle("raw HAMT on LocalCAS (fsync): cost against key count (2-core machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results: dict[str, Any], out: Path) -> None:
    if results.get("datasets"):
        plot(results, out / "scale.png")
    if results.get("raw"):
        plot_keys(results, out / "scale_keys.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hamt", help="a million keys through ZarrHAMTStore vs MemoryStore")
    h.add_argument("--keys", type=int, default=1_000_000)
    h.add_argument("--cache-mb", type=int, default=128, help="the read cache (default 128)")
    h.add_argument("--json", action="store_true")
    r = sub.add_parser("raw", help="raw HAMT on LocalCAS: write, random cold gets, len()")
    r.add_argument("--keys", type=int, default=10_000_000)
    r.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp/py-hamt-scale"),
        help="the store goes to DIR/raw, removed before and after (unless --keep)",
    )
    r.add_argument(
        "--buffer-mb", type=int, default=256, help="max_buffer_bytes (default 256, the library's)"
    )
    r.add_argument(
        "--cache-mb",
        type=int,
        default=None,
        help="max_cache_bytes of the writer and the readers (default: the library's)",
    )
    r.add_argument("--stats", action="store_true", help="also walk the trie for depth and nodes")
    r.add_argument("--keep", action="store_true", help="keep the store on disk")
    r.add_argument("--json", action="store_true")
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
    a.add_argument(
        "--raw-keys",
        default="1000000,3000000,10000000",
        help="key counts of the raw case ('' skips it)",
    )
    a.add_argument(
        "--buffer-mb", type=int, default=256, help="the raw case's max_buffer_bytes (default 256)"
    )
    a.add_argument("--raw-stats", action="store_true", help="the raw case with --stats")
    a.add_argument(
        "--skip-datasets",
        action="store_true",
        help="skip the datasets; rows already in OUT/scale.json are kept",
    )
    g = sub.add_parser("plot", help="redraw the figures from OUT/scale.json")
    g.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    if args.cmd == "hamt":
        print(json.dumps(asyncio.run(hamt_case(args.keys, args.cache_mb))))
    elif args.cmd == "raw":
        folder = args.dir / "raw"
        try:
            row = asyncio.run(
                raw_case(args.keys, folder, args.buffer_mb, args.cache_mb, args.stats)
            )
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        print(json.dumps(row))
    elif args.cmd == "dataset":
        print(json.dumps(asyncio.run(dataset_case(args.store, args.gb, args.dir / args.store))))
    elif args.cmd == "plot":
        draw(json.loads((args.out / "scale.json").read_text()), args.out)
    else:
        results: dict[str, Any] = {
            "hamt": [run_child(["hamt", "--keys", str(args.keys)])],
            "raw": [],
            "datasets": [],
        }
        log(json.dumps(results["hamt"][0]))
        for n in (int(float(x)) for x in args.raw_keys.split(",") if x.strip()):
            extra = ["--stats"] if args.raw_stats else []
            row = run_child(
                [
                    "raw",
                    "--keys",
                    str(n),
                    "--dir",
                    str(args.dir),
                    "--buffer-mb",
                    str(args.buffer_mb),
                    *extra,
                ]
            )
            log(json.dumps(row))
            results["raw"].append(row)
        previous = args.out / "scale.json"
        if args.skip_datasets:
            if previous.exists():
                results["datasets"] = json.loads(previous.read_text()).get("datasets", [])
                log(f"datasets skipped; {len(results['datasets'])} rows kept from {previous}")
        else:
            for gb in (float(x) for x in args.sizes.split(",")):
                for kind in ("local", "hamt", "sharded"):
                    row = run_child(
                        ["dataset", "--store", kind, "--gb", str(gb), "--dir", str(args.dir)]
                    )
                    log(json.dumps(row))
                    results["datasets"].append(row)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
        if args.skip_datasets:
            # scale.png (datasets) is left as it is.
            if results["raw"]:
                plot_keys(results, args.out / "scale_keys.png")
        else:
            draw(results, args.out)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
