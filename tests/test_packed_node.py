"""Nodes held packed: the scanner, on-demand bucket and id decoding, exact
memory accounting, and bounded walks."""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import blake3
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from py_hamt import HAMT, InMemoryCAS, MalformedNodeError
from py_hamt.codec.cids import make_cid
from py_hamt.codec.node import NODE_WIDTH, Link, decode_node, encode_id, encode_node
from py_hamt.codec.packed_node import (
    Misplaced,
    bucket_lookup,
    bucket_pairs,
    decode_id,
    encode_bucket,
    node_contents,
    scan_node,
)
from py_hamt.trie.hashing import blake3_hashfn
from py_hamt.trie.node import Draft, Node
from py_hamt.trie.walk import MAX_CONCURRENT_LOADS
from tests.conftest import build_from


def cid(seed: int) -> Any:
    return make_cid(0x71, b"\x1e\x20" + blake3.blake3(str(seed).encode()).digest())


ids = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.integers(min_value=0, max_value=10_000).map(cid),
    st.integers(min_value=-(2**40), max_value=2**40),
)
keys = st.text(min_size=0, max_size=40)
buckets = st.dictionaries(
    st.integers(0, NODE_WIDTH - 1), st.dictionaries(keys, ids, min_size=1, max_size=4), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(buckets, st.sets(st.integers(0, NODE_WIDTH - 1), max_size=20))
def test_packed_nodes_hold_exactly_what_the_codec_decodes(
    filled: dict[int, Any], linked: set[int]
) -> None:
    slots: list[Any] = [None] * NODE_WIDTH
    for i, bucket in filled.items():
        slots[i] = bucket
    for i in linked:  # links to distinct children
        slots[i] = Link(cid(1_000_000 + i))
    stored = encode_node(slots)
    node = Node.decode(stored, "the-id", encode_id(b"the-id"), 4)
    assert node.encode() == stored  # the packed form is lossless
    for i, expected in enumerate(decode_node(stored)):
        entry = node.entry(i)
        if expected is None:
            assert entry is None
        elif isinstance(expected, Link):
            assert entry is not None
            assert entry[0] == 0x81
            assert decode_id(entry[1:]) == expected.id
        else:
            assert entry is not None
            got = {k.decode(): decode_id(raw) for k, raw in bucket_pairs(entry)}
            assert got == expected
            # A lookup finds each key's own id (one-key buckets take a
            # shortcut), and a key the bucket does not hold is absent.
            pairs = dict(bucket_pairs(entry))
            for key, raw in pairs.items():
                assert bucket_lookup(entry, key) == raw
                assert bucket_lookup(entry, key + b"~") == pairs.get(key + b"~")
            # Re-encoding the decoded pairs gives the same canonical bytes.
            assert encode_bucket(bucket_pairs(entry)) == entry
    # Thawing and freezing again changes nothing.
    again, frozen = Draft.thaw(node).encode()
    assert again == stored
    assert Draft.freeze(node.raw_id, frozen).encode() == stored
    assert Draft(dict(Draft.thaw(node).slots)).encode()[0] == stored


@settings(max_examples=150, deadline=None)
@given(
    buckets,
    st.sets(st.integers(0, NODE_WIDTH - 1), max_size=20),
    st.binary(min_size=0, max_size=2),
)
def test_a_nodes_contents_list_every_key_and_link_and_check_each_keys_place(
    filled: dict[int, Any], linked: set[int], path: bytes
) -> None:
    every = [k for bucket in filled.values() for k in bucket]
    assume(len(set(every)) == len(every))  # a key lives in one slot
    slots: list[Any] = [None] * NODE_WIDTH
    for i, bucket in filled.items():
        slots[i] = bucket
    for i in linked:
        slots[i] = Link(cid(1_000_000 + i))
    bitmap, packed, offsets = scan_node(encode_node(slots), "the-id", 4)
    got = node_contents(bitmap, packed, offsets)
    expected_keys = [
        k.decode()
        for e in slots
        if isinstance(e, dict)
        for k, _ in bucket_pairs(
            encode_bucket([(key.encode(), encode_id(v)) for key, v in e.items()])
        )
    ]
    assert got.keys == expected_keys
    assert got.count == len(expected_keys)
    assert [(s, decode_id(raw)) for s, raw in got.links] == [
        (i, e.id) for i, e in enumerate(slots) if isinstance(e, Link)
    ]
    # Checked against a hash that places every key where it is (at ``path``),
    # the contents are the same; with the real hash, the first key out of
    # place is named.
    place = {k: path + bytes((i,)) for i, e in enumerate(slots) if isinstance(e, dict) for k in e}

    def placing(kb: bytes) -> bytes:
        return place[kb.decode()] + bytes(32)

    assert node_contents(bitmap, packed, offsets, path, placing).keys == expected_keys
    wrong = [k for k in expected_keys if not blake3_hashfn(k.encode()).startswith(place[k])]
    if wrong:
        with pytest.raises(Misplaced, match=re.escape(f"holds key {wrong[0]!r} in slot")):
            node_contents(bitmap, packed, offsets, path, blake3_hashfn)
    else:
        assert node_contents(bitmap, packed, offsets, path, blake3_hashfn).keys == expected_keys


def _node(slots: dict[int, Any]) -> bytes:
    entries: list[Any] = [None] * NODE_WIDTH
    for i, e in slots.items():
        entries[i] = e
    return encode_node(entries)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_node({}) + b"\x00", "1 trailing bytes after the node"),
        (
            _node({3: {"a": b"1", "b": b"2", "c": b"3"}}),
            "holds 3 keys, more than max_bucket_size=2",
        ),
        (_node({1: Link(b"x"), 9: Link(b"x")}), "slot 9 links child 78 already linked from slot 1"),
        (_node({})[:-5], "not a valid HAMT node"),
        (b"\x99\x01\x00" + b"\x62ab" * 256, "entry 0 is neither a map nor a one-element array"),
        (b"\x99\x01\x00\xa1\x01\x41x" + b"\xa0" * 255, "bucket key at byte 4 is not a text string"),
        # CIDs under tag 42 must start with the 0 byte and hold more than it.
        (
            b"\x99\x01\x00\xa1\x61a\xd8\x2a\x42\x01\x01" + b"\xa0" * 255,
            "malformed CID under tag 42 at byte 6",
        ),
        (b"\x99\x01\x00\x81\xd8\x2a\x41\x00" + b"\xa0" * 255, "malformed CID under tag 42"),
        # DAG-CBOR lengths take their shortest form (py-hamt 3.6 refuses the
        # others too): an id, a CID, a key, a link and two map heads.
        (
            b"\x99\x01\x00\xa1\x61a\x58\x02xy" + b"\xa0" * 255,
            "CBOR length 2 at byte 6 is not minimally encoded",
        ),
        (
            b"\x99\x01\x00\xa1\x61a\xd8\x2a\x58\x03\x00\x01\x55" + b"\xa0" * 255,
            "CBOR length 3 at byte 8 is not minimally encoded",
        ),
        (
            b"\x99\x01\x00\xa1\x78\x01a\x41x" + b"\xa0" * 255,
            "CBOR length 1 at byte 4 is not minimally encoded",
        ),
        (
            b"\x99\x01\x00\x81\x58\x01x" + b"\xa0" * 255,
            "CBOR length 1 at byte 4 is not minimally encoded",
        ),
        (
            b"\x99\x01\x00\xb8\x01\x61a\x41x" + b"\xa0" * 255,
            "CBOR length 1 at byte 3 is not minimally encoded",
        ),
        (b"\x99\x01\x00\xb8\x00" + b"\xa0" * 255, "CBOR length 0 at byte 3 is not minimally"),
        (b"\x99\x01\x00" + b"\xa0" * 255 + b"\xa1\x61a\x59\x01", "runs past the end of the block"),
    ],
)
def test_the_scanner_refuses_malformed_nodes_naming_them(data: bytes, message: str) -> None:
    with pytest.raises(MalformedNodeError, match=message) as caught:
        scan_node(data, "node-7", 2)
    assert "node-7" in str(caught.value)
    # The codec's own decoder refuses each of them too.
    with pytest.raises(MalformedNodeError, match="node-7"):
        decode_node(data, "node-7", max_bucket_size=2)


