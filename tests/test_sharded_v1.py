"""sharded_zarr_v1 roots (py-hamt before 3.6, and 3.6 with
``primary_array_path``), the v2 layout this package writes, read modes, and
the cases where a root cannot say whose chunk a key is."""

from __future__ import annotations

from typing import Any, cast

import dag_cbor
import numpy as np
import pytest
import xarray as xr
from multiformats import CID, multihash
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from py_hamt import (
    AmbiguousLayoutError,
    IntegrityError,
    InvalidArgumentError,
    MissingBlockError,
    ShardedZarrStore,
    ShardedZarrV1DeprecationWarning,
)
from py_hamt.datasets import climate_dataset
from tests.conftest import CIDCAS

GRID: dict[str, Any] = {
    "array_shape": (24, 36, 72),
    "chunk_shape": (12, 18, 24),
    "chunks_per_shard": 8,
}
ENC = {"chunks": (12, 18, 24)}


def decode_map(data: bytes) -> dict[str, Any]:
    """A DAG-CBOR block the test knows to be a map (a root document)."""
    return cast("dict[str, Any]", dag_cbor.decode(data))


def v1_root_blocks(
    ds: xr.Dataset, encoding: dict[str, Any], grid: dict[str, Any]
) -> tuple[dict[CID, bytes], CID]:
    """A sharded_zarr_v1 dataset as py-hamt before 3.6 wrote it (no
    primary_array_path): every non-coordinate chunk on the one grid, so two
    data variables overwrite each other's slots."""
    memory: dict[str, Any] = {}
    ds.to_zarr(store=MemoryStore(memory), mode="w", zarr_format=3, encoding=encoding)
    b3 = multihash.get("blake3")
    blocks: dict[CID, bytes] = {}

    def put(data: bytes, codec: str) -> CID:
        cid = CID("base32", 1, codec, b3.digest(data, size=32))
        blocks[cid] = data
        return cid

    shape, chunks, n = grid["array_shape"], grid["chunk_shape"], grid["chunks_per_shard"]
    per_dim = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    total = int(np.prod(per_dim))
    slots: list[dag_cbor.IPLDKind] = [None] * total
    metadata: dict[str, CID] = {}
    for key, buf in memory.items():
        cid = put(buf.to_bytes(), "raw")
        name = key.rsplit("/c/", 1)[0].rsplit("/", 1)[-1]
        if (
            key.endswith(".json")
            or "/c/" not in key
            or name in {"time", "lat", "lon", "latitude", "longitude"}
        ):
            metadata[key] = cid
            continue
        coords = [int(p) for p in key.rsplit("/c/", 1)[1].split("/")]
        slots[int(np.ravel_multi_index(coords, per_dim))] = cid
    shard_cids = []
    for i in range(0, total, n):
        part = slots[i : i + n] + [None] * max(0, i + n - total)
        shard_cids.append(put(dag_cbor.encode(part), "dag-cbor"))
    root: dict[str, Any] = {
        "manifest_version": "sharded_zarr_v1",
        "metadata": metadata,
        "chunks": {
            "array_shape": list(shape),
            "chunk_shape": list(chunks),
            "sharding_config": {"chunks_per_shard": n},
            "shard_cids": shard_cids,
        },
    }
    return blocks, put(dag_cbor.encode(root), "dag-cbor")


async def pre_36_root(names: list[str]) -> tuple[CIDCAS, CID, xr.Dataset]:
    ds = climate_dataset(n_time=24)[names]
    cas = CIDCAS()
    blocks, root = v1_root_blocks(ds, dict.fromkeys(names, ENC), GRID)
    cas.blocks.update(blocks)
    return cas, root, ds


