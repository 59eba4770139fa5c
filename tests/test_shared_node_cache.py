"""Read-only HAMTs opened on one store object share their node cache: a root
opened again starts warm, and nothing crosses to another store object, other
settings, or a writer."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from py_hamt import HAMT, InMemoryCAS, MalformedNodeError
from py_hamt.trie import node_cache
from py_hamt.trie.hashing import blake3_hashfn
from tests.conftest import CountingCAS, build_from

ITEMS = [(f"temp/c/{i // 50}/{i % 50}", f"value {i}".encode()) for i in range(3000)]


async def _reader(cas: Any, root: Any, **settings: Any) -> HAMT:
    return await HAMT.build(
        cas=cas, root_node_id=root, read_only=True, values_are_bytes=True, **settings
    )


async def _node_loads(cas: CountingCAS, hamt: HAMT, keys: list[str]) -> int:
    """Blocks loaded to find these keys' value ids (nodes only: no value is read)."""
    cas.loads = 0
    for key in keys:
        await hamt.get_pointer(key)
    return cas.loads


async def test_a_root_opened_again_on_the_same_store_starts_warm() -> None:
    cas = CountingCAS()
    root = (await build_from(ITEMS, cas)).root_node_id
    keys = [k for k, _ in ITEMS]
    first = await _reader(cas, root)
    assert await _node_loads(cas, first, keys) > 10  # the writer's cache is its own

    again = await _reader(cas, root)
    assert await _node_loads(cas, again, keys) == 0
    for key, value in ITEMS[::97]:
        assert await again.get(key) == value


@pytest.mark.parametrize(
    "other",
    [
        "another store object",
        "max_bucket_size",
        "hash_fn",
        "an equal hash_fn",
        "max_cache_bytes",
        "a writer",
    ],
)
async def test_other_stores_settings_and_writers_start_cold(other: str) -> None:
    cas = CountingCAS()
    root = (await build_from(ITEMS, cas)).root_node_id
    keys = [k for k, _ in ITEMS[:300]]
    await _node_loads(cas, await _reader(cas, root), keys)  # the shared cache is warm

    def same_hash(data: bytes) -> bytes:
        return blake3_hashfn(data)

    class Blake3:
        """Hash functions that all compare equal: told apart by identity."""

        def __call__(self, data: bytes) -> bytes:
            return blake3_hashfn(data)

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Blake3)

        def __hash__(self) -> int:
            return 0

    reader_cas = cas
    if other == "another store object":
        reader_cas = CountingCAS()
        reader_cas.store.update(cas.store)
        reader = await _reader(reader_cas, root)
    elif other == "max_bucket_size":
        reader = await _reader(cas, root, max_bucket_size=8)
    elif other == "hash_fn":
        reader = await _reader(cas, root, hash_fn=same_hash)
    elif other == "an equal hash_fn":
        await _node_loads(cas, await _reader(cas, root, hash_fn=Blake3()), keys)
        reader = await _reader(cas, root, hash_fn=Blake3())
    elif other == "max_cache_bytes":
        reader = await _reader(cas, root, max_cache_bytes=2**20)
    else:
        reader = await HAMT.build(cas=cas, root_node_id=root, values_are_bytes=True)
    assert await _node_loads(reader_cas, reader, keys) > 10


async def test_a_damaged_copy_of_the_store_is_never_served_from_the_other_ones_cache() -> None:
    cas = InMemoryCAS()
    hamt = await build_from(ITEMS, cas)
    root = hamt.root_node_id
    good = await _reader(cas, root)
    for key, value in ITEMS:  # every node of the good store is now cached, shared
        assert await good.get(key) == value

    values = {value for _, value in ITEMS}
    damaged = InMemoryCAS()
    damaged.store.update(
        {i: (b if i == root or b in values else b"\xa0") for i, b in cas.store.items()}
    )
    reader = await _reader(damaged, root)
    with pytest.raises(MalformedNodeError):
        await reader.get(ITEMS[0][0])
    assert await (await _reader(cas, root)).get(ITEMS[0][0]) == ITEMS[0][1]


async def test_vacating_one_reader_empties_the_cache_it_shares() -> None:
    cas = CountingCAS()
    root = (await build_from(ITEMS, cas)).root_node_id
    keys = [k for k, _ in ITEMS[:300]]
    one, two = await _reader(cas, root), await _reader(cas, root)
    await _node_loads(cas, one, keys)
    assert await _node_loads(cas, two, keys) == 0
    await one.cache_vacate()
    assert await _node_loads(cas, two, keys) > 10


async def test_the_shared_caches_go_with_their_store_object() -> None:
    cas = InMemoryCAS()
    hamt = await build_from(ITEMS[:500], cas)
    reader = await _reader(cas, hamt.root_node_id)
    await reader.get(ITEMS[0][0])
    assert id(cas) in node_cache._SHARED
    key = id(cas)
    del cas, hamt, reader
    gc.collect()
    assert key not in node_cache._SHARED
