"""ShardedZarrStore: zarr's StoreTests, several arrays, appends, resizes,
grafting, v1 roots, and the shard cache's memory bound."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import dag_cbor
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.base import tokenize
from multiformats import CID
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.testing.store import StoreTests

from py_hamt import (
    HAMT,
    InMemoryCAS,
    InvalidArgumentError,
    KeyNotFoundError,
    MalformedNodeError,
    ReadOnlyError,
    ShardedZarrStore,
)
from py_hamt.codec.shard import decode_shard
from py_hamt.datasets import climate_dataset
from tests.conftest import CIDCAS

GRID = {"array_shape": (48, 36, 72), "chunk_shape": (12, 18, 24), "chunks_per_shard": 8}


async def new_store(cas: Any = None, **kwargs: Any) -> ShardedZarrStore:
    return await ShardedZarrStore.open(cas or InMemoryCAS(), False, **{**GRID, **kwargs})


async def reopen(store: ShardedZarrStore) -> ShardedZarrStore:
    root = await store.flush()
    return await ShardedZarrStore.open(store.cas, True, root)


class TestShardedStore(StoreTests[ShardedZarrStore, cpu.Buffer]):
    store_cls = ShardedZarrStore
    buffer_cls = cpu.Buffer

    async def set(self, store: ShardedZarrStore, key: str, value: Any) -> None:
        cas = store.cas
        cid = cas.id_to_cid(await cas.save(value.to_bytes(), "raw"), "raw")
        writer = store.with_read_only(False)
        await writer.set_pointer(key, cid)

    async def get(self, store: ShardedZarrStore, key: str) -> Any:
        cid = await store._session.lookup(key)
        assert cid is not None
        return self.buffer_cls.from_bytes(await store.cas.load(store.cas.cid_to_id(cid)))

    @pytest.fixture
    async def store_kwargs(self) -> dict[str, Any]:
        cas = InMemoryCAS()
        root = await (await new_store(cas)).flush()
        return {"cas": cas, "read_only": False, "root_cid": root}

    def test_store_repr(self, store: ShardedZarrStore) -> None:
        assert repr(store).startswith("ShardedZarrStore(root=bafyr4i")

    def test_store_supports_writes(self, store: ShardedZarrStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: ShardedZarrStore) -> None:
        assert store.supports_listing


# ------------------------------------------------------------ open arguments
async def test_a_new_store_needs_its_grid() -> None:
    with pytest.raises(InvalidArgumentError, match="chunks_per_shard must be an int > 0"):
        await ShardedZarrStore.open(InMemoryCAS(), False)
    with pytest.raises(InvalidArgumentError, match="array_shape and chunk_shape go together"):
        await ShardedZarrStore.open(InMemoryCAS(), False, array_shape=(4,), chunks_per_shard=4)
    with pytest.raises(InvalidArgumentError, match="v1 store needs array_shape and chunk_shape"):
        await ShardedZarrStore.open(
            InMemoryCAS(), False, chunks_per_shard=4, manifest_version="sharded_zarr_v1"
        )
    with pytest.raises(InvalidArgumentError, match="manifest_version must be"):
        await ShardedZarrStore.open(InMemoryCAS(), False, chunks_per_shard=4, manifest_version="v3")
    with pytest.raises(InvalidArgumentError, match="shard_read_mode must be one of"):
        await ShardedZarrStore.open(
            InMemoryCAS(),
            False,
            chunks_per_shard=4,
            shard_read_mode="lazy",  # type: ignore[arg-type]
        )
    for bad in (0, -1, None, 2.5):
        with pytest.raises(InvalidArgumentError, match="chunks_per_shard must be an int > 0"):
            await ShardedZarrStore.open(
                InMemoryCAS(),
                False,
                array_shape=(4,),
                chunk_shape=(2,),
                chunks_per_shard=bad,  # type: ignore[arg-type]  # 2.5: a float on purpose
            )
    with pytest.raises(InvalidArgumentError, match="differ in rank"):
        await ShardedZarrStore.open(
            InMemoryCAS(), False, array_shape=(4, 4), chunk_shape=(2,), chunks_per_shard=2
        )


async def test_read_only_open_needs_a_root() -> None:
    with pytest.raises(InvalidArgumentError, match="read-only ShardedZarrStore needs root_cid"):
        await ShardedZarrStore.open(InMemoryCAS(), True)


async def test_a_root_that_is_not_sharded_is_malformed() -> None:
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas)
    root = cas.id_to_cid(hamt.root_node_id, "dag-cbor")
    with pytest.raises(MalformedNodeError, match=f"block {root} is not a sharded Zarr root"):
        await ShardedZarrStore.open(cas, True, str(root))
    bogus = cas.id_to_cid(
        await cas.save(dag_cbor.encode({"manifest_version": "v9"}), "dag-cbor"), "dag-cbor"
    )
    with pytest.raises(MalformedNodeError, match="unknown manifest_version 'v9'"):
        await ShardedZarrStore.open(cas, True, bogus)
    with pytest.raises(InvalidArgumentError, match="root_cid is not a CID: 'nope'"):
        await ShardedZarrStore.open(cas, True, "nope")


async def test_writes_on_a_read_only_store_raise() -> None:
    ro = await reopen(await new_store())
    with pytest.raises(ReadOnlyError):
        await ro.set("zarr.json", cpu.Buffer.from_bytes(b"{}"))
    with pytest.raises(ReadOnlyError):
        await ro.graft_store(ro.root_cid, (0, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(ReadOnlyError):
        await ro.resize_store((96, 36, 72))


# ------------------------------------------------------------ several arrays
async def test_three_variables_on_different_grids_round_trip() -> None:
    ds = climate_dataset(n_time=48, n_lat=36, n_lon=72)
    encoding = {
        "temperature": {"chunks": (12, 18, 24)},
        "precipitation": {"chunks": (48, 6, 8)},
        "pressure": {"chunks": (5, 36, 72)},
    }
    store = await new_store()
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    ro = await reopen(store)
    back = xr.open_zarr(ro, chunks=None).load()
    xr.testing.assert_identical(back, ds)
    manifest = await ro._manifest()
    assert {"temperature", "precipitation", "pressure", "time", "lat", "lon"} <= set(
        manifest.arrays
    )
    assert manifest.arrays["precipitation"].grid.chunk_shape == (48, 6, 8)
    # Chunks live in shards, not in the key map.
    assert not any("/c/" in k for k in manifest.metadata)


async def test_same_grid_variables_never_share_slots() -> None:
    """py-hamt 3.x's flaw: two variables on one grid overwrote each other."""
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        {name: (("t", "y"), rng.random((8, 8))) for name in ("a", "b", "c")},
        coords={"t": np.arange(8), "y": np.arange(8)},
    )
    store = await ShardedZarrStore.open(
        InMemoryCAS(), False, array_shape=(8, 8), chunk_shape=(4, 4), chunks_per_shard=2
    )
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={v: {"chunks": (4, 4)} for v in ds})
    back = xr.open_zarr(await reopen(store), chunks=None).load()
    xr.testing.assert_identical(back, ds)