async def test_a_pre_36_v1_root_with_one_data_array_reads_and_lists() -> None:
    cas, root, ds = await pre_36_root(["temperature"])
    ro = await ShardedZarrStore.open(cas, True, str(root))
    assert ro.manifest_version == "sharded_zarr_v1"
    xr.testing.assert_identical(xr.open_zarr(ro, chunks=None).load(), ds)
    listed = {k async for k in ro.list()}
    assert {k for k in listed if k.startswith("temperature/c/")} == {
        f"temperature/c/{t}/{y}/{x}" for t in range(2) for y in range(2) for x in range(3)
    }


async def test_a_pre_36_v1_root_with_two_data_arrays_on_its_grid_never_guesses() -> None:
    """py-hamt before 3.6 wrote both arrays' chunks into the same slots: the
    root cannot say whose bytes a slot holds, so reading either raises."""
    cas, root, _ = await pre_36_root(["temperature", "pressure"])
    ro = await ShardedZarrStore.open(cas, True, str(root))
    with pytest.raises(AmbiguousLayoutError, match=r"temperature/c/0/0/0.*cannot be read") as err:
        await ro.get("temperature/c/0/0/0", default_buffer_prototype())
    assert str(root) in str(err.value)
    with pytest.raises(AmbiguousLayoutError, match=r"pressure/c/\d+/\d+/\d+"):
        xr.open_zarr(ro, chunks=None)["pressure"].load()
    # Everything the root does say stays readable.
    assert await ro.get("temperature/zarr.json", default_buffer_prototype()) is not None
    assert await ro.exists("lat/c/0")


async def test_a_recorded_primary_keeps_two_arrays_on_one_grid_apart() -> None:
    """3.6's v1: the grid belongs to primary_array_path, the other array's
    chunks sit in metadata. Swapping the record would swap the data, so this
    checks each array against its own values."""
    ds = climate_dataset(n_time=24)[["temperature", "pressure"]]
    cas = CIDCAS()
    with pytest.warns(ShardedZarrV1DeprecationWarning):
        store = await ShardedZarrStore.open(cas, False, manifest_version="sharded_zarr_v1", **GRID)
    with pytest.raises(InvalidArgumentError, match=r"one gridded array.*'pressure'"):
        ds.to_zarr(
            store=store, mode="w", zarr_format=3, encoding={"temperature": ENC, "pressure": ENC}
        )
    # Build the 3.6 layout by hand from a one-array v1 store plus pressure's
    # chunks in metadata, as 3.6 writes it.
    with pytest.warns(ShardedZarrV1DeprecationWarning):
        store = await ShardedZarrStore.open(cas, False, manifest_version="sharded_zarr_v1", **GRID)
    ds[["temperature"]].to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    root = CID.decode(await store.flush())
    memory: dict[str, Any] = {}
    ds.to_zarr(
        MemoryStore(memory), mode="w", zarr_format=3, encoding={"temperature": ENC, "pressure": ENC}
    )
    obj = decode_map(cas.blocks[root])
    assert obj["chunks"]["primary_array_path"] == "temperature"
    for key, buf in memory.items():
        if not key.startswith("temperature/c/"):
            obj["metadata"][key] = await cas.save(buf.to_bytes(), "raw")
    both = await cas.save(dag_cbor.encode(obj), "dag-cbor")
    back = xr.open_zarr(await ShardedZarrStore.open(cas, True, both), chunks=None).load()
    np.testing.assert_array_equal(back["temperature"].values, ds["temperature"].values)
    np.testing.assert_array_equal(back["pressure"].values, ds["pressure"].values)


async def test_a_v1_root_opened_for_writing_stays_v1() -> None:
    cas, root, _ = await pre_36_root(["temperature"])
    with pytest.warns(ShardedZarrV1DeprecationWarning, match="stays v1"):
        writer = await ShardedZarrStore.open(cas, False, root)
    more = climate_dataset(n_time=36)[["temperature"]]
    more.isel(time=slice(24, 36)).to_zarr(store=writer, append_dim="time", zarr_format=3)
    new_root = await writer.flush()
    obj = decode_map(cas.blocks[CID.decode(new_root)])
    assert obj["manifest_version"] == "sharded_zarr_v1"
    assert obj["chunks"]["primary_array_path"] == "temperature"
    assert obj["chunks"]["array_shape"] == [36, 36, 72]
    back = xr.open_zarr(await ShardedZarrStore.open(cas, True, new_root), chunks=None).load()
    xr.testing.assert_identical(back, more)


