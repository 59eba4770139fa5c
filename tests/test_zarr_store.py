"""ZarrHAMTStore against zarr's own conformance suite, plus our contract."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import zarr
from dask.base import tokenize
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.testing.store import StoreTests

from py_hamt import HAMT, InMemoryCAS, InvalidArgumentError, ReadOnlyError, ZarrHAMTStore
from tests.conftest import build_from


class TestZarrHAMTStore(StoreTests[ZarrHAMTStore, cpu.Buffer]):
    store_cls = ZarrHAMTStore
    buffer_cls = cpu.Buffer

    async def set(self, store: ZarrHAMTStore, key: str, value: Any) -> None:
        await store.hamt.set(key, value.to_bytes())

    async def get(self, store: ZarrHAMTStore, key: str) -> Any:
        return self.buffer_cls.from_bytes(await store.hamt.get(key))

    @pytest.fixture
    async def store_kwargs(self) -> dict[str, Any]:
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        return {"hamt": hamt, "read_only": False}

    def test_store_repr(self, store: ZarrHAMTStore) -> None:
        assert repr(store).startswith("ZarrHAMTStore(<HAMT write root=")
        assert "read_only=False" in repr(store)

    def test_store_supports_writes(self, store: ZarrHAMTStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: ZarrHAMTStore) -> None:
        assert store.supports_listing


async def test_store_needs_values_are_bytes() -> None:
    hamt = await HAMT.build(cas=InMemoryCAS())
    with pytest.raises(InvalidArgumentError, match="values_are_bytes=True"):
        ZarrHAMTStore(hamt)


async def test_writable_store_over_read_only_hamt_is_a_value_error() -> None:
    hamt = await build_from([("a", b"1")])
    with pytest.raises(ValueError, match="writable ZarrHAMTStore needs the HAMT in write mode"):
        ZarrHAMTStore(hamt, read_only=False)
    assert ZarrHAMTStore(hamt, read_only=True).read_only


async def test_read_only_store_raises_read_only_error() -> None:
    store = ZarrHAMTStore(await build_from([("a", b"1")]), read_only=True)
    with pytest.raises(ReadOnlyError, match="read-only mode"):
        await store.set("b", cpu.Buffer.from_bytes(b"2"))
    with pytest.raises(ReadOnlyError):
        await store.delete("a")


async def test_metadata_is_cached_per_committed_root() -> None:
    cas = InMemoryCAS()
    hamt = await build_from([("zarr.json", b"{}")], cas)
    store = ZarrHAMTStore(hamt, read_only=True)
    proto = default_buffer_prototype()
    first = await store.get("zarr.json", proto)
    assert first is not None
    assert first.to_bytes() == b"{}"
    cas.store.clear()  # the cache must serve it now
    again = await store.get("zarr.json", proto)
    assert again is not None
    assert again.to_bytes() == b"{}"

    # A new commit of the same HAMT invalidates the cache.
    hamt2 = await build_from([("zarr.json", b"{}")])
    await hamt2.enable_write()
    await hamt2.set("zarr.json", b'{"v":2}')
    await hamt2.make_read_only()
    store2 = ZarrHAMTStore(hamt2, read_only=True)
    await hamt2.enable_write()
    await hamt2.set("zarr.json", b'{"v":3}')
    await hamt2.make_read_only()
    got = await store2.get("zarr.json", proto)
    assert got is not None
    assert got.to_bytes() == b'{"v":3}'
    await hamt2.enable_write()
    await hamt2.set("zarr.json", b'{"v":4}')
    await hamt2.make_read_only()
    got = await store2.get("zarr.json", proto)
    assert got is not None
    assert got.to_bytes() == b'{"v":4}'


async def test_byte_range_past_the_end_is_empty() -> None:
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest

    store = ZarrHAMTStore(await build_from([("c/0", b"abcd")]), read_only=True)
    proto = default_buffer_prototype()
    got = await store.get("c/0", proto, OffsetByteRequest(10))
    assert got is not None
    assert got.to_bytes() == b""
    got = await store.get("c/0", proto, RangeByteRequest(2, 100))
    assert got is not None
    assert got.to_bytes() == b"cd"
    with pytest.raises(InvalidArgumentError, match="end 1 is before its start 3"):
        await store.get("c/0", proto, RangeByteRequest(3, 1))


async def test_dask_token_is_cheap_and_names_the_root() -> None:
    class NoPickleCAS(InMemoryCAS):
        def __reduce_ex__(self, protocol: Any) -> Any:
            raise AssertionError("the CAS was pickled")

    cas = NoPickleCAS()
    hamt = await build_from([("a", b"1")], cas)
    store = ZarrHAMTStore(hamt, read_only=True)
    same = ZarrHAMTStore(
        await HAMT.build(
            cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
        ),
        read_only=True,
    )
    assert tokenize(store) == tokenize(same)
    other = ZarrHAMTStore(await build_from([("a", b"2")], cas), read_only=True)
    assert tokenize(store) != tokenize(other)
    writer = ZarrHAMTStore(await HAMT.build(cas=cas, values_are_bytes=True))
    assert tokenize(writer) == tokenize(writer)
    assert tokenize(writer) != tokenize(ZarrHAMTStore(writer.hamt))


async def test_pickled_read_only_store_reads_the_same() -> None:
    store = ZarrHAMTStore(await build_from([("x/zarr.json", b"{}")]), read_only=True)
    clone = pickle.loads(pickle.dumps(store))
    assert clone == store
    got = await clone.get("x/zarr.json", default_buffer_prototype())
    assert got is not None
    assert got.to_bytes() == b"{}"


async def test_zarr_open_read_mode_on_a_writable_store_gives_a_view() -> None:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    store = ZarrHAMTStore(hamt)
    root = await zarr.api.asynchronous.open_group(store=store, mode="w")
    await root.create_array("a", shape=(4,), dtype="i4", chunks=(2,))
    ro = await zarr.api.asynchronous.open_group(store=store, mode="r")
    assert ro.store_path.store.read_only
    assert [name async for name in ro.array_keys()] == ["a"]


async def test_listing_a_committed_root_walks_its_keys_once() -> None:
    class Counting(InMemoryCAS):
        loads = 0

        async def load(self, *args: Any, **kwargs: Any) -> bytes:
            Counting.loads += 1
            return await super().load(*args, **kwargs)

    cas = Counting()
    keys = [f"g{i}/v{j}/c/{k}" for i in range(5) for j in range(4) for k in range(60)]
    keys += [f"g{i}/zarr.json" for i in range(5)] + ["zarr.json"]
    hamt = await build_from([(k, b"x") for k in keys], cas)
    store = ZarrHAMTStore(hamt, read_only=True)

    async def names(prefix: str) -> list[str]:
        return sorted([n async for n in store.list_dir(prefix)])

    assert await names("") == ["g0", "g1", "g2", "g3", "g4", "zarr.json"]
    assert await names("g2/") == ["v0", "v1", "v2", "v3", "zarr.json"]
    assert await names("g2/v1/c") == sorted(str(k) for k in range(60))
    prefixed = sorted([k async for k in store.list_prefix("g3/v2/")])
    assert prefixed == sorted(k for k in keys if k.startswith("g3/v2/"))

    Counting.loads = 0
    fresh = ZarrHAMTStore(
        await HAMT.build(
            cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
        ),
        read_only=True,
    )
    Counting.loads = 0
    assert sorted([n async for n in fresh.list_dir("g4")]) == ["v0", "v1", "v2", "v3", "zarr.json"]
    assert Counting.loads == 0  # served from the root's index, not a walk


async def test_listings_of_a_large_key_set_stream_and_keep_only_their_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from py_hamt.stores import hamt_store

    monkeypatch.setattr(hamt_store, "MAX_INDEXED_KEYS", 50)  # this key set is "large"
    loads = 0

    class Counting(InMemoryCAS):
        async def load(self, *args: Any, **kwargs: Any) -> bytes:
            nonlocal loads
            loads += 1
            return await super().load(*args, **kwargs)

    cas = Counting()
    keys = [f"v{j}/c/{k}/{m}" for j in range(3) for k in range(20) for m in range(10)]
    keys += ["zarr.json"] + [f"v{j}/zarr.json" for j in range(3)]
    hamt = await build_from([(k, b"x") for k in keys], cas)
    store = ZarrHAMTStore(
        await HAMT.build(
            cas=cas,
            root_node_id=hamt.root_node_id,
            read_only=True,
            values_are_bytes=True,
            max_cache_bytes=0,  # every walk loads, so loads count walks
        ),
        read_only=True,
    )
    loads = 0
    assert sorted([n async for n in store.list_dir("v1/c")]) == sorted(str(k) for k in range(20))
    walked = loads
    assert walked > 1
    assert hamt.root_node_id not in hamt_store._KEY_INDEXES  # too many keys to index whole
    assert sorted([n async for n in store.list_dir("v1/c/")]) == sorted(str(k) for k in range(20))
    assert loads == walked  # the same directory again: kept, no walk
    assert sorted([n async for n in store.list_dir("")]) == ["v0", "v1", "v2", "zarr.json"]
    assert loads == 2 * walked  # another directory: one more walk
    got = sorted([k async for k in store.list_prefix("v2/c/1")])
    assert got == sorted(k for k in keys if k.startswith("v2/c/1"))
