"""Local stores compared: LocalCAS (HAMT and sharded) against icechunk and zarr.

    python benchmarks/local_store.py                 # ~6 min; writes results/local_store.json
    python benchmarks/local_store.py --shape 146,180,256 --reps 2 --out ''   # a quick run

The dataset is ``shared/bench``'s: float32 ``temp(1460, 180, 256)``, 256 MiB in
1,920 uncompressed chunks of (73, 30, 16) (137 KiB each). Each store lives in
a process of its own, in a directory of its own:

- ``hamt``: ``ZarrHAMTStore`` over ``LocalCAS`` (fsync on, the default);
  commit is ``await hamt.make_read_only()``.
- ``sharded``: ``ShardedZarrStore`` over ``LocalCAS``; commit is ``flush()``.
- ``icechunk``: icechunk's ``local_filesystem_storage`` (``pip install
  icechunk``; not a py_hamt dependency); commit is ``session.commit()``.
- ``zarr_local``: ``zarr.storage.LocalStore`` (no commit).

The parent drives the store processes in turn, one call at a time, and
rotates their order every repetition, so that a load that comes and goes on
a shared machine falls on all of them alike. The dataset is written
``--write-reps`` times per store (fresh directories, all kept until the end:
deleting files makes the next file creations slower on ext4 without a
journal) to time the commit; the last copy is read. Reads: one time-series
point (20 chunks), one time slice (96 chunks) and the full array, through
``xr.open_zarr(..., chunks=None)`` on a freshly opened store, each verified
against the data written. ``open`` is making the store and ``open_zarr``;
``read`` the ``.load()``. Cold reads empty the page cache before every
repetition (``sync; echo 3 > /proc/sys/vm/drop_caches`` when permitted, which
drops cached inodes and directories too; otherwise
``posix_fadvise(POSIX_FADV_DONTNEED)`` on every file under the store); warm
reads follow one unmeasured read. Medians of ``--reps``; ratios to icechunk
(``ratios_to_icechunk``) are of medians, below 1 meaning faster than
icechunk. stdout carries the one JSON object; progress goes to stderr.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

STORES = ("hamt", "sharded", "icechunk", "zarr_local")
READS = ("point", "slice", "full")
RESULTS = Path(__file__).resolve().parent / "results" / "local_store.json"


def log(*parts: object) -> None:
    print("[local_store]", *parts, file=sys.stderr, flush=True)


def parse_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


# ------------------------------------------------------------------ the cache
def drop_caches_permitted() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    except OSError:
        return False
    return True


def drop_cache(method: str, directory: Path) -> None:
    """Empty the page cache of ``directory``'s files (``method`` as chosen)."""
    os.sync()
    if method == "drop_caches":
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return
    for folder, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# -------------------------------------------------------------------- dataset
def dataset(shape: tuple[int, ...]) -> Any:
    import numpy as np
    import pandas as pd
    import xarray as xr

    nt, ny, nx = shape
    data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return xr.Dataset(
        {"temp": (("time", "lat", "lon"), data, {"units": "K", "long_name": "bench"})},
        coords={
            "time": pd.date_range("2000-01-01", periods=nt, freq="6h"),
            "lat": ("lat", np.linspace(-89.5, 89.5, ny), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(nx) * (360.0 / nx), {"units": "degrees_east"}),
        },
        attrs={"description": "py-hamt API benchmark dataset"},
    )


# ------------------------------------------------------------------- backends
class Backend:
    """Writes the dataset into a directory, commits, and opens it to read."""

    consolidated: bool | None = None

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def new_write(self, path: Path) -> Any:
        raise NotImplementedError

    def commit(self, store: Any) -> Any:
        """Commit what was written; return what :meth:`open_read` needs."""
        raise NotImplementedError

    def open_read(self, path: Path, handle: Any) -> Any:
        raise NotImplementedError


