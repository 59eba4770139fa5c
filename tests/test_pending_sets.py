"""Sets whose path is not in memory wait, and are applied together in hash
order: same results, one load per node, bounded memory, nothing lost."""

from __future__ import annotations

import asyncio
import pickle
import random
from typing import Any

import pytest

from py_hamt import (
    HAMT,
    HashExhaustedError,
    InMemoryCAS,
    KeyNotFoundError,
    NotCommittedError,
    blake3_hashfn,
)
from py_hamt.trie.pending import PendingSets
from tests.conftest import CountingCAS, build_from

ITEMS = [(f"v/c/{i}", f"{i}".encode()) for i in range(3000)]


async def reopen(cas: InMemoryCAS, root: Any, **kw: Any) -> HAMT:
    """``root`` opened for writing with nothing cached."""
    kw.setdefault("max_cache_bytes", 0)
    return await HAMT.build(cas=cas, root_node_id=root, values_are_bytes=True, **kw)


async def test_each_node_is_loaded_once_for_all_the_sets_waiting_on_it() -> None:
    cas = CountingCAS()
    base = await build_from(ITEMS, cas)
    nodes = (await base.stats())["nodes"]
    hamt = await reopen(cas, base.root_node_id)
    cas.loads = 0
    for i in range(0, 3000, 2):
        await hamt.set_pointer(f"v/c/{i}", await cas.save(b"new", "raw"))
    assert cas.loads == 0  # nothing is loaded while the sets wait
    await hamt.make_read_only()
    # One load per node at most (about 1,500 if every set loaded its path).
    assert 0 < cas.loads < nodes
    assert await hamt.get("v/c/42") == b"new"
    assert await hamt.get("v/c/43") == b"43"


async def test_waiting_sets_give_the_root_of_the_same_key_set() -> None:
    rng = random.Random(7)
    cas = InMemoryCAS()
    base = await build_from(ITEMS, cas)
    model = dict(ITEMS)
    hamt = await reopen(cas, base.root_node_id, max_buffer_bytes=20_000)
    for step in range(3000):
        k = f"v/c/{rng.randrange(4000)}"
        if step % 5 == 4 and k in model:
            await hamt.delete(k)
            del model[k]
        else:
            v = f"{step}".encode()
            await hamt.set(k, v)
            model[k] = v
    await hamt.make_read_only()
    fresh = await build_from(sorted(model.items()), InMemoryCAS())
    assert hamt.root_node_id == fresh.root_node_id
    for k, v in rng.sample(sorted(model.items()), 200):
        assert await hamt.get(k) == v


async def test_reads_see_the_waiting_sets_made_before_them() -> None:
    cas = InMemoryCAS()
    base = await build_from(ITEMS, cas)
    hamt = await reopen(cas, base.root_node_id)
    await hamt.set("v/c/5", b"first")
    await hamt.set("v/c/5", b"second")  # the same key waits twice: the later wins
    await hamt.set("new", b"n")
    assert await hamt.get("v/c/5") == b"second"
    assert await hamt.has("new")
    await hamt.set("v/c/6", b"x")
    await hamt.delete("v/c/6")  # the delete comes after the set it follows
    with pytest.raises(KeyNotFoundError):
        await hamt.get("v/c/6")
    assert await hamt.len() == 3000
    assert "new" in {k async for k in hamt.keys()}


async def test_concurrent_sets_and_reads_keep_their_order() -> None:
    cas = InMemoryCAS()
    base = await build_from(ITEMS, cas)
    hamt = await reopen(cas, base.root_node_id, max_buffer_bytes=5_000)

    async def writer(w: int) -> None:
        for n in range(40):
            key = f"v/c/{(w * 131 + n * 17) % 3000}"
            value = f"{w}.{n}".encode()
            await hamt.set(key, value)
            assert await hamt.get(key) == value  # nobody else writes this key

    keys = {(w * 131 + n * 17) % 3000 for w in range(8) for n in range(40)}
    assert len(keys) == 8 * 40  # the writers' keys are distinct
    await asyncio.gather(*(writer(w) for w in range(8)))
    await hamt.make_read_only()
    assert await hamt.get(f"v/c/{131 * 3 + 17 * 39}") == b"3.39"
    assert await hamt.len() == 3000


async def test_waiting_sets_stay_within_the_write_buffer_bound() -> None:
    cas = InMemoryCAS()
    base = await build_from(ITEMS, cas)
    bound = 30_000
    hamt = await reopen(cas, base.root_node_id, max_buffer_bytes=bound)
    for i in range(6000):
        await hamt.set(f"w/{i}", b"v")
        assert hamt._held() <= bound
    await hamt.make_read_only()
    assert await hamt.len() == 9000


