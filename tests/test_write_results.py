"""Every write path yields a WriteResult whose digest is the digest of the
bytes written, checked here against independent hash implementations."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest
import xarray as xr
from multiformats import CID, multihash

from py_hamt import (
    HAMT,
    InMemoryCAS,
    IntegrityError,
    KuboCAS,
    LocalCAS,
    ShardedZarrStore,
    WriteResult,
    ZarrHAMTStore,
    convert_hamt_to_sharded,
    copy_dag,
    import_car,
)
from py_hamt.datasets import climate_dataset
from py_hamt.jobs.car import export_car

B3 = multihash.get("blake3")


def b3(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def check(result: WriteResult, data: bytes, algorithm: str = "blake3") -> None:
    assert result.size == len(data)
    assert result.digest.algorithm == algorithm
    expected = b3(data) if algorithm == "blake3" else hashlib.sha256(data).digest()
    assert result.digest.value == expected
    assert result.source == "client"


@pytest.mark.parametrize("algorithm", ["blake3", "sha2-256"])
async def test_cas_put_digests(tmp_path: Path, algorithm: str) -> None:
    data = b"some block bytes" * 100
    for cas in (InMemoryCAS(), LocalCAS(tmp_path / "store")):
        result = await cas.put(data, "raw", digest=algorithm)  # type: ignore[arg-type]
        check(result, data, algorithm)
        assert await cas.load(result.id) == data


async def test_kubo_put_compares_the_echo_and_keeps_it() -> None:
    data = b"kubo block"
    cid = CID("base32", 1, "raw", B3.digest(data, size=32))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Name": "block", "Hash": str(cid), "Size": str(len(data))})

    async with KuboCAS(transport=httpx.MockTransport(answer)) as cas:
        result = await cas.put(data, "raw")
    check(result, data)
    assert result.echoed == {"Name": "block", "Hash": str(cid), "Size": str(len(data))}

    liar = CID("base32", 1, "raw", B3.digest(b"other", size=32))

    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Hash": str(liar), "Size": str(len(data))})

    async with KuboCAS(transport=httpx.MockTransport(lying)) as cas:
        with pytest.raises(IntegrityError, match="did not store what was sent"):
            await cas.put(data, "raw")


async def test_custom_store_echo_mismatch_is_caught_by_the_base_put() -> None:
    from py_hamt import ContentAddressedStore

    class Lying(ContentAddressedStore):
        # A py-hamt 3.x store: save and load only; put is built over save.
        async def save(self, data: bytes, codec: Any) -> bytes:
            return b"\x1e\x20" + b3(b"not " + data)

        async def load(self, id: Any, *args: Any) -> bytes:  # noqa: A002
            raise KeyError(id)

    with pytest.raises(IntegrityError, match="it did not store what was sent"):
        # put/_load are built at runtime (__init_subclass__), unseen by mypy.
        await Lying().put(b"payload", "raw")  # type: ignore[abstract]


async def test_hamt_set_and_commit_results(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    check(await hamt.set("k", b"value"), b"value")
    commit = await hamt.make_read_only()
    assert commit is hamt.last_commit
    assert commit.id == hamt.root_node_id
    check(commit, await cas.load(hamt.root_node_id))
    again = await hamt.make_read_only()  # already read-only: describes the root, writes nothing
    assert again.id == commit.id


async def test_zarr_store_reports_every_value(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    seen: dict[str, WriteResult] = {}
    store = ZarrHAMTStore(hamt, on_write=lambda key, result: seen.__setitem__(key, result))
    climate_dataset(n_time=12, n_lat=6, n_lon=8).to_zarr(store=store, mode="w", zarr_format=3)
    await hamt.make_read_only()
    keys = [k async for k in hamt.keys()]
    assert sorted(seen) == sorted(keys)
    for key, result in seen.items():
        check(result, await hamt.get(key))


async def test_sharded_store_sets_and_flush_results() -> None:
    cas = InMemoryCAS()
    store = await ShardedZarrStore.open(
        cas, False, array_shape=(12, 6, 8), chunk_shape=(6, 6, 8), chunks_per_shard=4
    )
    seen: list[WriteResult] = []
    store.on_write = lambda key, result: seen.append(result)
    climate_dataset(n_time=12, n_lat=6, n_lon=8).to_zarr(store=store, mode="w", zarr_format=3)
    root = await store.flush()
    assert seen
    for result in seen:
        check(result, await cas.load(result.id))
    assert store.last_commit is not None
    assert str(cas.id_to_cid(store.last_commit.id, "dag-cbor")) == root
    check(store.last_commit, await cas.load(store.last_commit.id))


async def test_conversion_copy_and_import_results(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path / "a")
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    climate_dataset(n_time=12, n_lat=6, n_lon=8).to_zarr(
        store=ZarrHAMTStore(hamt), mode="w", zarr_format=3
    )
    await hamt.make_read_only()

    committed: list[WriteResult] = []
    new_root = await convert_hamt_to_sharded(cas, hamt.root_node_id, 4, on_commit=committed.append)
    assert str(committed[0].id) == new_root
    check(committed[0], await cas.load(committed[0].id))

    other = LocalCAS(tmp_path / "b")
    copied = await copy_dag(cas, other, hamt.root_node_id)
    assert copied.root is not None
    assert copied.root.id == hamt.root_node_id
    check(copied.root, await other.load(hamt.root_node_id))

    car = tmp_path / "x.car"
    await export_car(cas, new_root, car)
    imported = await import_car(LocalCAS(tmp_path / "c"), car)
    assert imported.results
    for result in imported.results:
        check(result, await cas.load(result.id))
    back = xr.open_zarr(
        await ShardedZarrStore.open(LocalCAS(tmp_path / "c"), True, new_root), chunks=None
    )
    assert back.sizes["time"] == 12
