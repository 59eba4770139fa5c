"""The one LRU (py_hamt.caching.LRUCache) and the caches built on it."""

from __future__ import annotations

import pickle
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from py_hamt.caching import LRUCache, count_one
from py_hamt.errors import InvalidArgumentError
from py_hamt.stores.document_cache import DocumentCache
from py_hamt.stores.sharded.shard_cache import Shard, ShardCache
from py_hamt.trie.node_cache import NodeCache


@dataclass
class Item:
    size: int
    pinned: bool = False


def size_of(item: Item) -> int:
    return item.size


def is_pinned(item: Item) -> bool:
    return item.pinned


def test_least_recently_used_goes_first_and_get_refreshes() -> None:
    cache: LRUCache[str, bytes] = LRUCache(30, len)
    for key in "abc":
        assert cache.put(key, b"x" * 10)
    assert cache.get("a") == b"x" * 10  # a is now the most recent: b is oldest
    cache.put("d", b"y" * 10)
    assert list(cache) == ["c", "a", "d"]
    assert "b" not in cache
    assert cache.nbytes == 30


def test_mapping_reads_do_not_change_the_order() -> None:
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache["a"] == 1
    assert "a" in cache
    assert dict(cache.items()) == {"a": 1, "b": 2}
    cache.put("c", 3)  # "a" was only peeked at: it is still the oldest
    assert list(cache) == ["b", "c"]
    with pytest.raises(KeyError, match="'a'"):
        cache["a"]


def test_the_byte_bound_holds_after_every_put() -> None:
    cache: LRUCache[int, bytes] = LRUCache(100, len)
    for i in range(50):
        cache.put(i, bytes(i % 37))
        assert cache.nbytes <= 100
        assert cache.nbytes == sum(len(v) for _, v in cache.snapshot())


def test_a_value_larger_than_the_bound_is_refused_and_drops_the_older_copy() -> None:
    cache: LRUCache[str, bytes] = LRUCache(10, len)
    cache.put("k", b"small")
    assert not cache.put("k", b"far too large")
    assert "k" not in cache
    assert cache.nbytes == 0
    assert len(cache) == 0


def test_replacing_a_value_counts_only_the_new_one() -> None:
    cache: LRUCache[str, bytes] = LRUCache(100, len)
    cache.put("k", b"12345")
    cache.put("k", b"12")
    assert cache.nbytes == 2
    assert cache.get("k") == b"12"


def test_count_bound_with_count_one() -> None:
    cache: LRUCache[int, str] = LRUCache(3, count_one)
    for i in range(10):
        cache.put(i, "value of any size" * i)
    assert list(cache) == [7, 8, 9]
    assert cache.nbytes == 3


def test_pinned_entries_survive_eviction_and_are_evicted_once_unpinned() -> None:
    cache: LRUCache[str, Item] = LRUCache(10, size_of, pinned=is_pinned)
    old = Item(6, pinned=True)
    cache.put("old", old)
    cache.put("new", Item(6))  # over the bound: only "new" can go, and it does
    assert list(cache) == ["old"]
    cache.put("big", Item(20, pinned=True))  # a pinned value is kept even over the bound
    assert list(cache) == ["old", "big"]
    assert cache.nbytes == 26
    old.pinned = False
    cache.evict()
    assert list(cache) == ["big"]  # evict stops when only pinned entries are left
    assert cache.nbytes == 20


def test_put_without_evict_keeps_everything_until_evict() -> None:
    cache: LRUCache[str, bytes] = LRUCache(10, len)
    cache.put("a", b"x" * 8)
    cache.put("b", b"y" * 8, evict=False)
    cache.put("c", b"z" * 30, evict=False)
    assert cache.nbytes == 46
    assert len(cache) == 3
    cache.evict()
    assert cache.nbytes == 0  # oldest first: a, b, then c, which alone is over the bound


