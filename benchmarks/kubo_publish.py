"""Publish the bench dataset to an IPFS node through ZarrHAMTStore + KuboCAS.

Reports write MB/s and blocks/s (commit included), the commit's share of the
write, and a cold read's MB/s through the gateway (a fresh KuboCAS and HAMT).

    python benchmarks/kubo_publish.py --rpc http://127.0.0.1:5001 \\
        --gateway http://127.0.0.1:8080 [--time-steps 365]

With ``--endpoints FILE`` the URLs come from ``shared/ipfs-node``'s
``endpoints.env``. The default shape is (365, 180, 256) float32: 64 MiB in
480 chunks of 137 KiB, the bench dataset cut to a quarter along time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import warnings
from typing import Any

import ipfs_endpoints  # a sibling module: these run as scripts
import numpy as np
import pandas as pd
import xarray as xr

from py_hamt import HAMT, KuboCAS, ZarrHAMTStore


class CountingKubo(KuboCAS):
    """KuboCAS that counts the blocks and bytes it saves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocks = 0
        self.bytes = 0

    async def _add(self, data: bytes, codec: Any, digest: bytes) -> Any:
        answer = await super()._add(data, codec, digest)
        self.blocks += 1
        self.bytes += len(data)
        return answer


def dataset(n_time: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n_time, 180, 256), dtype=np.float32)
    return xr.Dataset(
        {"temp": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": pd.date_range("2000-01-01", periods=n_time, freq="6h"),
            "lat": np.linspace(-89.5, 89.5, 180),
            "lon": np.arange(256) * (360.0 / 256),
        },
    )


async def publish(args: argparse.Namespace) -> dict[str, Any]:
    ds = dataset(args.time_steps)
    mib = ds["temp"].nbytes / 2**20
    enc = {"temp": {"chunks": (73, 30, 16), "compressors": None}}
    async with CountingKubo(
        rpc_base_url=args.rpc, gateway_base_url=args.gateway, concurrency=args.concurrency
    ) as cas:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        t0 = time.perf_counter()
        await asyncio.to_thread(
            ds.to_zarr, store=ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=enc
        )
        t1 = time.perf_counter()
        await hamt.make_read_only()
        t2 = time.perf_counter()
        root = hamt.root_node_id
        blocks, sent = cas.blocks, cas.bytes

    async with KuboCAS(gateway_base_url=args.gateway, concurrency=args.concurrency) as reader:
        t3 = time.perf_counter()
        ro = await HAMT.build(cas=reader, root_node_id=root, read_only=True, values_are_bytes=True)
        back = await asyncio.to_thread(
            lambda: xr.open_zarr(ZarrHAMTStore(ro, read_only=True), chunks=None)["temp"].load()
        )
        t4 = time.perf_counter()
    if not np.array_equal(back.values, ds["temp"].values):
        raise SystemExit("read-back mismatch")
    write_s = t2 - t0
    return {
        "root": str(root),
        "dataset_MiB": round(mib, 1),
        "blocks": blocks,
        "bytes_sent_MiB": round(sent / 2**20, 1),
        "to_zarr_s": round(t1 - t0, 2),
        "commit_s": round(t2 - t1, 2),
        "write_total_s": round(write_s, 2),
        "write_MBps": round(mib / write_s, 2),
        "write_blocks_per_s": round(blocks / write_s, 1),
        "commit_share": round((t2 - t1) / write_s, 3),
        "cold_read_s": round(t4 - t3, 2),
        "cold_read_MBps": round(mib / (t4 - t3), 2),
        "concurrency": args.concurrency,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ipfs_endpoints.add_arguments(p)
    p.add_argument("--time-steps", type=int, default=365)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    ipfs_endpoints.resolve(args)
    warnings.filterwarnings("ignore", message="Consolidated metadata")
    print(json.dumps(asyncio.run(publish(args)), indent=2))


if __name__ == "__main__":
    main()
