"""Real xarray datasets through ZarrHAMTStore: the users' main job."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from py_hamt import HAMT, InMemoryCAS, ZarrHAMTStore
from py_hamt.datasets import climate_dataset
from tests.conftest import CIDCAS

ENCODING = {v: {"chunks": (12, 18, 24)} for v in ("temperature", "precipitation", "pressure")}


async def new_writer(cas: Any) -> tuple[HAMT, ZarrHAMTStore]:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    return hamt, ZarrHAMTStore(hamt, read_only=False)


async def reopen(cas: Any, root: Any) -> ZarrHAMTStore:
    ro = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    return ZarrHAMTStore(ro, read_only=True)


@pytest.mark.parametrize("cas_cls", [InMemoryCAS, CIDCAS])
async def test_write_commit_reopen_identical(cas_cls: type) -> None:
    cas = cas_cls()
    ds = climate_dataset()
    hamt, store = await new_writer(cas)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    await hamt.make_read_only()
    back = xr.open_zarr(store=await reopen(cas, hamt.root_node_id), chunks=None)
    xr.testing.assert_identical(back.load(), ds)
    assert back["temperature"].encoding["chunks"] == (12, 18, 24)


async def test_same_dataset_gives_the_same_root() -> None:
    roots = []
    for _ in range(2):
        cas = InMemoryCAS()
        hamt, store = await new_writer(cas)
        climate_dataset().to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
        await hamt.make_read_only()
        roots.append(hamt.root_node_id)
    assert roots[0] == roots[1]


async def test_append_along_time() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset(n_time=48)
    hamt, store = await new_writer(cas)
    ds.isel(time=slice(0, 24)).to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    ds.isel(time=slice(24, 40)).to_zarr(store=store, append_dim="time", zarr_format=3)
    ds.isel(time=slice(40, 48)).to_zarr(store=store, append_dim="time", zarr_format=3)
    await hamt.make_read_only()
    back = xr.open_zarr(store=await reopen(cas, hamt.root_node_id), chunks=None).load()
    xr.testing.assert_identical(back, ds)


async def test_append_after_commit_and_reopen_for_writing() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset(n_time=36)
    hamt, store = await new_writer(cas)
    ds.isel(time=slice(0, 24)).to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    await hamt.make_read_only()
    first_root = hamt.root_node_id

    again = await HAMT.build(cas=cas, root_node_id=first_root, values_are_bytes=True)
    ds.isel(time=slice(24, 36)).to_zarr(
        store=ZarrHAMTStore(again), append_dim="time", zarr_format=3
    )
    await again.make_read_only()
    xr.testing.assert_identical(
        xr.open_zarr(store=await reopen(cas, again.root_node_id), chunks=None).load(), ds
    )
    # The first commit still reads as it was.
    old = xr.open_zarr(store=await reopen(cas, first_root), chunks=None).load()
    xr.testing.assert_identical(old, ds.isel(time=slice(0, 24)))


async def test_region_writes() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset(n_time=48).chunk({"time": 12, "lat": 18, "lon": 24})
    hamt, store = await new_writer(cas)
    ds.to_zarr(store=store, mode="w", zarr_format=3, compute=False)
    for start in (24, 0, 36, 12):  # out of order on purpose
        part = ds.isel(time=slice(start, start + 12))
        part.drop_vars(["lat", "lon"]).to_zarr(
            store=store, region={"time": slice(start, start + 12)}, zarr_format=3
        )
    await hamt.make_read_only()
    back = xr.open_zarr(store=await reopen(cas, hamt.root_node_id), chunks=None).load()
    xr.testing.assert_identical(back, ds.compute())


async def test_open_with_dask_chunks_never_pickles_the_cas() -> None:
    class NoPickleCAS(InMemoryCAS):
        def __reduce_ex__(self, protocol: Any) -> Any:
            raise AssertionError("dask pickled the whole CAS to tokenise the store")

    cas = NoPickleCAS()
    ds = climate_dataset()
    hamt, store = await new_writer(cas)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    await hamt.make_read_only()
    lazy = xr.open_zarr(store=await reopen(cas, hamt.root_node_id))
    assert lazy["temperature"].chunks is not None
    assert lazy["temperature"].data.chunksize == (12, 18, 24)
    # Same root, same names: dask's graph keys are deterministic.
    lazy2 = xr.open_zarr(store=await reopen(cas, hamt.root_node_id))
    assert lazy["temperature"].data.name == lazy2["temperature"].data.name
    xr.testing.assert_identical(lazy.compute(), ds)


async def test_point_and_slice_reads() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset()
    hamt, store = await new_writer(cas)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    await hamt.make_read_only()
    back = xr.open_zarr(store=await reopen(cas, hamt.root_node_id), chunks=None)
    np.testing.assert_array_equal(
        back["pressure"].isel(lat=3, lon=40).values, ds["pressure"].isel(lat=3, lon=40).values
    )
    np.testing.assert_array_equal(
        back["temperature"].isel(time=17).values, ds["temperature"].isel(time=17).values
    )


async def test_overwrite_mode_w_replaces_everything() -> None:
    cas = InMemoryCAS()
    hamt, store = await new_writer(cas)
    climate_dataset(seed=1).to_zarr(store=store, mode="w", zarr_format=3, encoding=ENCODING)
    small = climate_dataset(n_time=6, n_lat=4, n_lon=8, seed=2)[["pressure"]]
    small.to_zarr(store=store, mode="w", zarr_format=3)
    await hamt.make_read_only()
    back = xr.open_zarr(store=await reopen(cas, hamt.root_node_id), chunks=None).load()
    xr.testing.assert_identical(back, small)
    assert not any(k.startswith("temperature/") for k in [k async for k in hamt.keys()])
