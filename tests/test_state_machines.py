"""Stateful tests (hypothesis RuleBasedStateMachine): the HAMT against a
dict, and each Zarr store against zarr's MemoryStore."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from py_hamt import (
    HAMT,
    InMemoryCAS,
    KeyNotFoundError,
    ShardedZarrStore,
    SimpleEncryptedZarrHAMTStore,
    ZarrHAMTStore,
)
from tests.conftest import build_from

KEYS = st.sampled_from([f"k{i}" for i in range(60)])
VALUES = st.binary(max_size=8)
SETTINGS = settings(max_examples=30, stateful_step_count=40, deadline=None)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class HamtAgainstDict(RuleBasedStateMachine):
    @initialize(bucket=st.sampled_from([1, 2, 4]), buffer=st.sampled_from([0, 20_000, 2**30]))
    def start(self, bucket: int, buffer: int) -> None:
        self.bucket = bucket
        self.cas = InMemoryCAS()
        self.hamt = run(
            HAMT.build(
                cas=self.cas, values_are_bytes=True, max_bucket_size=bucket, max_buffer_bytes=buffer
            )
        )
        self.model: dict[str, bytes] = {}

    @precondition(lambda self: not self.hamt.read_only)
    @rule(key=KEYS, value=VALUES)
    def set(self, key: str, value: bytes) -> None:
        run(self.hamt.set(key, value))
        self.model[key] = value

    @precondition(lambda self: not self.hamt.read_only)
    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key in self.model:
            run(self.hamt.delete(key))
            del self.model[key]
        else:
            try:
                run(self.hamt.delete(key))
            except KeyNotFoundError:
                return
            raise AssertionError(f"deleting absent {key!r} did not raise")

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        try:
            got = run(self.hamt.get(key))
        except KeyNotFoundError:
            assert key not in self.model
        else:
            assert got == self.model[key]

    @precondition(lambda self: not self.hamt.read_only)
    @rule()
    def commit(self) -> None:
        run(self.hamt.make_read_only())
        fresh = run(build_from(sorted(self.model.items()), max_bucket_size=self.bucket))
        assert self.hamt.root_node_id == fresh.root_node_id, "not canonical"

    @precondition(lambda self: self.hamt.read_only)
    @rule()
    def enable_write(self) -> None:
        run(self.hamt.enable_write())

    @rule()
    def vacate(self) -> None:
        run(self.hamt.cache_vacate())

    @invariant()
    def keys_and_len_match(self) -> None:
        keys = run(_collect(self.hamt.keys()))
        assert sorted(keys) == sorted(self.model)
        assert run(self.hamt.len()) == len(self.model)


async def _collect(items: Any) -> list[Any]:
    return [x async for x in items]


# ---------------------------------------------------------------- Zarr stores
STORE_KEYS = st.sampled_from(
    [
        "zarr.json",
        "a/zarr.json",
        "a/c/0/0",
        "a/c/0/1",
        "a/c/1/1",
        "a/c/3/0",
        "b/zarr.json",
        "b/c/0",
        "b/c/5",
        "a/b/zarr.json",
        "a/b/c/0",
        "c/0",
        "x",
    ]
)
RANGES = st.one_of(
    st.none(),
    st.builds(lambda a, n: RangeByteRequest(a, a + n), st.integers(0, 12), st.integers(0, 12)),
    st.builds(OffsetByteRequest, st.integers(0, 12)),
    st.builds(SuffixByteRequest, st.integers(0, 12)),
)


def array_doc(shape: list[int], chunks: list[int]) -> bytes:
    return json.dumps(
        {
            "zarr_format": 3,
            "node_type": "array",
            "shape": shape,
            "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "bytes"}],
        }
    ).encode()


class StoreAgainstMemory(RuleBasedStateMachine):
    """Subclasses say which store; every answer must match MemoryStore's."""

    def make_store(self) -> Any:
        raise NotImplementedError

    @initialize()
    def start(self) -> None:
        self.store = self.make_store()
        self.memory = MemoryStore()
        self.proto = default_buffer_prototype()

    def both(self, method: str, *args: Any) -> tuple[Any, Any]:
        return (
            sync(getattr(self.store, method)(*args)),
            sync(getattr(self.memory, method)(*args)),
        )

    @rule(key=STORE_KEYS, value=st.binary(max_size=12))
    def set(self, key: str, value: bytes) -> None:
        self.both("set", key, cpu.Buffer.from_bytes(value))

    @rule(
        path=st.sampled_from(["a", "b", "a/b"]),
        shape=st.lists(st.integers(0, 9), min_size=1, max_size=2),
        chunk=st.integers(1, 4),
    )
    def set_array_metadata(self, path: str, shape: list[int], chunk: int) -> None:
        doc = array_doc(shape, [chunk] * len(shape))
        self.both("set", f"{path}/zarr.json", cpu.Buffer.from_bytes(doc))

    @rule(key=STORE_KEYS)
    def delete(self, key: str) -> None:
        self.both("delete", key)

    @rule(key=STORE_KEYS, byte_range=RANGES)
    def get(self, key: str, byte_range: Any) -> None:
        mine, theirs = self.both("get", key, self.proto, byte_range)
        assert (mine is None) == (theirs is None), key
        if mine is not None:
            assert mine.to_bytes() == theirs.to_bytes(), (key, byte_range)

    @rule(key=STORE_KEYS)
    def exists(self, key: str) -> None:
        mine, theirs = self.both("exists", key)
        assert mine == theirs, key

    @rule(prefix=st.sampled_from(["", "a", "a/", "a/b", "b", "a/c", "zzz"]))
    def listing(self, prefix: str) -> None:
        async def collect(store: Any, name: str, *args: Any) -> list[str]:
            return sorted([k async for k in getattr(store, name)(*args)])

        assert sync(collect(self.store, "list")) == sync(collect(self.memory, "list"))
        assert sync(collect(self.store, "list_prefix", prefix)) == sync(
            collect(self.memory, "list_prefix", prefix)
        )
        assert sync(collect(self.store, "list_dir", prefix)) == sync(
            collect(self.memory, "list_dir", prefix)
        )


class HamtStoreAgainstMemory(StoreAgainstMemory):
    def make_store(self) -> Any:
        return ZarrHAMTStore(run(HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)))


class EncryptedStoreAgainstMemory(StoreAgainstMemory):
    def make_store(self) -> Any:
        hamt = run(HAMT.build(cas=InMemoryCAS(), values_are_bytes=True))
        return SimpleEncryptedZarrHAMTStore(hamt, False, bytes(range(32)), b"h")


class ShardedStoreAgainstMemory(StoreAgainstMemory):
    def make_store(self) -> Any:
        return run(
            ShardedZarrStore.open(
                InMemoryCAS(),
                False,
                array_shape=(8, 8),
                chunk_shape=(2, 2),
                chunks_per_shard=3,
                max_cache_memory_bytes=600,
            )
        )

    @rule()
    def flush_and_reopen(self) -> None:
        root = sync(self.store.flush())
        self.store = sync(
            ShardedZarrStore.open(self.store.cas, False, root, max_cache_memory_bytes=600)
        )


TestHamtAgainstDict = HamtAgainstDict.TestCase
TestHamtAgainstDict.settings = SETTINGS
TestHamtStore = HamtStoreAgainstMemory.TestCase
TestHamtStore.settings = SETTINGS
TestEncryptedStore = EncryptedStoreAgainstMemory.TestCase
TestEncryptedStore.settings = SETTINGS
TestShardedStore = ShardedStoreAgainstMemory.TestCase
TestShardedStore.settings = SETTINGS