async def test_a_failing_waiting_set_is_named_and_the_others_are_kept() -> None:
    def two_bytes(data: bytes) -> bytes:
        return blake3_hashfn(data)[:2]

    # Three keys sharing both hash bytes fit no bucket of two: the third fails.
    by_prefix: dict[bytes, list[str]] = {}
    for i in range(200_000):
        by_prefix.setdefault(two_bytes(f"k{i}".encode()), []).append(f"k{i}")
    crowded = next(ks for ks in by_prefix.values() if len(ks) >= 3)
    prefix = two_bytes(crowded[0].encode())
    neighbours = [  # enough keys in the same root slot to make it a child node
        k for k in (f"k{i}" for i in range(2000)) if two_bytes(k.encode())[0] == prefix[0]
    ]
    neighbours = [k for k in neighbours if two_bytes(k.encode()) != prefix][:8]
    assert len(neighbours) == 8
    cas = InMemoryCAS()
    base = await HAMT.build(cas=cas, hash_fn=two_bytes, values_are_bytes=True, max_bucket_size=2)
    for k in [*crowded[:2], *neighbours]:
        await base.set(k, b"old")
    await base.make_read_only()

    hamt = await reopen(cas, base.root_node_id, hash_fn=two_bytes, max_bucket_size=2)
    before = hamt.root_node_id
    await hamt.set(crowded[0], b"a")
    await hamt.set(crowded[2], b"bad")  # waits: its slot's child is not loaded
    await hamt.set(crowded[1], b"b")
    with pytest.raises(HashExhaustedError, match=repr(crowded[2])):
        await hamt.make_read_only()
    assert not hamt.read_only
    with pytest.raises(NotCommittedError):  # crowded[1] still waits
        _ = hamt.root_node_id
    await hamt.make_read_only()
    assert hamt.root_node_id != before
    assert await hamt.get(crowded[0]) == b"a"
    assert await hamt.get(crowded[1]) == b"b"
    with pytest.raises(KeyNotFoundError):
        await hamt.get(crowded[2])


async def _with_waiting_sets() -> tuple[CountingCAS, HAMT]:
    """A reopened HAMT whose sets to every third key of 3,000 wait."""
    cas = CountingCAS()
    base = await build_from(ITEMS, cas)
    hamt = await reopen(cas, base.root_node_id)
    for i in range(0, 3000, 3):
        await hamt.set(f"v/c/{i}", b"z")
    return cas, hamt


async def test_a_store_that_fails_to_load_loses_no_waiting_set() -> None:
    cas, hamt = await _with_waiting_sets()
    cas.failures = 1
    with pytest.raises(ConnectionError):
        await hamt.get("v/c/0")
    await hamt.make_read_only()
    for i in range(0, 3000, 3):
        assert await hamt.get(f"v/c/{i}") == b"z"


async def test_a_cancelled_drain_loses_no_set() -> None:
    cas, hamt = await _with_waiting_sets()
    cas.gate = asyncio.Event()
    commit = asyncio.ensure_future(hamt.make_read_only())
    await cas.waiting.wait()
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    cas.gate = None
    await hamt.make_read_only()
    for i in range(0, 3000, 3):
        assert await hamt.get(f"v/c/{i}") == b"z"
    assert await hamt.get("v/c/1") == b"1"


async def test_a_hamt_with_waiting_sets_is_not_committed() -> None:
    cas = InMemoryCAS()
    base = await build_from(ITEMS, cas)
    hamt = await reopen(cas, base.root_node_id)
    await hamt.set("v/c/1", b"x")
    with pytest.raises(NotCommittedError):
        _ = hamt.root_node_id
    with pytest.raises(NotCommittedError):
        pickle.dumps(hamt)
    assert await hamt.cache_size() > 0


def test_pending_sets_sort_by_hash_and_keep_the_order_of_one_key() -> None:
    hashes = {b"a": b"\x01\x02", b"b": b"\x01\x09", b"c": b"\x05\x00"}
    pending = PendingSets()
    pending.add(1, b"b", b"1")
    pending.add(1, b"a", b"1")
    pending.add(1, b"b", b"2")
    pending.add(5, b"c", b"1")
    assert pending.count == 4
    assert pending.next_slot() == 1
    taken = pending.take(1, hashes.__getitem__)
    assert taken == [
        (b"\x01\x02", b"a", b"1"),
        (b"\x01\x09", b"b", b"1"),
        (b"\x01\x09", b"b", b"2"),
    ]
    pending.add(1, b"b", b"3")  # made while the slot was being applied
    pending.put_back(1, taken[1:])
    assert pending.take(1, hashes.__getitem__) == [
        (b"\x01\x09", b"b", b"1"),
        (b"\x01\x09", b"b", b"2"),
        (b"\x01\x09", b"b", b"3"),
    ]
    assert pending.count == 1
    assert pending.nbytes == 6 + 1 + 1
    pending.take(5, hashes.__getitem__)
    assert pending.count == pending.nbytes == 0
    assert pending.take(7, hashes.__getitem__) == []


async def test_after_the_buffer_spills_sets_wait_rather_than_thaw_cached_nodes() -> None:
    cas = CountingCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True, max_buffer_bytes=40_000)
    for k, v in ITEMS:
        await hamt.set(k, v)
    # The buffer has spilled: written nodes are clean and cached, so before
    # this rule each of these sets would have thawed a whole leaf for itself.
    assert hamt._spilled
    hamt.max_buffer_bytes = 2**30  # no further drain while we look
    waiting = hamt._pending.count
    cas.loads = 0
    for i in range(0, 3000, 10):
        await hamt.set(f"v/c/{i}", b"again")
    # Most of the 300 wait (those under drafts made since the spill do not).
    assert hamt._pending.count - waiting > 150
    assert cas.loads == 0
    await hamt.make_read_only()
    assert await hamt.get("v/c/10") == b"again"
    assert await hamt.get("v/c/11") == b"11"
    fresh = await build_from(
        [(k, b"again" if int(k[4:]) % 10 == 0 else v) for k, v in ITEMS], InMemoryCAS()
    )
    assert hamt.root_node_id == fresh.root_node_id
