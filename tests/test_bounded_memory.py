"""Caches and buffers stay within the byte limits users set."""

from __future__ import annotations

import tracemalloc

import pytest

from py_hamt import HAMT, InMemoryCAS, InvalidArgumentError
from tests.conftest import build_from

ITEMS = [(f"t/c/{i}/{j}", f"{i}.{j}".encode()) for i in range(200) for j in range(100)]


async def test_read_cache_stays_within_its_bound() -> None:
    cas = InMemoryCAS()
    hamt = await build_from(ITEMS, cas)
    limit = 400_000
    ro = await HAMT.build(
        cas=cas,
        root_node_id=hamt.root_node_id,
        read_only=True,
        values_are_bytes=True,
        max_cache_bytes=limit,
    )
    for k, v in ITEMS[::7]:
        assert await ro.get(k) == v
        assert ro._loader.cache.nbytes <= limit
    assert len(ro._loader.cache) > 10  # it does cache, within the bound
    root_memory = (await ro._get_root()).memory()
    assert await ro.cache_size() <= limit + root_memory


async def test_committing_hands_the_tree_to_the_bounded_cache() -> None:
    limit = 200_000
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True, max_cache_bytes=limit)
    for k, v in ITEMS:
        await hamt.set(k, v)
    assert await hamt.cache_size() > 10 * limit  # the write buffer is not bounded by the cache
    await hamt.make_read_only()
    assert await hamt.cache_size() <= limit + (await hamt._get_root()).memory()
    assert await hamt.get("t/c/123/45") == b"123.45"


@pytest.mark.parametrize("limit", [50_000, 400_000])
async def test_write_buffer_flushes_on_its_own_and_the_root_is_unchanged(limit: int) -> None:
    unbounded = await build_from(ITEMS)
    hamt = await HAMT.build(
        cas=InMemoryCAS(), values_are_bytes=True, max_buffer_bytes=limit, max_cache_bytes=limit
    )
    peak = 0
    for n, (k, v) in enumerate(ITEMS):
        await hamt.set(k, v)
        if n % 500 == 0:
            peak = max(peak, await hamt.cache_size())
    for k, _ in ITEMS[::3]:
        await hamt.delete(k)
        # Changed nodes are written once they pass the bound (a delete may
        # leave up to one path of drafts above it).
        assert hamt._buffer.nbytes <= limit + 40 * 3 * 1024
    await hamt.make_read_only()
    expected = await build_from([kv for n, kv in enumerate(ITEMS) if n % 3])
    assert hamt.root_node_id == expected.root_node_id
    # The flushes really bounded memory (an unbounded build holds far more).
    assert peak < (await unbounded.cache_size()) + limit + 200_000


async def test_long_jobs_hold_bounded_real_memory() -> None:
    """tracemalloc: the buffer bound holds for real allocations, not only estimates."""

    async def held(limit: int) -> int:
        cas = InMemoryCAS()
        hamt = await HAMT.build(
            cas=cas, values_are_bytes=True, max_buffer_bytes=limit, max_cache_bytes=limit
        )
        tracemalloc.start()
        try:
            for k, v in ITEMS[:8000]:
                await hamt.set(k, v)
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        stored = sum(len(b) + len(i) + 140 for i, b in cas.store.items())  # the CAS's share
        return current - stored

    bounded = await held(64 * 1024)
    unbounded = await held(2**40)
    assert bounded < 1.5 * 2**20
    assert bounded < unbounded / 2


@pytest.mark.parametrize("kwarg", ["max_cache_bytes", "max_buffer_bytes"])
def test_limits_are_validated(kwarg: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{kwarg} must be an int >= 0"):
        HAMT(cas=InMemoryCAS(), **{kwarg: -1})  # type: ignore[arg-type]


async def test_store_document_caches_are_bounded() -> None:
    from zarr.core.buffer import default_buffer_prototype

    from py_hamt import ZarrHAMTStore
    from py_hamt.stores.document_cache import DocumentCache

    docs = [(f"g{i}/zarr.json", b"{" + b" " * 4000 + b"}") for i in range(50)]
    hamt = await build_from(docs)
    store = ZarrHAMTStore(hamt, read_only=True)
    store._metadata = DocumentCache(max_bytes=20_000)
    for key, value in docs:
        got = await store.get(key, default_buffer_prototype())
        assert got is not None
        assert got.to_bytes() == value
        assert store._metadata.nbytes <= 20_000
    assert len(store._metadata) == 4