async def test_migrate_v1_to_v2_reuses_the_shards() -> None:
    cas, root, ds = await pre_36_root(["temperature"])
    with pytest.warns(ShardedZarrV1DeprecationWarning):
        writer = await ShardedZarrStore.open(cas, False, root)
    old_shards = decode_map(cas.blocks[root])["chunks"]["shard_cids"]
    new_root = await writer.migrate_v1_to_v2("temperature")
    obj = decode_map(cas.blocks[CID.decode(new_root)])
    assert obj["manifest_version"] == "sharded_zarr_v2"
    assert obj["arrays"]["temperature"]["shard_cids"] == old_shards
    back = xr.open_zarr(await ShardedZarrStore.open(cas, True, new_root), chunks=None).load()
    xr.testing.assert_identical(back, ds)
    with pytest.raises(InvalidArgumentError, match="only sharded_zarr_v1 roots"):
        await writer.migrate_v1_to_v2("temperature")
    with pytest.raises(InvalidArgumentError, match="must name an array"):
        await writer.migrate_v1_to_v2("/")


async def test_a_new_store_writes_3_6s_v2_layout_field_for_field() -> None:
    ds = climate_dataset(n_time=24)[["temperature"]]
    cas = CIDCAS()
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=8)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    obj = decode_map(cas.blocks[CID.decode(await store.flush())])
    assert set(obj) == {
        "manifest_version", "store_type", "zarr_format", "sharding_config", "metadata", "arrays"
    }  # fmt: skip
    assert (obj["manifest_version"], obj["store_type"], obj["zarr_format"]) == (
        "sharded_zarr_v2",
        "py_hamt.sharded_zarr",
        3,
    )
    assert obj["sharding_config"] == {"chunks_per_shard": 8, "order": "C"}
    entry = obj["arrays"]["temperature"]
    assert set(entry) == {"array_shape", "chunk_shape", "sharding_config", "shard_cids"}
    assert (entry["array_shape"], entry["chunk_shape"]) == ([24, 36, 72], [12, 18, 24])
    assert entry["sharding_config"] == {"chunks_per_shard": 8, "order": "C"}
    assert len(entry["shard_cids"]) == 2
    assert not any("/c/" in k for k in obj["metadata"] if k.startswith("temperature"))


async def test_a_chunk_in_both_index_and_metadata_with_different_cids_raises() -> None:
    ds = climate_dataset(n_time=24)[["temperature"]]
    cas = CIDCAS()
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=8)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    obj = decode_map(cas.blocks[CID.decode(await store.flush())])
    obj["metadata"]["temperature/c/0/0/0"] = await cas.save(b"other bytes", "raw")
    root = await cas.save(dag_cbor.encode(obj), "dag-cbor")
    ro = await ShardedZarrStore.open(cas, True, root)
    with pytest.raises(AmbiguousLayoutError, match=r"two CIDs for 'temperature/c/0/0/0'"):
        await ro.get("temperature/c/0/0/0", default_buffer_prototype())


class CountingCAS(CIDCAS):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[CID] = []

    async def load(
        self,
        id: Any,  # noqa: A002
        offset: Any = None,
        length: Any = None,
        suffix: Any = None,
    ) -> bytes:
        self.loads.append(id)
        return await super().load(id, offset, length, suffix)