class HamtBackend(Backend):
    def new_write(self, path: Path) -> Any:
        from py_hamt import HAMT, LocalCAS, ZarrHAMTStore

        hamt = asyncio.run(HAMT.build(cas=LocalCAS(path), values_are_bytes=True))
        return ZarrHAMTStore(hamt)

    def commit(self, store: Any) -> Any:
        asyncio.run(store.hamt.make_read_only())
        return store.hamt.root_node_id

    def open_read(self, path: Path, handle: Any) -> Any:
        from py_hamt import HAMT, LocalCAS, ZarrHAMTStore

        hamt = asyncio.run(
            HAMT.build(
                cas=LocalCAS(path), root_node_id=handle, read_only=True, values_are_bytes=True
            )
        )
        return ZarrHAMTStore(hamt, read_only=True)


class ShardedBackend(Backend):
    def new_write(self, path: Path) -> Any:
        from py_hamt import LocalCAS, ShardedZarrStore

        return asyncio.run(
            ShardedZarrStore.open(
                cas=LocalCAS(path),
                read_only=False,
                array_shape=self.args.shape,
                chunk_shape=self.args.chunks,
                chunks_per_shard=self.args.chunks_per_shard,
            )
        )

    def commit(self, store: Any) -> Any:
        return asyncio.run(store.flush())

    def open_read(self, path: Path, handle: Any) -> Any:
        from py_hamt import LocalCAS, ShardedZarrStore

        return asyncio.run(
            ShardedZarrStore.open(cas=LocalCAS(path), read_only=True, root_cid=handle)
        )


class IcechunkBackend(Backend):
    consolidated = False

    def new_write(self, path: Path) -> Any:
        import icechunk

        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
        return repo.writable_session("main")

    def commit(self, store: Any) -> Any:
        return store.commit("bench")

    def open_read(self, path: Path, handle: Any) -> Any:
        import icechunk

        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
        return repo.readonly_session(branch="main").store


class ZarrLocalBackend(Backend):
    def new_write(self, path: Path) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(str(path))

    def commit(self, store: Any) -> Any:
        return None

    def open_read(self, path: Path, handle: Any) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(str(path), read_only=True)


BACKENDS: dict[str, type[Backend]] = {
    "hamt": HamtBackend,
    "sharded": ShardedBackend,
    "icechunk": IcechunkBackend,
    "zarr_local": ZarrLocalBackend,
}


def summary(runs: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(runs), 6),
        "best_s": round(min(runs), 6),
        "runs_s": [round(r, 6) for r in runs],
    }


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------- worker
class Worker:
    """One store, in a process of its own, driven by the parent."""

    def __init__(self, name: str, opts: dict[str, Any]) -> None:
        import numpy as np

        if name == "icechunk":
            import icechunk

            icechunk.set_logs_filter("error")  # its warnings go to stdout
        self.args = argparse.Namespace(**opts)
        self.name = name
        self.backend = BACKENDS[name](self.args)
        self.ds = dataset(self.args.shape)
        self.data = self.ds["temp"].values
        self.base = Path(self.args.dir) / name
        self.base.mkdir(parents=True)
        self.path = self.base
        self.handle: Any = None
        iy, ix = min(10, self.data.shape[1] - 1), min(10, self.data.shape[2] - 1)
        data = self.data
        self.reads: dict[str, tuple[Callable[[Any], Any], Callable[[Any], bool]]] = {
            "point": (
                lambda d: d["temp"].isel(lat=iy, lon=ix).load(),
                lambda o: bool(np.array_equal(o.values, data[:, iy, ix])),
            ),
            "slice": (
                lambda d: d["temp"].isel(time=0).load(),
                lambda o: bool(np.array_equal(o.values, data[0])),
            ),
            "full": (
                lambda d: d["temp"].load(),
                lambda o: bool(np.array_equal(o.values, data)),
            ),
        }

    def write(self, rep: int) -> tuple[float, float, str]:
        """Write the dataset into a fresh directory and commit it; the
        directory read from now on. Earlier copies stay (see the docstring)."""
        self.path = self.base / f"w{rep}"
        store = self.backend.new_write(self.path)
        target = store.store if self.name == "icechunk" else store
        t0 = time.perf_counter()
        with quiet():
            self.ds.to_zarr(
                store=target,
                mode="w",
                zarr_format=3,
                encoding={"temp": {"chunks": self.args.chunks, "compressors": None}},
                consolidated=self.backend.consolidated,
            )
        t1 = time.perf_counter()
        self.handle = self.backend.commit(store)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, str(self.path)

    def read(self, kind: str) -> tuple[float, float, bool]:
        """Open the store afresh and read ``kind``: (open_s, read_s, verified)."""
        import xarray as xr

        fn, check = self.reads[kind]
        t0 = time.perf_counter()
        with quiet():
            store = self.backend.open_read(self.path, self.handle)
            opened = xr.open_zarr(store, chunks=None, consolidated=self.backend.consolidated)
        t1 = time.perf_counter()
        with quiet():
            out = fn(opened)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, check(out)

    def info(self) -> dict[str, int]:
        files = sum(len(f) for _, _, f in os.walk(self.path))
        size = sum(
            os.path.getsize(os.path.join(folder, f))
            for folder, _, names in os.walk(self.path)
            for f in names
        )
        return {"files": files, "bytes": size}


