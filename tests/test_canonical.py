"""Canonical form: the root depends only on the key set.

Modelled on go-hamt-ipld's order-independence tests: random histories of
sets and deletes are compared with the root built from the final set alone.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from py_hamt import HAMT, InMemoryCAS
from py_hamt.codec.node import Link, decode_node
from tests.conftest import build_from, run

keys = st.text(alphabet="abcdefghij/0123456789", min_size=1, max_size=6)
# A small key pool, so deletes hit present keys and buckets overflow often.
pool = st.sampled_from([f"c/{i}" for i in range(400)])
ops = st.lists(
    st.tuples(st.sampled_from(["set", "set", "del"]), pool, st.binary(max_size=4)),
    min_size=50,
    max_size=600,
)


async def replay(
    history: list[tuple[str, str, bytes]], bucket: int
) -> tuple[object, dict[str, bytes]]:
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True, max_bucket_size=bucket)
    model: dict[str, bytes] = {}
    for op, k, v in history:
        if op == "set":
            await hamt.set(k, v)
            model[k] = v
        elif k in model:
            await hamt.delete(k)
            del model[k]
    await hamt.make_read_only()
    return hamt.root_node_id, model


@settings(max_examples=80, deadline=None)
@given(ops, st.sampled_from([1, 1, 2, 3, 4]))
def test_any_history_gives_the_root_of_its_final_key_set(
    history: list[tuple[str, str, bytes]], bucket: int
) -> None:
    root, model = run(replay(history, bucket))
    fresh = run(build_from(sorted(model.items()), max_bucket_size=bucket))
    assert root == fresh.root_node_id


@settings(max_examples=25, deadline=None)
@given(st.lists(keys, min_size=1, max_size=200, unique=True), st.randoms(use_true_random=False))
def test_insert_order_does_not_matter(ks: list[str], rnd: random.Random) -> None:
    items = [(k, k.encode()) for k in ks]
    shuffled = items[:]
    rnd.shuffle(shuffled)
    assert run(build_from(items)).root_node_id == run(build_from(shuffled)).root_node_id


def test_delete_collapses_a_split_bucket() -> None:
    """Two keys sharing a root slot split with max_bucket_size=1; deleting one
    must fold the child node back into a bucket."""

    async def go() -> None:
        from py_hamt import blake3_hashfn

        by_slot: dict[int, list[str]] = {}
        for i in range(1000):
            by_slot.setdefault(blake3_hashfn(f"k{i}".encode())[0], []).append(f"k{i}")
        a, b = next(v for v in by_slot.values() if len(v) >= 2)[:2]
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True, max_bucket_size=1)
        await hamt.set(a, b"1")
        await hamt.set(b, b"2")
        await hamt.delete(b)
        await hamt.make_read_only()
        assert hamt.root_node_id == (await build_from([(a, b"1")], max_bucket_size=1)).root_node_id

    run(go())


def test_delete_everything_gives_the_empty_root() -> None:
    async def go() -> None:
        empty = await build_from([])
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True, max_bucket_size=1)
        ks = [f"key{i}" for i in range(600)]
        for k in ks:
            await hamt.set(k, b"v")
        random.Random(3).shuffle(ks)
        for k in ks:
            await hamt.delete(k)
        await hamt.make_read_only()
        assert hamt.root_node_id == empty.root_node_id

    run(go())


def test_deletes_across_commits_stay_canonical() -> None:
    async def go() -> None:
        cas = InMemoryCAS()
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ks = [f"t/c/{i}" for i in range(1500)]
        for k in ks:
            await hamt.set(k, b"v")
        await hamt.make_read_only()
        reopened = await HAMT.build(cas=cas, root_node_id=hamt.root_node_id, values_are_bytes=True)
        for k in ks[100:]:
            await reopened.delete(k)
        await reopened.make_read_only()
        assert (
            reopened.root_node_id == (await build_from([(k, b"v") for k in ks[:100]])).root_node_id
        )

    run(go())


def test_structure_follows_the_bucket_rule() -> None:
    """Every child node holds more than max_bucket_size keys in its subtree."""

    async def go() -> None:
        cas = InMemoryCAS()
        hamt = await HAMT.build(cas=cas, values_are_bytes=True, max_bucket_size=2)
        ks = [f"k{i}" for i in range(3000)]
        for k in ks:
            await hamt.set(k, b"v")
        for k in ks[::3]:
            await hamt.delete(k)
        await hamt.make_read_only()

        async def count(node_id: object, is_root: bool) -> int:
            entries = decode_node(await cas.load(node_id))
            total = 0
            for e in entries:
                if isinstance(e, Link):
                    total += await count(e.id, False)
                elif e:
                    assert 1 <= len(e) <= 2
                    total += len(e)
            if not is_root:
                assert total > 2, "a child node small enough to be a bucket"
            return total

        assert await count(hamt.root_node_id, True) == 2000

    run(go())