def _bucket_with(key_bytes: list[bytes]) -> bytes:
    """A bucket entry with keys in the given order and raw bytes (no checks)."""
    out = [bytes((0xA0 + len(key_bytes),))]
    for kb in key_bytes:
        out += [bytes((0x60 + len(kb),)), kb, b"\x41v"]
    return b"".join(out)


GOOD = "fine"


async def _root_beside_a_bad_bucket(cas: InMemoryCAS, bad_keys: list[bytes]) -> tuple[Any, int]:
    """A root whose node holds ``GOOD`` (value ``b"ok"``) and, in the next
    slot, a bucket of ``bad_keys`` spliced in by hand (the encoder would not
    write it): the root's id and the bad slot."""
    good_slot = blake3_hashfn(GOOD.encode())[0]
    bad_slot = (good_slot + 1) % NODE_WIDTH
    entries: list[Any] = [None] * NODE_WIDTH
    entries[good_slot] = {GOOD: await cas.save(b"ok", "raw")}
    draft = Draft.thaw(Node.decode(encode_node(entries), None, b"", 4))
    draft.put(bad_slot, _bucket_with(bad_keys))
    return await cas.save(draft.encode()[0], "dag-cbor"), bad_slot


@pytest.mark.parametrize(
    ("bad_keys", "message"),
    [
        ([b"\xff\xfe"], "can't decode byte 0xff"),
        ([b"b", b"a"], "out of canonical order"),
        ([b"a", b"a"], "out of canonical order or repeated"),
    ],
)
async def test_a_bad_bucket_fails_when_it_is_read_and_in_every_walk(
    bad_keys: list[bytes], message: str
) -> None:
    cas = InMemoryCAS()
    root, bad_slot = await _root_beside_a_bad_bucket(cas, bad_keys)
    ro = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    # A lookup reads one bucket: the good one still answers...
    assert await ro.get(GOOD) == b"ok"
    # ...a lookup that lands on the bad bucket is refused, naming the node...
    probe = next(f"p{i}" for i in range(10_000) if blake3_hashfn(f"p{i}".encode())[0] == bad_slot)
    with pytest.raises(MalformedNodeError, match=message) as caught:
        await ro.get(probe)
    assert root.hex() in str(caught.value)
    # ...and every walk checks every bucket.
    with pytest.raises(MalformedNodeError, match=message):
        await ro.len()
    with pytest.raises(MalformedNodeError, match=message):
        [k async for k in ro.keys()]