def serve(conn: Connection, name: str, opts: dict[str, Any]) -> None:
    """A worker process: answer the parent's calls until told to stop."""
    try:
        worker: Worker | None = Worker(name, opts)
        conn.send(("ok", None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        worker = None
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    while worker is not None:
        method, *params = conn.recv()
        if method == "stop":
            break
        try:
            conn.send(("ok", getattr(worker, method)(*params)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


# --------------------------------------------------------------------- parent
def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    ref = results.get("icechunk")
    out: dict[str, dict[str, float]] = {}
    if ref is None:
        return out
    for name, res in results.items():
        if name == "icechunk" or "error" in res:
            continue
        row: dict[str, float] = {}
        if res["commit"] and ref["commit"]:
            row["commit"] = round(res["commit"]["median_s"] / ref["commit"]["median_s"], 3)
        for kind in READS:
            for cache in ("cold", "warm"):
                key = f"{kind}_{cache}"
                row[f"{key}_read"] = round(
                    res[key]["read"]["median_s"] / ref[key]["read"]["median_s"], 3
                )
                row[f"{key}_open_plus_read"] = round(
                    res[key]["open_plus_read_median_s"] / ref[key]["open_plus_read_median_s"], 3
                )
        out[name] = row
    return out


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("py-hamt", "zarr", "xarray", "numpy", "icechunk", "blake3"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


class Pool:
    """The store processes; calls go to one at a time."""

    def __init__(self, names: list[str], opts: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs: dict[str, tuple[BaseProcess, Connection]] = {}
        self.errors: dict[str, str] = {}
        for name in names:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(theirs, name, opts), daemon=True)
            proc.start()
            self.procs[name] = (proc, mine)
        for name in names:
            status, detail = self.procs[name][1].recv()
            if status != "ok":
                self.fail(name, detail)

    def live(self, rep: int = 0) -> list[str]:
        """The stores still running, rotated by ``rep`` (so none always goes first)."""
        names = [n for n in self.procs if n not in self.errors]
        k = rep % len(names) if names else 0
        return names[k:] + names[:k]

    def fail(self, name: str, detail: str) -> None:
        log(f"{name}: {detail}")
        self.errors[name] = detail

    def call(self, name: str, method: str, *params: Any) -> Any:
        conn = self.procs[name][1]
        conn.send((method, *params))
        status, result = conn.recv()
        if status != "ok":
            self.fail(name, f"{method}: {result}")
            return None
        return result

    def close(self) -> None:
        for proc, conn in self.procs.values():
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            proc.join(timeout=30)


def run(args: argparse.Namespace, method: str, parent: Path) -> dict[str, dict[str, Any]]:
    names = args.stores.split(",")
    opts = {
        "shape": args.shape,
        "chunks": args.chunks,
        "chunks_per_shard": args.chunks_per_shard,
        "dir": str(parent),
    }
    pool = Pool(names, opts)
    writes: dict[str, list[float]] = {n: [] for n in names}
    commits: dict[str, list[float]] = {n: [] for n in names}
    paths: dict[str, Path] = {}
    timings: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    verified = dict.fromkeys(names, True)
    try:
        for rep in range(args.write_reps):
            for name in pool.live(rep):
                got = pool.call(name, "write", rep)
                if got is not None:
                    writes[name].append(got[0])
                    commits[name].append(got[1])
                    paths[name] = Path(got[2])
                    log(f"{name}: write {got[0]:.2f} s, commit {got[1] * 1000:.1f} ms")
        for kind in READS:
            for cache in ("cold", "warm"):
                for name in pool.live():  # unmeasured: warms libraries and cache
                    pool.call(name, "read", kind)
                for rep in range(args.reps):
                    for name in pool.live(rep):
                        if cache == "cold":
                            drop_cache(method, paths[name])
                        got = pool.call(name, "read", kind)
                        if got is not None:
                            timings.setdefault((name, kind, cache), []).append(got[:2])
                            verified[name] = verified[name] and got[2]
                for name in pool.live():
                    runs = timings.get((name, kind, cache), [])
                    if runs:
                        log(
                            f"{name}: {kind} {cache}: read "
                            f"{statistics.median(r for _, r in runs) * 1000:.1f} ms"
                        )
        info = {name: pool.call(name, "info") for name in pool.live()}
    finally:
        pool.close()

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in pool.errors:
            results[name] = {"error": pool.errors[name]}
            continue
        res: dict[str, Any] = {
            **(info.get(name) or {}),
            "write": summary(writes[name]),
            "commit": summary(commits[name]) if name != "zarr_local" else None,
            "verified": verified[name],
        }
        for kind in READS:
            for cache in ("cold", "warm"):
                runs = timings[(name, kind, cache)]
                res[f"{kind}_{cache}"] = {
                    "open": summary([o for o, _ in runs]),
                    "read": summary([r for _, r in runs]),
                    "open_plus_read_median_s": round(statistics.median(o + r for o, r in runs), 6),
                }
        results[name] = res
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stores", default=",".join(STORES), help="comma list of " + ",".join(STORES))
    p.add_argument("--shape", type=parse_tuple, default=(1460, 180, 256))
    p.add_argument("--chunks", type=parse_tuple, default=(73, 30, 16))
    p.add_argument("--chunks-per-shard", type=int, default=256)
    p.add_argument("--reps", type=int, default=5, help="repetitions of each read (median)")
    p.add_argument("--write-reps", type=int, default=3, help="writes, to time the commit")
    p.add_argument("--dir", default=None, help="parent directory for the stores (a temp dir)")
    p.add_argument(
        "--cold",
        choices=("auto", "drop_caches", "fadvise"),
        default="auto",
        help="how to empty the page cache (auto: drop_caches when permitted)",
    )
    p.add_argument("--out", default=str(RESULTS), help="also write the JSON here ('' for no)")
    args = p.parse_args()

    method = args.cold
    if method == "auto":
        method = "drop_caches" if drop_caches_permitted() else "fadvise"
    parent = Path(tempfile.mkdtemp(prefix="local_store_", dir=args.dir))
    try:
        results = run(args, method, parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)

    nt, ny, nx = args.shape
    ct, cy, cx = args.chunks
    out = {
        "benchmark": "benchmarks/local_store.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "versions": versions(),
        "dataset": {
            "shape": list(args.shape),
            "chunks": list(args.chunks),
            "dtype": "float32",
            "compressors": None,
            "MiB": round(nt * ny * nx * 4 / 2**20, 1),
            "n_chunks": -(-nt // ct) * -(-ny // cy) * -(-nx // cx),
            "chunks_per_shard": args.chunks_per_shard,
        },
        "cold_cache_method": method,
        "reps": args.reps,
        "write_reps": args.write_reps,
        "stat": "median of reps; ratios are median / icechunk's median",
        "stores": results,
        "ratios_to_icechunk": ratios(results),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