def test_grew_tracks_in_place_changes_and_removal_uses_the_current_size() -> None:
    cache: LRUCache[str, Item] = LRUCache(100, size_of)
    item = Item(10)
    cache.put("k", item)
    item.size = 25
    cache.grew(15)
    assert cache.nbytes == 25
    assert cache.pop("k") is item
    assert cache.nbytes == 0
    assert cache.pop("k") is None


def test_get_default_and_clear() -> None:
    cache: LRUCache[str, int] = LRUCache(5)
    assert cache.get("missing") is None
    assert cache.get("missing", 7) == 7
    cache.put("a", 0)
    assert cache.get("a", 7) == 0  # a falsy value is still a hit
    cache.clear()
    assert len(cache) == 0
    assert cache.nbytes == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "10"])
def test_the_bound_is_validated(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_bytes must be an int >= 0"):
        LRUCache(bad)  # type: ignore[arg-type]


def test_a_pickled_cache_arrives_empty_with_its_configuration() -> None:
    cache: LRUCache[str, Item] = LRUCache(10, size_of, pinned=is_pinned, locked=False)
    cache.put("k", Item(3))
    clone = pickle.loads(pickle.dumps(cache))
    assert len(clone) == 0
    assert clone.nbytes == 0
    assert clone.max_bytes == 10
    assert not clone.locked
    clone.put("p", Item(50, pinned=True))
    assert "p" in clone  # the pinned predicate travelled too
    node_cache = pickle.loads(pickle.dumps(NodeCache(1000)))
    assert isinstance(node_cache, NodeCache)
    assert node_cache.locked
    assert len(node_cache) == 0


def test_an_empty_cache_equals_an_empty_mapping() -> None:
    assert LRUCache(5) == OrderedDict()


def test_locked_cache_survives_threads_hammering_one_small_cache() -> None:
    cache: LRUCache[int, bytes] = LRUCache(64, len)
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        start.wait()
        for i in range(5000):
            key = (seed * 7 + i) % 23
            if cache.get(key) is None:
                cache.put(key, bytes(key % 9))
            if i % 97 == 0:
                cache.pop(key)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: unlocked, nbytes drifts
    try:
        with ThreadPoolExecutor(8) as pool:
            for done in [pool.submit(work, n) for n in range(8)]:
                done.result()  # re-raises whatever a thread raised
    finally:
        sys.setswitchinterval(interval)
    assert cache.nbytes == sum(len(v) for _, v in cache.snapshot())
    assert cache.nbytes <= 64


# ------------------------------------------------------------ the users of it
def test_document_cache_is_byte_bounded_and_locked() -> None:
    docs = DocumentCache(max_bytes=10)
    assert docs.locked
    docs.put("a/zarr.json", b"12345")
    docs.put("b/zarr.json", b"123456")
    assert list(docs) == ["b/zarr.json"]
    assert docs.nbytes == 6


def test_shard_cache_never_evicts_dirty_shards_or_on_put() -> None:
    cache = ShardCache(max_bytes=1)
    clean = cache.put(("a", 0), Shard([None] * 4))
    dirty = cache.put(("a", 1), Shard([None] * 4))
    assert cache.put(("a", 0), Shard([b"other"] * 4)) is clean  # the cached one wins
    cache.grew(dirty.put(0, b"x" * 36))
    assert cache.nbytes == clean.nbytes + dirty.nbytes
    assert cache.over_budget()
    cache.evict()
    assert len(cache) == 1
    assert cache.get(("a", 1)) is dirty
    assert cache.dirty() == [(("a", 1), dirty)]
    dirty.dirty = False
    cache.evict()
    assert len(cache) == 0
    assert cache.nbytes == 0


def test_shard_cache_drop_array_takes_only_that_array() -> None:
    cache = ShardCache(max_bytes=10**6)
    for path, index in [("a", 0), ("b", 0), ("a", 3)]:
        cache.put((path, index), Shard([None] * 2))
    taken = cache.drop_array("a")
    assert sorted(i for i, _ in taken) == [0, 3]
    assert len(cache) == 1
    assert cache.get(("b", 0)) is not None
    kept = cache.get(("b", 0))
    assert kept is not None
    assert cache.nbytes == kept.nbytes