@pytest.mark.parametrize(
    ("bad_keys", "message"),
    [([b"\xff\xfe"], "can't decode byte 0xff"), ([b"b", b"a"], "out of canonical order")],
)
async def test_a_write_never_copies_a_bad_bucket_into_a_new_node(
    bad_keys: list[bytes], message: str
) -> None:
    # A set in another slot copies the node's other entries as they are: a
    # bucket nothing has decoded yet must be checked before it is written
    # again, or the new root is one that DAG-CBOR decoders (py-hamt 3.6's)
    # refuse, and the roots are no longer canonical.
    cas = InMemoryCAS()
    root, bad_slot = await _root_beside_a_bad_bucket(cas, bad_keys)
    blocks = len(cas.store)
    hamt = await HAMT.build(cas=cas, root_node_id=root, values_are_bytes=True)
    other = next(f"o{i}" for i in range(10_000) if blake3_hashfn(f"o{i}".encode())[0] != bad_slot)
    with pytest.raises(MalformedNodeError, match=message) as caught:
        await hamt.set_pointer(other, await cas.save(b"v", "raw"))
    assert root.hex() in str(caught.value)
    assert await hamt.get(GOOD) == b"ok"  # the HAMT still reads...
    await hamt.make_read_only()
    assert hamt.root_node_id == root  # ...and its root is the one it had
    assert len(cas.store) == blocks + 1  # the value block, and no node