async def test_coordinates_with_any_name_and_several_chunks() -> None:
    n = 40
    ds = xr.Dataset(
        {"v": (("valid_time", "level"), np.arange(n * 6.0).reshape(n, 6))},
        coords={
            "valid_time": pd.date_range("2020-01-01", periods=n, freq="D"),
            "level": [1000, 850, 700, 500, 300, 200],
        },
    )
    encoding = {"v": {"chunks": (8, 3)}, "valid_time": {"chunks": (8,)}, "level": {"chunks": (2,)}}
    store = await ShardedZarrStore.open(
        CIDCAS(), False, array_shape=(n, 6), chunk_shape=(8, 3), chunks_per_shard=3
    )
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    ro = await reopen(store)
    xr.testing.assert_identical(xr.open_zarr(ro, chunks=None).load(), ds)
    manifest = await ro._manifest()
    assert manifest.arrays["valid_time"].grid.chunks_per_dim == (5,)
    assert manifest.arrays["level"].grid.chunks_per_dim == (3,)


# -------------------------------------------------------- appends and resizes
async def test_appends_along_time_grow_each_index() -> None:
    ds = climate_dataset(n_time=60)
    encoding = {v: {"chunks": (12, 18, 24)} for v in ds.data_vars}
    store = await new_store()
    ds.isel(time=slice(0, 24)).to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    ds.isel(time=slice(24, 30)).to_zarr(store=store, append_dim="time", zarr_format=3)
    ds.isel(time=slice(30, 60)).to_zarr(store=store, append_dim="time", zarr_format=3)
    ro = await reopen(store)
    xr.testing.assert_identical(xr.open_zarr(ro, chunks=None).load(), ds)
    manifest = await ro._manifest()
    assert manifest.arrays["temperature"].grid.shape == (60, 36, 72)
    assert not any("/c/" in k for k in manifest.metadata)


async def test_append_after_reopening_a_committed_root() -> None:
    ds = climate_dataset(n_time=36)
    encoding = {v: {"chunks": (12, 18, 24)} for v in ds.data_vars}
    store = await new_store()
    ds.isel(time=slice(0, 24)).to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    first = await store.flush()
    writer = await ShardedZarrStore.open(store.cas, False, first)
    ds.isel(time=slice(24, 36)).to_zarr(store=writer, append_dim="time", zarr_format=3)
    xr.testing.assert_identical(xr.open_zarr(await reopen(writer), chunks=None).load(), ds)
    old = await ShardedZarrStore.open(store.cas, True, first)
    xr.testing.assert_identical(xr.open_zarr(old, chunks=None).load(), ds.isel(time=slice(0, 24)))


