"""HAMT behaviour: every method and mode of the API spec."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any, cast

import pytest

from py_hamt import (
    HAMT,
    BlockNotFoundError,
    ContentAddressedStore,
    HashExhaustedError,
    InMemoryCAS,
    InvalidArgumentError,
    KeyNotFoundError,
    MalformedNodeError,
    NotCommittedError,
    ReadOnlyError,
    blake3_hashfn,
)
from tests.conftest import CountingCAS, build_from


async def test_set_get_overwrite_delete(any_cas: ContentAddressedStore) -> None:
    hamt = await HAMT.build(cas=any_cas, values_are_bytes=True)
    for i in range(300):
        await hamt.set(f"k{i}", f"v{i}".encode())
    await hamt.set("k7", b"new")
    assert await hamt.get("k7") == b"new"
    assert await hamt.get("k299") == b"v299"
    await hamt.delete("k8")
    with pytest.raises(KeyNotFoundError, match="key not found: 'k8'"):
        await hamt.get("k8")
    assert await hamt.len() == 299
    assert sorted([k async for k in hamt.keys()]) == sorted(f"k{i}" for i in range(300) if i != 8)


async def test_missing_key_is_a_key_error_naming_it(cas: InMemoryCAS) -> None:
    hamt = await build_from([("a", b"1")], cas)
    with pytest.raises(KeyError) as info:
        await hamt.get("nope")
    assert isinstance(info.value, KeyNotFoundError)
    assert info.value.key == "nope"
    assert "nope" in str(info.value)


async def test_delete_absent_key_raises_and_changes_nothing(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    await hamt.set("a", b"1")
    await hamt.make_read_only()
    before = hamt.root_node_id
    await hamt.enable_write()
    with pytest.raises(KeyNotFoundError, match="'b'"):
        await hamt.delete("b")
    await hamt.make_read_only()
    assert hamt.root_node_id == before


async def test_byte_ranges_apply_to_stored_bytes(cas: InMemoryCAS) -> None:
    hamt = await build_from([("v", b"0123456789")], cas)
    assert await hamt.get("v", offset=2, length=3) == b"234"
    assert await hamt.get("v", offset=7) == b"789"
    assert await hamt.get("v", suffix=2) == b"89"
    assert await hamt.get("v", suffix=0) == b""
    with pytest.raises(InvalidArgumentError, match="offset must be a non-negative int"):
        await hamt.get("v", offset=-1)
    with pytest.raises(KeyNotFoundError):
        await hamt.get("missing", offset=1)


async def test_byte_ranges_need_values_are_bytes(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas)
    await hamt.set("x", [1, 2, 3])
    with pytest.raises(InvalidArgumentError, match=r"values_are_bytes=True .*'x'"):
        await hamt.get("x", offset=1)


async def test_ipld_values_round_trip(cas: InMemoryCAS) -> None:
    values: list[Any] = [0, -5, 2**40, "ü", b"\x00", None, True, [1, "a"], {"x": 1}, 1.5]
    hamt = await HAMT.build(cas=cas)
    for i, v in enumerate(values):
        await hamt.set(f"key-{i}", v)
    await hamt.make_read_only()
    ro = await HAMT.build(cas=cas, root_node_id=hamt.root_node_id, read_only=True)
    assert [await ro.get(f"key-{i}") for i in range(len(values))] == values


async def test_non_ipld_value_is_a_type_error(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas)
    with pytest.raises(TypeError, match="value for key 'k' is not an IPLD value"):
        await hamt.set("k", object())


async def test_values_are_bytes_rejects_other_values(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    with pytest.raises(TypeError, match="values_are_bytes=True needs bytes for key 'k'"):
        await hamt.set("k", "text")
    await hamt.set("b", bytearray(b"ok"))
    assert await hamt.get("b") == b"ok"


async def test_keys_must_be_str(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    with pytest.raises(TypeError, match="HAMT keys are str, got bytes"):
        await hamt.set(b"k", b"v")  # type: ignore[arg-type]


async def test_get_pointer_is_the_value_block_id(cas: InMemoryCAS) -> None:
    hamt = await build_from([("a", b"payload")], cas)
    pointer = await hamt.get_pointer("a")
    assert await cas.load(pointer) == b"payload"
    with pytest.raises(KeyNotFoundError):
        await hamt.get_pointer("b")


async def test_read_only_mode_refuses_writes(cas: InMemoryCAS) -> None:
    hamt = await build_from([("a", b"1")], cas)
    with pytest.raises(ReadOnlyError, match="read-only; call enable_write"):
        await hamt.set("b", b"2")
    with pytest.raises(ReadOnlyError):
        await hamt.delete("a")
    assert isinstance(ReadOnlyError("x"), ValueError)


async def test_enable_write_then_commit_again(cas: InMemoryCAS) -> None:
    hamt = await build_from([(f"k{i}", b"x") for i in range(50)], cas)
    first = hamt.root_node_id
    await hamt.enable_write()
    await hamt.set("extra", b"y")
    await hamt.make_read_only()
    assert hamt.root_node_id != first
    old = await HAMT.build(cas=cas, root_node_id=first, read_only=True, values_are_bytes=True)
    assert not await old.has("extra")  # the previous root is untouched
    assert await hamt.get("extra") == b"y"


async def test_writing_over_an_existing_root_loads_lazily(cas: InMemoryCAS) -> None:
    base = await build_from([(f"k{i}", b"x") for i in range(500)], cas)
    hamt = await HAMT.build(cas=cas, root_node_id=base.root_node_id, values_are_bytes=True)
    assert not hamt.read_only
    await hamt.set("k1", b"changed")
    await hamt.delete("k2")
    await hamt.make_read_only()
    expected = await build_from(
        [(f"k{i}", b"changed" if i == 1 else b"x") for i in range(500) if i != 2]
    )
    assert hamt.root_node_id == expected.root_node_id


async def test_root_node_id_is_not_valid_with_buffered_changes(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    empty_root = hamt.root_node_id  # committed by build
    await hamt.set("a", b"1")
    with pytest.raises(NotCommittedError, match="call make_read_only"):
        _ = hamt.root_node_id
    await hamt.make_read_only()
    assert hamt.root_node_id != empty_root


async def test_max_bucket_size_below_one_is_a_value_error(cas: InMemoryCAS) -> None:
    for bad in (0, -1):
        with pytest.raises(
            InvalidArgumentError, match=f"max_bucket_size must be an int >= 1, got {bad}"
        ):
            await HAMT.build(cas=cas, max_bucket_size=bad)


def test_read_only_constructor_needs_a_root(cas: InMemoryCAS) -> None:
    with pytest.raises(InvalidArgumentError, match="read-only HAMT needs root_node_id"):
        HAMT(cas=cas, read_only=True)


async def test_build_read_only_without_root_writes_an_empty_root(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, read_only=True)
    assert hamt.read_only
    assert await hamt.len() == 0
    assert await cas.load(hamt.root_node_id) == b"\x99\x01\x00" + b"\xa0" * 256


def test_cas_must_be_a_store() -> None:
    with pytest.raises(InvalidArgumentError, match="cas must be a ContentAddressedStore, got dict"):
        HAMT(cas={})  # type: ignore[arg-type]


async def test_custom_hash_fn_and_exhaustion(cas: InMemoryCAS) -> None:
    def one_byte(data: bytes) -> bytes:
        return blake3_hashfn(data)[:1]

    hamt = await HAMT.build(cas=cas, hash_fn=one_byte, values_are_bytes=True, max_bucket_size=2)
    keys = [f"k{i}" for i in range(2000)]
    by_slot: dict[int, list[str]] = {}
    for k in keys:
        by_slot.setdefault(one_byte(k.encode())[0], []).append(k)
    crowded = next(ks for ks in by_slot.values() if len(ks) >= 3)
    await hamt.set(crowded[0], b"1")
    await hamt.set(crowded[1], b"2")
    with pytest.raises(HashExhaustedError, match="needs more than 1 levels"):
        await hamt.set(crowded[2], b"3")
    assert isinstance(HashExhaustedError("x"), ValueError)


async def test_custom_hash_fn_changes_layout(cas: InMemoryCAS) -> None:
    def reversed_blake3(data: bytes) -> bytes:
        return blake3_hashfn(data)[::-1]

    items = [(f"k{i}", b"v") for i in range(200)]
    default = await build_from(items)
    hamt = await HAMT.build(cas=cas, hash_fn=reversed_blake3, values_are_bytes=True)
    for k, v in items:
        await hamt.set(k, v)
    await hamt.make_read_only()
    assert hamt.root_node_id != default.root_node_id
    ro = await HAMT.build(
        cas=cas,
        hash_fn=reversed_blake3,
        root_node_id=hamt.root_node_id,
        read_only=True,
        values_are_bytes=True,
    )
    assert await ro.get("k150") == b"v"


async def test_bad_hash_fn_output_is_a_type_error(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, hash_fn=lambda d: "not bytes", values_are_bytes=True)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="hash_fn must return bytes, got str"):
        await hamt.set("a", b"1")


async def test_cache_size_and_vacate_in_both_modes(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    for i in range(2000):
        await hamt.set(f"k{i}", b"v")
    buffered = await hamt.cache_size()
    assert buffered > 256 * 10
    blocks_before = len(cas.store)
    await hamt.cache_vacate()  # write mode: writes the buffer, then drops it
    assert len(cas.store) > blocks_before
    assert await hamt.cache_size() < buffered / 10
    assert await hamt.get("k1999") == b"v"  # reloads what it needs
    await hamt.make_read_only()

    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    for i in range(2000):
        await ro.get(f"k{i}")
    warm = await ro.cache_size()
    # Clean nodes are held packed: about their encoded size, less than the
    # drafts that held the same keys while they were being written.
    encoded = (await ro.stats())["node_bytes"]
    assert encoded * 0.8 < warm < encoded * 1.5
    assert warm < buffered * 0.7
    await ro.cache_vacate()
    assert await ro.cache_size() == 0
    assert await ro.get("k5") == b"v"


async def test_corrupt_root_fails_at_build_naming_the_block(cas: InMemoryCAS) -> None:
    bad_id = await cas.save(b"\x82\x01\x02", "dag-cbor")
    with pytest.raises(MalformedNodeError, match=f"block {bad_id.hex()} is not a valid HAMT node"):
        await HAMT.build(cas=cas, root_node_id=bad_id, read_only=True)


async def test_unknown_root_is_block_not_found(cas: InMemoryCAS) -> None:
    missing = b"\x1e\x20" + bytes(32)
    with pytest.raises(BlockNotFoundError, match="no block with id 1e200000"):
        await HAMT.build(cas=cas, root_node_id=missing, read_only=True)


async def test_corrupt_child_node_names_its_id(cas: InMemoryCAS) -> None:
    hamt = await build_from([(f"k{i}", b"v") for i in range(3000)], cas)
    root = await cas.load(hamt.root_node_id)
    # Find a child id in the root and corrupt that block in place.
    from py_hamt.codec.node import Link, decode_node

    child_id = cast("bytes", next(e.id for e in decode_node(root) if isinstance(e, Link)))
    cas.store[child_id] = b"\xa0"
    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    with pytest.raises(MalformedNodeError, match=child_id.hex()):
        async for _ in ro.keys():
            pass


async def test_concurrent_sets_lose_nothing(cas: InMemoryCAS) -> None:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    items = [(f"c/{i}", str(i).encode()) for i in range(3000)]
    await asyncio.gather(*(hamt.set(k, v) for k, v in items))
    await hamt.make_read_only()
    assert hamt.root_node_id == (await build_from(items)).root_node_id


async def test_concurrent_reads_share_node_loads(cas: InMemoryCAS) -> None:
    counting = CountingCAS()
    hamt = await build_from([(f"k{i}", b"v") for i in range(2000)], counting)
    ro = await HAMT.build(
        cas=counting, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    counting.loads = 0
    await asyncio.gather(*(ro.get_pointer(f"k{i}") for i in range(2000)))
    children = (await ro.stats())["nodes"] - 1  # the root was loaded by build
    assert children > 1
    assert counting.loads == children  # each node loaded once, not once per reader


async def test_pickled_read_only_hamt_reads_the_same(cas: InMemoryCAS) -> None:
    hamt = await build_from([(f"k{i}", b"v") for i in range(100)], cas)
    clone = pickle.loads(pickle.dumps(hamt))
    assert clone == hamt
    assert await clone.get("k42") == b"v"


def test_hamt_can_move_between_event_loops(cas: InMemoryCAS) -> None:
    hamt = asyncio.run(HAMT.build(cas=cas, values_are_bytes=True))

    async def write(lo: int) -> None:
        await asyncio.gather(*(hamt.set(f"k{i}", b"v") for i in range(lo, lo + 200)))

    asyncio.run(write(0))
    asyncio.run(write(200))
    asyncio.run(hamt.make_read_only())
    assert asyncio.run(hamt.len()) == 400


async def test_commit_writes_independent_nodes_concurrently_children_first() -> None:
    class SlowCAS(InMemoryCAS):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.peak = 0
            self.order: list[bytes] = []

        async def put(self, data: bytes, codec: Any, **kwargs: Any) -> Any:
            if codec != "dag-cbor":
                return await super().put(data, codec, **kwargs)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.001)
            self.in_flight -= 1
            written = await super().put(data, codec, **kwargs)
            self.order.append(written.id)
            return written

    cas = SlowCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    for i in range(3000):
        await hamt.set(f"k{i}", b"v")
    cas.order.clear()
    await hamt.make_read_only()
    assert cas.peak > 8  # siblings were written together, not one at a time
    # Children before parents: every link in a node points at a block saved earlier.
    from py_hamt.codec.node import Link, decode_node

    position = {bid: i for i, bid in enumerate(cas.order)}
    for bid in cas.order:
        for e in decode_node(cas.store[bid]):
            if isinstance(e, Link) and e.id in position:
                assert position[e.id] < position[bid]
    assert cas.order[-1] == hamt.root_node_id


async def test_pickling_needs_a_committed_hamt_and_survives_cids(cid_cas: Any) -> None:
    hamt = await HAMT.build(cas=cid_cas, values_are_bytes=True)
    await hamt.set("a", b"1")
    with pytest.raises(NotCommittedError, match="cannot pickle a HAMT with buffered changes"):
        pickle.dumps(hamt)
    await hamt.make_read_only()
    await hamt.get("a")  # hash objects now hold local functions: CIDs alone would not pickle
    clone = pickle.loads(pickle.dumps(hamt))
    assert clone.root_node_id == hamt.root_node_id
    assert await clone.get("a") == b"1"


async def test_a_commit_writes_nodes_in_one_batch_and_the_root_after_it() -> None:
    import contextlib
    from collections.abc import AsyncIterator

    events: list[str] = []

    class Recording(InMemoryCAS):
        in_batch = False

        def write_batch(self) -> contextlib.AbstractAsyncContextManager[None]:
            @contextlib.asynccontextmanager
            async def batch() -> AsyncIterator[None]:
                events.append("open")
                Recording.in_batch = True
                try:
                    yield
                finally:
                    Recording.in_batch = False
                    events.append("close")

            return batch()

        async def put(self, data: bytes, codec: Any, **kwargs: Any) -> Any:
            if codec == "dag-cbor":
                events.append("node in batch" if Recording.in_batch else "node")
            return await super().put(data, codec, **kwargs)

    cas = Recording()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    events.clear()
    for i in range(2000):
        await hamt.set(f"k{i}", b"v")
    await hamt.make_read_only()
    nodes = (await hamt.stats())["nodes"]
    assert events[0] == "open"
    assert events.count("node in batch") == nodes - 1  # every node below the root
    assert events[-2:] == ["close", "node"]  # the root, once the batch is durable


async def test_key_batches_are_the_keys_a_node_at_a_time() -> None:
    items = [(f"b/{i}", b"v") for i in range(3000)]
    hamt = await build_from(items)
    batches = [b async for b in hamt.key_batches()]
    assert [k for b in batches for k in b] == [k async for k in hamt.keys()]
    assert sorted(k for b in batches for k in b) == sorted(k for k, _ in items)
    assert all(batches)  # nodes holding only links yield nothing
    assert len(batches) < (await hamt.stats())["nodes"] + 1
    assert len(batches) > 1
