"""Hostile and careless input for the trie, its walks and the HAMT stores:
missing blocks are never missing keys, malformed nodes are refused, walks
are bounded, encrypted values can be bound to their keys, and every error
raised on purpose is a PyHamtError."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from multiformats import CID
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype

from py_hamt import (
    HAMT,
    BlockNotFoundError,
    ContentAddressedStore,
    DecryptionError,
    InMemoryCAS,
    InvalidArgumentError,
    KeyNotFoundError,
    LocalCAS,
    MalformedNodeError,
    NotCommittedError,
    PyHamtError,
    SimpleEncryptedZarrHAMTStore,
    ZarrHAMTStore,
    blake3_hashfn,
)
from py_hamt.codec.node import NODE_WIDTH, Link, decode_node, encode_node
from py_hamt.errors import InvalidTypeError, MissingBlockError
from py_hamt.jobs.dag import links
from py_hamt.stores.byte_ranges import to_hamt_range
from py_hamt.trie.node import Draft
from py_hamt.trie.node_cache import NodeCache
from tests.conftest import build_from

KEY = bytes(range(32))
HEADER = b"hardening"
PROTO = default_buffer_prototype()


class TooManyLoads(Exception):
    """A walk loaded more blocks than the DAG holds: it is not bounded."""


class CountingMixin:
    """Counts block loads; past ``budget`` a walk is unbounded, so stop it."""

    loads = 0
    budget = 10_000

    async def load(
        self,
        id: Any,  # noqa: A002 - the CAS method's public name
        offset: Any = None,
        length: Any = None,
        suffix: Any = None,
    ) -> bytes:
        self.loads += 1
        if self.loads > self.budget:
            raise TooManyLoads(f"more than {self.budget} block loads")
        return await super().load(id, offset, length, suffix)  # type: ignore[misc, no-any-return]


class CountingMemoryCAS(CountingMixin, InMemoryCAS):
    pass


class CountingLocalCAS(CountingMixin, LocalCAS):
    pass


def node(slots: dict[int, Any]) -> bytes:
    """A node's bytes with ``slots`` filled (buckets as dicts, links as Link)."""
    entries: list[Any] = [None] * NODE_WIDTH
    for i, e in slots.items():
        entries[i] = e
    return encode_node(entries)


def h(key: str) -> bytes:
    return blake3_hashfn(key.encode())


def keys_sharing_first_byte(n: int, first: int | None = None) -> list[str]:
    """``n`` keys whose hashes share byte 0 (and differ at byte 1)."""
    by_first: dict[int, dict[int, str]] = {}
    i = 0
    while True:
        k = f"k{i}"
        i += 1
        hk = h(k)
        if first is not None and hk[0] != first:
            continue
        group = by_first.setdefault(hk[0], {})
        group.setdefault(hk[1], k)
        if len(group) == n:
            return list(group.values())


async def read_only(cas: ContentAddressedStore, root: Any, **kw: Any) -> HAMT:
    return await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True, **kw)


# --------------------------------------------------------------------------
# 1. A missing block is never a missing key
# --------------------------------------------------------------------------


def small_dataset() -> xr.Dataset:
    temp = np.arange(8 * 6, dtype="float32").reshape(8, 6)
    return xr.Dataset(
        {"temp": (("x", "y"), temp)}, coords={"x": np.arange(8), "y": np.arange(6)}
    ).chunk({"x": 4, "y": 3})


async def written(cas: ContentAddressedStore) -> HAMT:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    small_dataset().to_zarr(store=ZarrHAMTStore(hamt), mode="w", zarr_format=3, consolidated=False)
    await hamt.make_read_only()
    return hamt


def drop_block(cas: ContentAddressedStore, block_id: Any) -> None:
    """Delete a block behind the store's back."""
    if isinstance(cas, InMemoryCAS):
        del cas.store[block_id]
        return
    assert isinstance(cas, LocalCAS)
    assert isinstance(block_id, CID)
    name = bytes(block_id.digest).hex()
    [path] = [f for f in cas.block_files() if f.name == name]
    path.unlink()


