"""Publishing the bench dataset to an IPFS node: per-block add vs one CAR
import, and store-to-store copy (first run and re-run).

    python benchmarks/publish_paths.py --endpoints /path/to/endpoints.env

The dataset is ``shared/bench``'s: (1460, 180, 256) float32, 256 MiB in
1,920 chunks of 137 KiB (``--time-steps`` cuts it along time).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import ipfs_endpoints  # a sibling module: these run as scripts
import numpy as np
import pandas as pd
import xarray as xr

from py_hamt import HAMT, KuboCAS, LocalCAS, ZarrHAMTStore, copy_dag, export_car, import_car


def dataset(n_time: int) -> xr.Dataset:
    data = np.random.default_rng(0).standard_normal((n_time, 180, 256), dtype=np.float32)
    return xr.Dataset(
        {"temp": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": pd.date_range("2000-01-01", periods=n_time, freq="6h"),
            "lat": np.linspace(-89.5, 89.5, 180),
            "lon": np.arange(256) * (360.0 / 256),
        },
    )


ENCODING = {"temp": {"chunks": (73, 30, 16), "compressors": None}}


async def write(cas: Any, ds: xr.Dataset) -> Any:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    await asyncio.to_thread(
        ds.to_zarr, store=ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=ENCODING
    )
    await hamt.make_read_only()
    return hamt.root_node_id


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ds = dataset(args.time_steps)
    mib = ds["temp"].nbytes / 2**20
    out: dict[str, Any] = {"dataset_MiB": round(mib, 1)}
    kubo = {
        "rpc_base_url": args.rpc,
        "gateway_base_url": args.gateway,
        "concurrency": 32,
        "timeout": 120,
    }

    async with KuboCAS(**kubo) as node:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        root = await write(node, ds)
        out["per_block_add_s"] = round(time.perf_counter() - t0, 2)
        out["per_block_add_MBps"] = round(mib / out["per_block_add_s"], 1)
        out["root"] = str(root)

    ds2 = ds.assign(temp=ds["temp"] + 1)  # new bytes, so nothing is already on the node
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalCAS(Path(tmp) / "store")
        t0 = time.perf_counter()
        root2 = await write(local, ds2)
        t1 = time.perf_counter()
        buf = io.BytesIO()
        await export_car(local, root2, buf)
        t2 = time.perf_counter()
        async with KuboCAS(**kubo) as node:  # type: ignore[arg-type]
            await import_car(node, buf.getvalue())
        t3 = time.perf_counter()
        out["car_local_write_s"] = round(t1 - t0, 2)
        out["car_export_s"] = round(t2 - t1, 2)
        out["car_import_s"] = round(t3 - t2, 2)
        out["car_total_s"] = round(t3 - t0, 2)
        out["car_import_MBps"] = round(mib / (t3 - t2), 1)

        ds3 = ds.assign(temp=ds["temp"] + 2)
        root3 = await write(local, ds3)
        async with KuboCAS(**kubo) as node:  # type: ignore[arg-type]
            t0 = time.perf_counter()
            first = await copy_dag(local, node, root3)
            t1 = time.perf_counter()
            again = await copy_dag(local, node, root3)
            t2 = time.perf_counter()
        out["copy_first"] = {
            "s": round(t1 - t0, 2),
            "MBps": round(first.bytes_copied / 2**20 / (t1 - t0), 1),
            "copied": first.copied,
            "skipped": first.skipped,
        }
        out["copy_rerun"] = {
            "s": round(t2 - t1, 2),
            "copied": again.copied,
            "skipped": again.skipped,
            "blocks_per_s": round(again.skipped / (t2 - t1), 1),
        }
    return out


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ipfs_endpoints.add_arguments(p)
    p.add_argument("--time-steps", type=int, default=1460)
    args = p.parse_args()
    ipfs_endpoints.resolve(args)
    warnings.filterwarnings("ignore", message="Consolidated metadata")
    print(json.dumps(asyncio.run(main(args)), indent=2))


if __name__ == "__main__":
    cli()