@pytest.mark.parametrize("mode", ["full", "sparse", "auto"])
async def test_read_modes_read_the_same_and_cache_as_documented(mode: str) -> None:
    ds = climate_dataset(n_time=24)[["temperature"]]
    cas = CountingCAS()
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=8)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    root = await store.flush()
    ro = await ShardedZarrStore.open(cas, True, root, shard_read_mode=mode)  # type: ignore[arg-type]
    assert ro.shard_read_mode == mode
    cas.loads.clear()
    back = xr.open_zarr(ro, chunks=None).load()
    xr.testing.assert_identical(back, ds)
    shard_cids = set(
        decode_map(cas.blocks[CID.decode(root)])["arrays"]["temperature"]["shard_cids"]
    )
    shard_loads = sum(1 for c in cas.loads if c in shard_cids)
    if mode == "full":
        assert (shard_loads, ro.cache_bytes > 0) == (2, True)
    elif mode == "sparse":  # one shard load per chunk read, nothing kept
        assert (shard_loads, ro.cache_bytes) == (12, 0)
    else:  # sparse until 8 reads of one shard (a shard of 8), then full for good
        assert 2 < shard_loads < 12
        assert ro.cache_bytes > 0


@pytest.mark.parametrize(("per_shard", "latch"), [(1200, 256), (300, 75), (16, 8)])
async def test_auto_mode_switches_to_full_shards_once_one_is_scanned(
    per_shard: int, latch: int
) -> None:
    """py-hamt 3.6's 256 sparse reads of one shard, or a quarter of a
    shard's entries when that is fewer (at least 8)."""
    cas = CountingCAS()
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=per_shard)
    n = min(per_shard, 300)
    ds = xr.Dataset({"v": (("x",), np.arange(1, n + 1, dtype="int32"))})
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"v": {"chunks": (1,)}})
    ro = await ShardedZarrStore.open(cas, True, await store.flush())
    proto = default_buffer_prototype()
    for i in range(n):
        assert await ro.get(f"v/c/{i}", proto) is not None
    shard = decode_map(cas.blocks[CID.decode(str(ro.root_cid))])["arrays"]["v"]["shard_cids"][0]
    assert cas.loads.count(shard) == latch  # latch - 1 sparse, then one full load kept
    assert ro.cache_bytes > 0


@pytest.mark.parametrize("mode", ["full", "sparse", "auto"])
async def test_every_read_mode_verifies_the_shard_block(mode: str) -> None:
    from py_hamt import LocalCAS

    cas_dir = pytest.importorskip("tempfile").mkdtemp()
    cas = LocalCAS(cas_dir)
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=8)
    ds = climate_dataset(n_time=24)[["temperature"]]
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    root = await store.flush()
    manifest = await store._manifest()
    shard = manifest.arrays["temperature"].shard_cids[0]
    assert shard is not None
    path = next(p for p in cas.block_files() if p.name.endswith(bytes(shard.digest).hex()))
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    ro = await ShardedZarrStore.open(cas, True, root, shard_read_mode=mode)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match=str(shard)):
        await ro.get("temperature/c/0/0/0", default_buffer_prototype())


@pytest.mark.parametrize("which", ["document", "shard"])
async def test_a_missing_block_is_never_a_missing_variable(which: str) -> None:
    """zarr reads a KeyError from a store as "no such key" and would open the
    dataset without the variable: a missing block must be another error."""
    ds = climate_dataset(n_time=24)[["temperature", "pressure"]]
    cas = CIDCAS()
    store = await ShardedZarrStore.open(cas, False, chunks_per_shard=8)
    ds.to_zarr(store=store, mode="w", zarr_format=3, encoding={"temperature": ENC})
    root = await store.flush()
    manifest = await store._manifest()
    gone = (
        manifest.metadata["pressure/zarr.json"]
        if which == "document"
        else manifest.arrays["pressure"].shard_cids[0]
    )
    assert gone is not None
    del cas.blocks[gone]
    ro = await ShardedZarrStore.open(cas, True, root)
    with pytest.raises(MissingBlockError, match=str(gone)) as err:
        xr.open_zarr(ro, chunks=None, consolidated=False).load()
    assert err.value.key is not None
    assert err.value.key.startswith("pressure/")