@pytest.fixture(params=["memory", "local"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentAddressedStore:
    return InMemoryCAS() if request.param == "memory" else LocalCAS(tmp_path / "cas")


async def test_open_zarr_fails_when_a_metadata_block_is_gone(
    any_store: ContentAddressedStore,
) -> None:
    hamt = await written(any_store)
    vid = await hamt.get_pointer("temp/zarr.json")
    drop_block(any_store, vid)
    ro = await read_only(any_store, hamt.root_node_id)
    with pytest.raises(MissingBlockError, match=r"'temp/zarr\.json'") as info:
        xr.open_zarr(store=ZarrHAMTStore(ro, read_only=True), consolidated=False)
    assert not isinstance(info.value, KeyError)  # zarr would read a KeyError as "absent"
    assert info.value.key == "temp/zarr.json"
    assert info.value.block_id == vid
    with pytest.raises(BlockNotFoundError, match=r"the value of key 'temp/zarr\.json'") as inner:
        await ro.get("temp/zarr.json")
    assert not isinstance(inner.value, KeyNotFoundError)


async def test_reading_a_chunk_whose_block_is_gone_fails(any_store: ContentAddressedStore) -> None:
    hamt = await written(any_store)
    drop_block(any_store, await hamt.get_pointer("temp/c/1/1"))
    ro = await read_only(any_store, hamt.root_node_id)
    ds = xr.open_zarr(store=ZarrHAMTStore(ro, read_only=True), consolidated=False)
    with pytest.raises(MissingBlockError, match=r"temp/c/1/1"):
        ds["temp"].values  # noqa: B018 - the read is the test


async def test_every_read_path_tells_a_missing_block_from_a_missing_key() -> None:
    cas = InMemoryCAS()
    hamt = await build_from([(f"k{i}", b"0123456789") for i in range(40)], cas)
    vid: Any = await hamt.get_pointer("k7")
    del cas.store[vid]
    ro = await read_only(cas, hamt.root_node_id)
    ranges: list[dict[str, int]] = [{}, {"offset": 2, "length": 3}, {"suffix": 2}]
    for window in ranges:
        with pytest.raises(BlockNotFoundError, match=f"{vid.hex()}: the value of key 'k7'"):
            await ro.get("k7", **window)
    assert await ro.has("k7")  # the key is there; its value is not
    with pytest.raises(KeyNotFoundError):
        await ro.get("absent")

    store = ZarrHAMTStore(ro, read_only=True)
    for byte_range in (None, RangeByteRequest(0, 2), OffsetByteRequest(1), SuffixByteRequest(1)):
        with pytest.raises(MissingBlockError, match="'k7'"):
            await store.get("k7", PROTO, byte_range)
    with pytest.raises(MissingBlockError, match="'k7'"):
        await store.get_partial_values(PROTO, [("k7", None), ("k1", None)])
    assert await store.get("absent", PROTO) is None
    assert await store.exists("k7")

    encrypted = SimpleEncryptedZarrHAMTStore(ro, True, KEY, HEADER)
    with pytest.raises(MissingBlockError, match="'k7'"):
        await encrypted.get("k7", PROTO)


async def test_a_missing_node_fails_lookups_listings_and_counts() -> None:
    cas = InMemoryCAS()
    hamt = await build_from([(f"k{i}", b"v") for i in range(3000)], cas)
    root = decode_node(await cas.load(hamt.root_node_id), hamt.root_node_id)
    slot, child = next((i, e) for i, e in enumerate(root) if isinstance(e, Link))
    child_id: Any = child.id
    del cas.store[child_id]
    victim = next(f"k{i}" for i in range(3000) if h(f"k{i}")[0] == slot)
    ro = await read_only(cas, hamt.root_node_id)
    hexid = child_id.hex()
    with pytest.raises(BlockNotFoundError, match=f"{hexid}: a node on the path of key '{victim}'"):
        await ro.get(victim)
    with pytest.raises(BlockNotFoundError, match=f"'{victim}'"):
        await ro.has(victim)
    for walk in (ro.len(), ro.stats()):
        with pytest.raises(BlockNotFoundError, match=f"{hexid}: the child in slot {slot}"):
            await walk
    with pytest.raises(BlockNotFoundError, match=hexid):
        _ = [k async for k in ro.keys()]

    store = ZarrHAMTStore(ro, read_only=True)
    with pytest.raises(MissingBlockError, match=f"'{victim}'"):
        await store.get(victim, PROTO)
    with pytest.raises(MissingBlockError, match=f"'{victim}'"):
        await store.exists(victim)
    for listing in (store.list(), store.list_prefix(""), store.list_dir("")):
        with pytest.raises(MissingBlockError, match=f"cannot list the keys: .*{hexid}"):
            _ = [k async for k in listing]

    await ro.enable_write()
    writable = ZarrHAMTStore(ro)
    # The set's path is not in memory, so the set waits; applying it (here
    # for the commit) meets the missing node and names the key. The commit
    # then writes nothing.
    await writable.set(victim, cpu.Buffer.from_bytes(b"x"))
    blocks = len(cas.store)
    with pytest.raises(BlockNotFoundError, match=f"{hexid}: a node on the path of key '{victim}'"):
        await ro.make_read_only()
    assert not ro.read_only
    assert len(cas.store) == blocks
    with pytest.raises(MissingBlockError, match=f"'{victim}'"):
        await writable.delete(victim)


async def test_a_store_raising_a_plain_key_error_is_a_missing_block() -> None:
    class PlainKeyErrorCAS(InMemoryCAS):
        async def load(
            self,
            id: Any,  # noqa: A002
            offset: Any = None,
            length: Any = None,
            suffix: Any = None,
        ) -> bytes:
            if id not in self.store:
                raise KeyError(id)
            return await super().load(id, offset, length, suffix)

    cas = PlainKeyErrorCAS()
    hamt = await build_from([("a", b"1"), ("b", b"2")], cas)
    pointer: Any = await hamt.get_pointer("a")
    del cas.store[pointer]
    with pytest.raises(BlockNotFoundError, match="the value of key 'a'"):
        await hamt.get("a")


# --------------------------------------------------------------------------
# 4. Malformed nodes are refused
# --------------------------------------------------------------------------


async def test_a_key_in_the_wrong_slot_is_malformed_not_listed() -> None:
    cas = InMemoryCAS()
    vid = await cas.save(b"v", "raw")
    good, bad = "good", "misplaced"
    wrong = (h(bad)[0] + 1) % NODE_WIDTH
    assert wrong != h(good)[0]
    root = await cas.save(node({h(good)[0]: {good: vid}, wrong: {bad: vid}}), "dag-cbor")
    ro = await read_only(cas, root)
    assert await ro.get(good) == b"v"
    with pytest.raises(KeyNotFoundError):
        await ro.get(bad)  # not where its hash leads
    expected = f"{root.hex()} holds key 'misplaced' in slot {wrong} at depth 0"
    with pytest.raises(MalformedNodeError, match=expected):
        _ = [k async for k in ro.keys()]
    with pytest.raises(MalformedNodeError, match=expected):
        await ro.len()
    with pytest.raises(MalformedNodeError, match=expected):
        await ro.stats()
    store = ZarrHAMTStore(ro, read_only=True)
    with pytest.raises(MalformedNodeError, match="'misplaced'"):
        _ = [k async for k in store.list_dir("")]


async def collect(keys: Any, into: list[str]) -> None:
    async for k in keys:
        into.append(k)


async def test_keys_refuses_a_misplaced_key_lazily() -> None:
    cas = InMemoryCAS()
    vid = await cas.save(b"v", "raw")
    bad = "misplaced"
    root = await cas.save(node({(h(bad)[0] + 1) % NODE_WIDTH: {bad: vid}}), "dag-cbor")
    ro = await read_only(cas, root)
    listed: list[str] = []
    with pytest.raises(MalformedNodeError, match="holds key 'misplaced'"):
        await collect(ro.keys(), listed)
    assert listed == []  # refused before anything was listed


async def test_a_key_under_the_wrong_parent_slot_is_malformed() -> None:
    # The key sits at the right slot for depth 1, but under a root slot its
    # hash does not lead to: get cannot find it, so keys must not list it.
    cas = InMemoryCAS()
    vid = await cas.save(b"v", "raw")
    a, b = keys_sharing_first_byte(2)
    c = next(f"x{i}" for i in range(10_000) if h(f"x{i}")[0] != h(a)[0])
    child = await cas.save(
        node({h(a)[1]: {a: vid}, h(b)[1]: {b: vid}, h(c)[1]: {c: vid}}), "dag-cbor"
    )
    root = await cas.save(node({h(a)[0]: Link(child)}), "dag-cbor")
    ro = await read_only(cas, root)
    assert await ro.get(a) == b"v"
    with pytest.raises(KeyNotFoundError):
        await ro.get(c)
    with pytest.raises(MalformedNodeError, match=f"{child.hex()} holds key '{c}'"):
        await ro.len()


async def test_a_non_canonical_3x_shape_still_reads() -> None:
    # py-hamt 3.x leaves a child with few keys after deletes: valid.
    cas = InMemoryCAS()
    vid = await cas.save(b"v", "raw")
    a, b = keys_sharing_first_byte(2)
    child = await cas.save(node({h(a)[1]: {a: vid}, h(b)[1]: {b: vid}}), "dag-cbor")
    root = await cas.save(node({h(a)[0]: Link(child)}), "dag-cbor")
    ro = await read_only(cas, root)
    assert sorted([k async for k in ro.keys()]) == sorted([a, b])
    assert await ro.len() == 2
    assert await ro.get(b) == b"v"
    await ro.enable_write()
    await ro.set("new", b"w")
    assert await ro.get(a) == b"v"


async def test_a_1000_node_chain_is_refused_within_the_hash_length() -> None:
    cas = CountingMemoryCAS()
    vid = await cas.save(b"v", "raw")
    tip = await cas.save(node({0: {"deep": vid}}), "dag-cbor")
    for _ in range(999):
        tip = await cas.save(node({0: Link(tip)}), "dag-cbor")
    ro = await read_only(cas, tip, max_cache_bytes=0)
    cas.loads = 0
    with pytest.raises(MalformedNodeError, match="deeper than the 32-byte hash allows"):
        await ro.len()
    assert cas.loads <= 32
    cas.loads = 0
    with pytest.raises(MalformedNodeError, match="deeper than the 32-byte hash allows"):
        _ = [k async for k in ro.keys()]
    assert cas.loads <= 32
    with pytest.raises(KeyNotFoundError):
        await ro.get("deep")  # its hash does not follow slot 0 down


async def test_a_bucket_larger_than_max_bucket_size_is_malformed() -> None:
    cas = InMemoryCAS()
    keys = keys_sharing_first_byte(5)
    hamt = await build_from([(k, b"v") for k in keys], cas, max_bucket_size=8)
    root: Any = hamt.root_node_id
    with pytest.raises(
        MalformedNodeError, match=f"{root.hex()}.* holds 5 keys, more than max_bucket_size=4"
    ):
        await read_only(cas, root)
    ro = await read_only(cas, hamt.root_node_id, max_bucket_size=5)  # the writer's or larger
    assert await ro.len() == 5


async def test_a_link_that_cannot_be_a_node_fails_when_loaded() -> None:
    cas = InMemoryCAS()
    vid = await cas.save(b"not a node", "raw")
    a = "a"
    root = await cas.save(node({h(a)[0]: Link(vid)}), "dag-cbor")
    ro = await read_only(cas, root)
    with pytest.raises(MalformedNodeError, match=f"block {vid.hex()} is not a valid HAMT node"):
        await ro.get(a)
    # An id of a kind the store cannot load at all (an int for InMemoryCAS).
    root = await cas.save(node({h(a)[0]: Link(12345)}), "dag-cbor")
    ro = await read_only(cas, root)
    with pytest.raises(MalformedNodeError, match=f"{root.hex()} links 12345 in slot {h(a)[0]}"):
        await ro.get(a)


# --------------------------------------------------------------------------
# 5. Walks are bounded
# --------------------------------------------------------------------------


async def fan_out_dag(cas: ContentAddressedStore, levels: int = 5) -> Any:
    """Nodes that link one child from all 256 slots, ``levels`` deep, over a
    leaf node and its value: 256**levels paths through levels + 2 blocks."""
    vid = await cas.save(b"v", "raw")
    tip = await cas.save(node({h("leaf")[0]: {"leaf": vid}}), "dag-cbor")
    for _ in range(levels):
        tip = await cas.save(node(dict.fromkeys(range(NODE_WIDTH), Link(tip))), "dag-cbor")
    return tip


def no_caching(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node visit is a load, so counting loads counts visits."""
    monkeypatch.setattr(NodeCache, "put", lambda self, block_id, node: None)


async def test_fan_out_dag_is_refused_after_one_load(monkeypatch: pytest.MonkeyPatch) -> None:
    no_caching(monkeypatch)
    cas = CountingMemoryCAS()
    cas.budget = 200
    root = await fan_out_dag(cas)
    cas.loads = 0
    with pytest.raises(
        MalformedNodeError, match=r"slot 1 links child \S+ already linked from slot 0"
    ):
        await read_only(cas, root)  # the root is checked as it is loaded
    assert cas.loads == 1
    with pytest.raises(MalformedNodeError, match=f"block {root.hex()} is not a valid HAMT node"):
        await HAMT.build(cas=cas, root_node_id=root)  # write mode too


async def shared_children_dag(cas: ContentAddressedStore, width: int, levels: int) -> Any:
    """``width`` distinct nodes a level, each linking every node of the level
    below from different slots, over one empty leaf: width**levels paths
    through width*levels + 2 blocks."""
    below = [await cas.save(node({}), "dag-cbor")]
    for _ in range(levels):
        here = []
        for j in range(width):
            slots = {(j + m) % NODE_WIDTH: Link(c) for m, c in enumerate(below)}
            here.append(await cas.save(node(slots), "dag-cbor"))
        below = here
    return await cas.save(node({m: Link(c) for m, c in enumerate(below)}), "dag-cbor")


async def run_walk(hamt: HAMT, walk: str) -> None:
    if walk == "keys":
        await collect(hamt.keys(), [])
    else:
        await getattr(hamt, walk)()


@pytest.mark.parametrize("walk", ["keys", "len", "stats"])
async def test_shared_children_are_refused_visiting_each_block_once(
    walk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_caching(monkeypatch)
    cas = CountingMemoryCAS()
    width, levels = 8, 6
    cas.budget = width * levels + 2
    root = await shared_children_dag(cas, width, levels)
    ro = await read_only(cas, root)
    cas.loads = 0
    with pytest.raises(
        MalformedNodeError, match=r"is linked again from slot \d+ of node \w+: a HAMT node has one"
    ):
        await run_walk(ro, walk)
    assert cas.loads <= width * levels + 1


async def test_write_mode_walks_are_bounded_too() -> None:
    cas = CountingMemoryCAS()
    width, levels = 8, 6
    cas.budget = width * levels + 10
    root = await shared_children_dag(cas, width, levels)
    ro = await read_only(cas, root)
    await ro.enable_write()  # no read cache now: every visit would be a load
    with pytest.raises(MalformedNodeError, match="is linked again"):
        await ro.len()


async def test_dag_walker_lists_each_child_once_and_copies_visit_blocks_once(
    tmp_path: Path,
) -> None:
    from py_hamt import copy_dag, export_car

    cas = CountingLocalCAS(tmp_path / "src")
    root = await fan_out_dag(cas)
    assert isinstance(root, CID)
    data = await cas.load(root)
    assert len(links(root, data)) == 1  # 256 links to one child: listed once
    blocks = len(cas.block_files())
    cas.loads = 0
    report = await copy_dag(cas, InMemoryCAS(), root)
    assert report.copied == blocks
    assert cas.loads == blocks
    cas.loads = 0
    exported = await export_car(cas, root, tmp_path / "out.car")
    assert exported.blocks == blocks
    assert cas.loads == blocks


def test_py_hamt_info_on_a_fan_out_dag_stops_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from py_hamt.cli.main import main

    no_caching(monkeypatch)
    loads = 0
    real_load = LocalCAS.load

    async def counted(self: LocalCAS, *args: Any, **kwargs: Any) -> bytes:
        nonlocal loads
        loads += 1
        if loads > 100:
            raise TooManyLoads("py-hamt info is walking paths, not blocks")
        return await real_load(self, *args, **kwargs)

    store = tmp_path / "store"
    root = asyncio.run(fan_out_dag(LocalCAS(store)))
    monkeypatch.setattr(LocalCAS, "load", counted)
    code = main(["info", str(root), "--store", str(store)])
    assert code != 0
    assert loads <= 10
    # The CLI then tries the root as a sharded root, and reports that failure.
    assert str(root) in capsys.readouterr().err


# --------------------------------------------------------------------------
# 15. Encrypted values bound to their keys (opt-in)
# --------------------------------------------------------------------------


async def encrypted(**kw: Any) -> SimpleEncryptedZarrHAMTStore:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    return SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, **kw)


async def swap(hamt: HAMT, a: str, b: str) -> None:
    va, vb = await hamt.get(a), await hamt.get(b)
    await hamt.set(a, vb)
    await hamt.set(b, va)


async def test_bound_mode_refuses_swapped_chunks_naming_the_key() -> None:
    store = await encrypted(bind_keys=True)
    await store.set("t/c/0", cpu.Buffer.from_bytes(b"chunk zero"))
    await store.set("t/c/1", cpu.Buffer.from_bytes(b"chunk one"))
    got = await store.get("t/c/0", PROTO)
    assert got is not None
    assert got.to_bytes() == b"chunk zero"
    await swap(store.hamt, "t/c/0", "t/c/1")
    with pytest.raises(DecryptionError, match=r"cannot decrypt 't/c/0': .*sealed for another key"):
        await store.get("t/c/0", PROTO)
    with pytest.raises(DecryptionError, match="cannot decrypt 't/c/1'"):
        await store.get("t/c/1", PROTO, RangeByteRequest(0, 3))


async def test_default_mode_keeps_the_3x_format_and_cannot_see_a_swap() -> None:
    store = await encrypted()
    await store.set("t/c/0", cpu.Buffer.from_bytes(b"chunk zero"))
    await store.set("t/c/1", cpu.Buffer.from_bytes(b"chunk one"))
    await swap(store.hamt, "t/c/0", "t/c/1")
    got = await store.get("t/c/0", PROTO)
    assert got is not None
    assert got.to_bytes() == b"chunk one"  # why bind_keys exists
    bound = SimpleEncryptedZarrHAMTStore(store.hamt, True, KEY, HEADER, bind_keys=True)
    with pytest.raises(DecryptionError, match="cannot decrypt 't/c/0'"):
        await bound.get("t/c/0", PROTO)  # bound mode does not read 3.x values


async def test_dataset_id_refuses_a_chunk_replayed_from_another_dataset() -> None:
    first = await encrypted(bind_keys=True, dataset_id=b"dataset-A")
    second = await encrypted(bind_keys=True, dataset_id=b"dataset-B")
    await first.set("t/c/0", cpu.Buffer.from_bytes(b"A's chunk"))
    await second.set("t/c/0", cpu.Buffer.from_bytes(b"B's chunk"))
    await second.hamt.set("t/c/0", await first.hamt.get("t/c/0"))  # replay
    with pytest.raises(DecryptionError, match="cannot decrypt 't/c/0'"):
        await second.get("t/c/0", PROTO)
    unbound_id = SimpleEncryptedZarrHAMTStore(first.hamt, True, KEY, HEADER, bind_keys=True)
    with pytest.raises(DecryptionError, match="cannot decrypt 't/c/0'"):
        await unbound_id.get("t/c/0", PROTO)


async def test_bound_mode_xarray_round_trip_and_swap() -> None:
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds = small_dataset()
    opts: dict[str, Any] = {"bind_keys": True, "dataset_id": b"ds-1"}
    ds.to_zarr(
        store=SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, **opts),
        mode="w",
        zarr_format=3,
    )
    store = SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, **opts).with_read_only(True)
    assert store.bind_keys
    assert store.dataset_id == b"ds-1"
    back = xr.open_zarr(store).load()
    xr.testing.assert_identical(back, ds.compute())
    await swap(hamt, "temp/c/0/0", "temp/c/1/1")
    with pytest.raises(DecryptionError, match=r"cannot decrypt 'temp/c/(0/0|1/1)'"):
        xr.open_zarr(store)["temp"].values  # noqa: B018 - the read is the test


async def test_bound_mode_arguments_are_checked() -> None:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    with pytest.raises(InvalidArgumentError, match="dataset_id needs bind_keys=True"):
        SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, dataset_id=b"x")
    with pytest.raises(InvalidTypeError, match="dataset_id must be bytes or None, got str"):
        SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, bind_keys=True, dataset_id="x")  # type: ignore[arg-type]
    a = SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, bind_keys=True)
    assert a != SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER)
    assert (
        a.__dask_tokenize__()
        != SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER).__dask_tokenize__()
    )


# --------------------------------------------------------------------------
# 14. Errors raised on purpose are PyHamtErrors
# --------------------------------------------------------------------------


async def test_type_errors_are_invalid_type_errors(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    with pytest.raises(InvalidTypeError, match="HAMT keys are str, got bytes"):
        await hamt.set(b"k", b"v")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="values_are_bytes=True needs bytes for key 'k'"):
        await hamt.set("k", 1)
    ipld = await HAMT.build(cas=cas)
    with pytest.raises(InvalidTypeError, match="value for key 'k' is not an IPLD value"):
        await ipld.set("k", object())
    odd = await HAMT.build(cas=cas, hash_fn=lambda b: "x")  # type: ignore[arg-type, return-value]
    with pytest.raises(InvalidTypeError, match="hash_fn must return bytes, got str for key 'k'"):
        await odd.set("k", 1)
    store = ZarrHAMTStore(hamt)
    with pytest.raises(InvalidTypeError, match="expects a zarr Buffer for key 'k', got bytes"):
        await store.set("k", b"v")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="Unexpected byte_range"):
        to_hamt_range((0, 1))  # type: ignore[arg-type]


def test_codec_and_node_errors_are_py_hamt_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="a node has 256 entries, got 3"):
        encode_node([None, None, None])
    entries: list[Any] = [None] * NODE_WIDTH
    entries[0] = Link(object())
    with pytest.raises(
        InvalidTypeError, match=r"cannot store id <object .+> of type object in a HAMT node"
    ):
        encode_node(entries)
    parent = Draft.empty()
    parent.put(0, Draft.empty())
    with pytest.raises(NotCommittedError, match="child is not saved"):
        parent.encode()
    for cls in (InvalidTypeError, MissingBlockError, MalformedNodeError, DecryptionError):
        assert issubclass(cls, PyHamtError)