async def test_resize_along_a_non_leading_dimension_keeps_every_chunk() -> None:
    """Growing lon changes every chunk's row-major index: the index is re-laid out."""
    a = np.arange(8 * 8, dtype="f4").reshape(8, 8)
    store = await ShardedZarrStore.open(
        InMemoryCAS(), False, array_shape=(8, 8), chunk_shape=(2, 2), chunks_per_shard=3
    )
    xr.Dataset({"v": (("y", "x"), a)}).to_zarr(
        store=store, mode="w", zarr_format=3, encoding={"v": {"chunks": (2, 2)}}
    )
    bigger = np.zeros((8, 12), dtype="f4")
    bigger[:, :8] = a
    bigger[:, 8:] = 7
    xr.Dataset({"v": (("y", "x"), bigger[:, 8:])}).to_zarr(
        store=store, append_dim="x", zarr_format=3
    )
    ro = await reopen(store)
    np.testing.assert_array_equal(xr.open_zarr(ro, chunks=None)["v"].values, bigger)
    assert (await ro._manifest()).arrays["v"].grid.shape == (8, 12)


async def test_resize_store_and_variable_then_append() -> None:
    ds = climate_dataset(n_time=48)
    encoding = {v: {"chunks": (12, 18, 24)} for v in ds.data_vars}
    store = await new_store()
    ds.isel(time=slice(0, 24)).to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    await store.resize_store((36, 36, 72))
    for name in ("temperature", "precipitation", "pressure"):
        await store.resize_variable(name, (36, 36, 72))
    await store.resize_variable("time", (36,))
    manifest = await store._manifest()
    assert {p: a.grid.shape for p, a in manifest.arrays.items() if len(a.grid.shape) == 3} == {
        "temperature": (36, 36, 72),
        "precipitation": (36, 36, 72),
        "pressure": (36, 36, 72),
    }
    # The grown region reads as fill until written; then append the rest.
    grown = xr.open_zarr(store, chunks=None)
    assert grown.sizes["time"] == 36
    ds.isel(time=slice(24, 36)).drop_vars(["lat", "lon"]).to_zarr(
        store=store, region={"time": slice(24, 36)}, zarr_format=3
    )
    ds.isel(time=slice(36, 48)).to_zarr(store=store, append_dim="time", zarr_format=3)
    back = xr.open_zarr(await reopen(store), chunks=None).load()
    for name in ("temperature", "precipitation", "pressure"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    # xarray's region writes skip index coordinates (zarr's MemoryStore shows
    # the same), so time is checked where xarray wrote it.
    np.testing.assert_array_equal(back["time"].values[:24], ds["time"].values[:24])
    np.testing.assert_array_equal(back["time"].values[36:], ds["time"].values[36:])
    with pytest.raises(KeyNotFoundError, match=r"'nothing/zarr\.json'"):
        await store.resize_variable("nothing", (1,))
    with pytest.raises(InvalidArgumentError, match="has 2 dimensions, array 'temperature' has 3"):
        await store.resize_store((1, 2), array_path="temperature")
    with pytest.raises(InvalidArgumentError, match="no chunk index for array 'nothing'"):
        await store.resize_store((1, 2), array_path="nothing")


# ------------------------------------------------------------------ grafting
async def test_parallel_writers_graft_into_a_skeleton() -> None:
    ds = climate_dataset(n_time=48)
    encoding = {v: {"chunks": (12, 18, 24)} for v in ds.data_vars}
    cas = InMemoryCAS()
    main = await new_store(cas)
    ds.chunk({"time": 12}).to_zarr(
        store=main, mode="w", zarr_format=3, encoding=encoding, compute=False
    )
    parts = []
    for start in range(0, 48, 24):
        part = await ShardedZarrStore.open(
            cas, False, array_shape=(24, 36, 72), chunk_shape=(12, 18, 24), chunks_per_shard=8
        )
        ds.isel(time=slice(start, start + 24)).to_zarr(
            store=part, mode="w", zarr_format=3, encoding=encoding
        )
        parts.append((await part.flush(), start // 12))
    counts = await asyncio.gather(
        *(main.graft_store(root, (off, 0, 0)) for root, off in reversed(parts))
    )
    assert counts[0]["temperature"] == 2 * 2 * 3
    assert counts[0]["pressure"] == 12
    ro = await reopen(main)
    back = xr.open_zarr(ro, chunks=None).load()
    for name in ("temperature", "precipitation", "pressure"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)


async def test_graft_rejects_a_mismatched_chunk_shape() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset(n_time=24)
    main = await new_store(cas)
    ds.to_zarr(
        store=main, mode="w", zarr_format=3, encoding={"temperature": {"chunks": (12, 18, 24)}}
    )
    other = await new_store(cas)
    ds.to_zarr(
        store=other, mode="w", zarr_format=3, encoding={"temperature": {"chunks": (6, 18, 24)}}
    )
    with pytest.raises(
        InvalidArgumentError, match=r"array 'temperature': chunk shape \(6, 18, 24\)"
    ):
        await main.graft_store(await other.flush(), (0, 0, 0))


# ------------------------------------------------------- memory and commits
async def test_shard_cache_stays_within_its_bound() -> None:
    ds = climate_dataset(n_time=96, n_lat=36, n_lon=72)
    limit = 6_000
    store = await ShardedZarrStore.open(
        InMemoryCAS(),
        False,
        array_shape=(96, 36, 72),
        chunk_shape=(4, 6, 6),
        chunks_per_shard=16,
        max_cache_memory_bytes=limit,
    )
    encoding = {v: {"chunks": (4, 6, 6)} for v in ds.data_vars}
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
    assert store.cache_bytes <= limit
    ro = await ShardedZarrStore.open(
        store.cas, True, await store.flush(), max_cache_memory_bytes=limit
    )
    back = xr.open_zarr(ro, chunks=None).load()
    assert ro.cache_bytes <= limit
    xr.testing.assert_identical(back, ds)


async def test_flush_writes_nothing_when_nothing_changed() -> None:
    store = await new_store()
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    root = await store.flush()
    blocks = len(store.cas.store)  # type: ignore[attr-defined]
    assert await store.flush() == root
    assert len(store.cas.store) == blocks  # type: ignore[attr-defined]


async def test_shards_are_dag_cbor_lists_of_cids_and_nulls() -> None:
    store = await new_store()
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    await store.flush()
    manifest = await store._manifest()
    shard_cid = next(c for c in manifest.arrays["temperature"].shard_cids if c is not None)
    data = await store.cas.load(store.cas.cid_to_id(shard_cid))
    decoded = dag_cbor.decode(data)
    assert isinstance(decoded, list)
    assert len(decoded) == 8
    assert all(e is None or isinstance(e, CID) for e in decoded)
    assert [bytes(cast("CID", e)) if e else None for e in decoded] == decode_shard(data, 8)


async def test_chunks_outside_the_grid_still_read_and_delete() -> None:
    store = await new_store()
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    odd = cpu.Buffer.from_bytes(b"beyond")
    await store.set("temperature/c/99/0/0", odd)
    proto = default_buffer_prototype()
    got = await store.get("temperature/c/99/0/0", proto)
    assert got is not None
    assert got.to_bytes() == b"beyond"
    ro = await reopen(store)
    assert await ro.exists("temperature/c/99/0/0")
    await store.delete("temperature/c/99/0/0")
    assert not await store.exists("temperature/c/99/0/0")


async def test_list_dir_names_arrays_and_their_chunk_folder() -> None:
    store = await new_store()
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    top = sorted([n async for n in store.list_dir("")])
    assert top == ["lat", "lon", "precipitation", "pressure", "temperature", "time", "zarr.json"]
    assert sorted([n async for n in store.list_dir("temperature")]) == ["c", "zarr.json"]
    ro = await reopen(store)
    assert sorted([n async for n in ro.list_dir("temperature/")]) == ["c", "zarr.json"]


async def test_dask_token_follows_the_committed_root() -> None:
    store = await new_store()
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    root = await store.flush()
    a = await ShardedZarrStore.open(store.cas, True, root)
    b = await ShardedZarrStore.open(store.cas, True, root)
    assert tokenize(a) == tokenize(b)
    await store.set("extra/zarr.json", cpu.Buffer.from_bytes(b"{}"))
    assert tokenize(store) != tokenize(a)


async def test_pickling_needs_a_flushed_store() -> None:
    import pickle

    store = await new_store(CIDCAS())
    climate_dataset(n_time=12).to_zarr(store=store, mode="w", zarr_format=3)
    from py_hamt import NotCommittedError

    with pytest.raises(NotCommittedError, match="call flush\\(\\) first"):
        pickle.dumps(store)
    root = await store.flush()
    clone = pickle.loads(pickle.dumps(store))
    assert str(clone.root_cid) == root
    xr.testing.assert_identical(
        xr.open_zarr(clone, chunks=None).load(), xr.open_zarr(store, chunks=None).load()
    )
