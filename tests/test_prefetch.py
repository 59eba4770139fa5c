"""Reading a dataset's small arrays ahead when its consolidated metadata is
first read (fewer round trips over a gateway)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import numpy as np
import pytest
import xarray as xr
from multiformats import CID

from py_hamt import HAMT, MissingBlockError, ShardedZarrStore, ZarrHAMTStore
from py_hamt.stores.prefetch import Prefetcher
from tests.conftest import CIDCAS


def dataset() -> xr.Dataset:
    return xr.Dataset(
        {
            "temp": (
                ("time", "lat", "lon"),
                np.arange(40 * 6 * 8, dtype="float32").reshape(40, 6, 8),
            )
        },
        coords={"time": np.arange(40), "lat": np.linspace(-5, 5, 6), "lon": np.linspace(0, 7, 8)},
    )


ENC = {"temp": {"chunks": (10, 6, 8)}}


async def hamt_store(cas: CIDCAS) -> ZarrHAMTStore:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    await asyncio.to_thread(
        dataset().to_zarr, ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=ENC
    )
    await hamt.make_read_only()
    return ZarrHAMTStore(hamt, read_only=True)


async def test_opening_reads_the_coordinates_ahead_all_at_once() -> None:
    store = await hamt_store(CIDCAS())
    ds = await asyncio.to_thread(xr.open_zarr, store, chunks=None)
    assert store._prefetch is not None
    prefetcher = store._prefetch[1]
    # time, lat and lon (a chunk each) and temp's 4 chunks: all under 1 MiB.
    assert prefetcher.started == 7
    assert prefetcher.served >= 3
    xr.testing.assert_identical(ds.load(), dataset())


async def test_the_sharded_store_prefetches_too() -> None:
    cas = CIDCAS()
    writer = await ShardedZarrStore.open(cas, False, chunks_per_shard=4)
    await asyncio.to_thread(dataset().to_zarr, writer, mode="w", zarr_format=3, encoding=ENC)
    store = await ShardedZarrStore.open(cas, True, await writer.flush())
    ds = await asyncio.to_thread(xr.open_zarr, store, chunks=None)
    prefetcher = store._session.prefetcher
    assert prefetcher is not None
    assert (prefetcher.started, prefetcher.served >= 3) == (7, True)
    xr.testing.assert_identical(ds.load(), dataset())


async def test_a_failed_prefetch_leaves_the_error_to_the_real_read() -> None:
    cas = CIDCAS()
    store = await hamt_store(cas)
    lat = await store.hamt.get_pointer("lat/c/0")
    del cas.blocks[cast(CID, lat)]
    with pytest.raises(MissingBlockError, match="lat/c/0"):
        await asyncio.to_thread(xr.open_zarr, store, chunks=None)


async def test_only_small_regular_arrays_within_the_budget_are_planned() -> None:
    asked: list[str] = []

    async def fetch(key: str) -> bytes | None:
        asked.append(key)
        return b"x"

    def array(shape: list[int], chunks: list[int], dtype: str = "float64") -> dict[str, Any]:
        return {
            "node_type": "array",
            "shape": shape,
            "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        }

    members = {
        "small": array([10], [5]),
        "big": array([1000, 1000], [100, 100]),
        "dotted": {**array([4], [4]), "chunk_key_encoding": {"name": "v2"}},
        "sub/scalar": array([], []),
    }
    doc = json.dumps({"consolidated_metadata": {"metadata": members}}).encode()
    prefetcher = Prefetcher(fetch, budget_bytes=1000)
    prefetcher.saw_document("g/zarr.json", doc)
    prefetcher.saw_document("g/zarr.json", doc)  # once per group
    await asyncio.sleep(0)
    assert sorted(prefetcher._tasks) == ["g/small/c/0", "g/small/c/1", "g/sub/scalar/c"]
    assert await prefetcher.take("g/small/c/1") == (True, b"x")
    assert await prefetcher.take("g/big/c/0/0") == (False, None)
    assert sorted(asked) == ["g/small/c/0", "g/small/c/1", "g/sub/scalar/c"]
