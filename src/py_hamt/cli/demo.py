"""``py-hamt demo``: write a climate dataset to the local store, commit,
reopen it from its root, compare; on later runs, first read back what the
previous run left there."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from py_hamt.cli.options import positive_int
from py_hamt.cli.progress_bar import ProgressBar

if TYPE_CHECKING:
    import xarray as xr

    from py_hamt.cas.local import LocalCAS

__all__ = ["DEFAULT_DIR", "add_parser", "run"]

DEFAULT_DIR = Path("py-hamt-data")
REF = "demo"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="write a sample climate dataset to the local store, print its root, read it back",
        description=(
            "Builds a time x lat x lon dataset with three variables, writes it through "
            "ZarrHAMTStore into the durable local store in --dir, commits it, prints the "
            "root CID, reopens it read-only from that root and checks it is identical. "
            "The root is kept as ref 'demo': the next run first reads that back."
        ),
    )
    p.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"store directory (default {DEFAULT_DIR})"
    )
    p.add_argument("--time", type=positive_int, default=96, help="time steps (default 96)")
    p.add_argument("--lat", type=positive_int, default=90, help="latitudes (default 90)")
    p.add_argument("--lon", type=positive_int, default=180, help="longitudes (default 180)")
    p.set_defaults(func=run)


async def _read(cas: LocalCAS, root: object) -> xr.Dataset:
    import xarray as xr

    from py_hamt.stores.hamt_store import ZarrHAMTStore
    from py_hamt.trie.hamt import HAMT

    hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    store = ZarrHAMTStore(hamt, read_only=True)
    return await asyncio.to_thread(lambda: xr.open_zarr(store=store).load())


async def run(args: argparse.Namespace) -> int:
    from py_hamt.cas.local import LocalCAS
    from py_hamt.datasets import climate_dataset
    from py_hamt.jobs.publish import publish_dataset

    ds = climate_dataset(n_time=args.time, n_lat=args.lat, n_lon=args.lon)
    chunks = (min(24, args.time), min(45, args.lat), min(90, args.lon))
    print(f"dataset: {dict(ds.sizes)}, variables {list(ds.data_vars)}, {ds.nbytes / 2**20:.1f} MiB")

    cas = LocalCAS(args.dir)
    cas.cleanup()
    earlier = await cas.get_ref(REF)
    if earlier is not None:
        back = await _read(cas, earlier)
        verdict = "identical" if back.identical(ds) else "a different dataset (other sizes)"
        print(f"an earlier run left {earlier} in {args.dir}: read back, {verdict}")

    before = _block_count(cas)
    started = time.perf_counter()
    bar = ProgressBar("writing")
    try:
        done = await publish_dataset(
            cas, ds, chunks=dict.fromkeys(map(str, ds.data_vars), chunks), progress=bar
        )
    finally:
        bar.close()
    digest = f"  ({done.root.digest})" if done.root is not None else ""
    print(f"root: {done.root_cid}{digest}", flush=True)
    await cas.set_ref(REF, done.root_cid)
    new_blocks = _block_count(cas) - before
    print(f"wrote {new_blocks} new blocks to {args.dir} in {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    back = await _read(cas, done.root_cid)
    if not back.identical(ds):
        print("FAILED: the dataset read back differs from the one written")
        return 1
    print(f"read back in {time.perf_counter() - started:.2f} s: identical to what was written")
    return 0


def _block_count(cas: LocalCAS) -> int:
    """Blocks stored as files of their own and in packs."""
    return len(cas.block_files()) + len(cas.packed_blocks())
