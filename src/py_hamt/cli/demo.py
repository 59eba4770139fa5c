"""``py-hamt demo``: write a climate dataset, commit, reopen, compare."""

from __future__ import annotations

import argparse
import asyncio
import time

import xarray as xr

from py_hamt import HAMT, InMemoryCAS, ZarrHAMTStore
from py_hamt.datasets import climate_dataset

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="write a sample climate dataset, print its root, read it back and compare",
        description=(
            "Builds a time x lat x lon dataset with three variables, writes it through "
            "ZarrHAMTStore into the embedded in-memory store, commits it, prints the root "
            "id, reopens it read-only from that id and checks it is identical."
        ),
    )
    p.add_argument("--time", type=int, default=96, help="time steps (default 96)")
    p.add_argument("--lat", type=int, default=90, help="latitudes (default 90)")
    p.add_argument("--lon", type=int, default=180, help="longitudes (default 180)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ds = climate_dataset(n_time=args.time, n_lat=args.lat, n_lon=args.lon)
    chunks = (min(24, args.time), min(45, args.lat), min(90, args.lon))
    encoding = {name: {"chunks": chunks} for name in ds.data_vars}
    mib = ds.nbytes / 2**20
    print(f"dataset: {dict(ds.sizes)}, variables {list(ds.data_vars)}, {mib:.1f} MiB")

    cas = InMemoryCAS()
    started = time.perf_counter()
    hamt = asyncio.run(HAMT.build(cas=cas, values_are_bytes=True))
    ds.to_zarr(
        store=ZarrHAMTStore(hamt, read_only=False), mode="w", zarr_format=3, encoding=encoding
    )
    asyncio.run(hamt.make_read_only())
    root = hamt.root_node_id
    wrote = time.perf_counter() - started
    shown = root.hex() if isinstance(root, bytes) else str(root)
    print(f"wrote {len(cas.store)} blocks in {wrote:.2f} s")
    print(f"root: {shown}")

    started = time.perf_counter()
    reader = asyncio.run(
        HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    )
    back = xr.open_zarr(store=ZarrHAMTStore(reader, read_only=True)).load()
    read = time.perf_counter() - started
    if not back.identical(ds):
        print("FAILED: the dataset read back differs from the one written")
        return 1
    print(f"read back in {read:.2f} s: identical to what was written")
    return 0