async def test_cached_bytes_are_exact_and_small() -> None:
    items = [(f"t/c/{i}/{j}", b"v") for i in range(100) for j in range(100)]
    cas = InMemoryCAS()
    hamt = await build_from(items, cas)
    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    assert await ro.len() == len(items)
    cache = ro._loader.cache
    nodes = [node for _, node in cache.snapshot()]
    exact = sum(
        sys.getsizeof(n)
        + sys.getsizeof(n.packed)
        + sys.getsizeof(n.offsets)
        + sys.getsizeof(n.bitmap)
        + sys.getsizeof(n.raw_id)
        for n in nodes
    )
    assert cache.nbytes == exact
    stats = await ro.stats()
    assert len(nodes) == stats["nodes"] - 1  # every node but the root, which the HAMT holds
    # About the encoded size: the empty slots are not kept.
    assert exact < stats["node_bytes"] * 1.3
    assert exact / len(items) < 110


class _InFlightCAS(InMemoryCAS):
    """Counts loads and the most that were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.in_flight = 0
        self.peak = 0

    async def load(self, id: Any, *args: Any, **kwargs: Any) -> bytes:  # noqa: A002
        self.loads += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0)
            return await super().load(id, *args, **kwargs)
        finally:
            self.in_flight -= 1


async def test_walks_load_each_node_once_with_bounded_concurrency() -> None:
    cas = _InFlightCAS()
    items = [(f"k{i}", b"v") for i in range(6000)]
    hamt = await build_from(items, cas)
    ro = await HAMT.build(
        cas=cas,
        root_node_id=hamt.root_node_id,
        read_only=True,
        values_are_bytes=True,
        max_cache_bytes=0,  # nothing cached: the walk holds what it needs itself
    )
    nodes = (await ro.stats())["nodes"]
    cas.loads = cas.peak = 0
    assert await ro.len() == len(items)
    assert cas.loads == nodes - 1  # each node once (the root is held)
    assert 1 < cas.peak <= MAX_CONCURRENT_LOADS  # children load together, within the bound


async def test_hot_nodes_near_the_root_get_views_that_answer_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from py_hamt.trie import node as node_module

    monkeypatch.setattr(node_module, "MAX_VIEWS", 3)
    cas = InMemoryCAS()
    items = [(f"k{i}", str(i).encode()) for i in range(30_000)]  # depth 3
    hamt = await build_from(items, cas)
    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    for _ in range(2):
        for k, v in items[:3000]:
            assert await ro.get(k) == v
        with pytest.raises(KeyError):
            await ro.get("absent")
    root = ro._root
    assert isinstance(root, Node)
    assert type(root.hot) is list  # the root earned a view...
    cached = [n for _, n in ro._loader.cache.snapshot()]
    with_views = [n for n in cached if type(n.hot) is list]
    assert 0 < len(with_views) <= 2  # ...and so did children, within the bound (3 in all)
    deep = {n.raw_id for n in cached} - {
        e[1:] for _, e in root.entries() if e[0] == 0x81
    }  # nodes below the root's children
    assert deep  # this trie has a third level...
    assert all(type(n.hot) is int for n in cached if n.raw_id in deep)  # ...which stays packed
    for k, v in items[:3000]:  # answers through views and packed nodes agree
        assert await ro.get(k) == v


async def test_nodes_of_64_kib_and_more_use_wide_offsets() -> None:
    # Long keys: the root's packed entries pass 64 KiB, so its offsets are
    # uint32; every lookup and walk must still find every key.
    items = [(f"{i:04d}/" + "k" * 300, str(i).encode()) for i in range(500)]
    cas = InMemoryCAS()
    hamt = await build_from(items, cas)
    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    root = await ro._get_root()
    assert isinstance(root, Node)
    assert len(root.packed) >= 0x10000
    assert len(root.offsets) == 4 * (root.used() + 1)
    assert Node.decode(root.encode(), root.id, root.raw_id, 4).encode() == root.encode()
    for key, value in items:
        assert await ro.get(key) == value
    assert sorted([k async for k in ro.keys()]) == sorted(k for k, _ in items)
    thawed = Draft.thaw(root)
    assert sorted(thawed.slots.items()) == list(root.entries())
