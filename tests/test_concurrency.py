"""Concurrent writers and readers, threads and processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from zarr.core.buffer import cpu, default_buffer_prototype

from py_hamt import HAMT, InMemoryCAS, LocalCAS, ShardedZarrStore, ZarrHAMTStore
from tests.conftest import build_from

KEYS = [f"v/c/{i}/{j}" for i in range(40) for j in range(50)]


async def test_many_concurrent_zarr_writes_lose_no_key() -> None:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True, max_buffer_bytes=64_000)
    hamt_store = ZarrHAMTStore(hamt)
    sharded = await ShardedZarrStore.open(
        InMemoryCAS(),
        False,
        array_shape=(40, 50),
        chunk_shape=(1, 1),
        chunks_per_shard=7,
        max_cache_memory_bytes=2_000,
    )
    for store in (hamt_store, sharded):
        await asyncio.gather(*(store.set(k, cpu.Buffer.from_bytes(k.encode())) for k in KEYS))
        got = await asyncio.gather(*(store.get(k, default_buffer_prototype()) for k in KEYS))
        assert [g.to_bytes() if g else None for g in got] == [k.encode() for k in KEYS]
    await hamt.make_read_only()
    assert hamt.root_node_id == (await build_from([(k, k.encode()) for k in KEYS])).root_node_id
    reopened = await ShardedZarrStore.open(sharded.cas, True, await sharded.flush())
    assert sorted([k async for k in reopened.list()]) == sorted(KEYS)


async def test_readers_during_commits_see_one_version_whole() -> None:
    """Readers open whatever root is current; each sees exactly one version."""
    cas = InMemoryCAS()
    writer = await HAMT.build(cas=cas, values_are_bytes=True)
    for k in KEYS:
        await writer.set(k, b"v0")
    await writer.make_read_only()
    published = [writer.root_node_id]
    seen_versions: set[bytes] = set()

    async def write_versions() -> None:
        for version in range(1, 6):
            await writer.enable_write()
            for n, k in enumerate(KEYS):
                await writer.set(k, f"v{version}".encode())
                if n % 100 == 0:
                    await asyncio.sleep(0)  # let readers run mid-version
            await writer.make_read_only()
            published.append(writer.root_node_id)

    async def read_repeatedly() -> None:
        for _ in range(12):
            root = cast("bytes", published[-1])  # InMemoryCAS ids
            reader = await HAMT.build(
                cas=cas, root_node_id=root, read_only=True, values_are_bytes=True
            )
            values = set()
            for n, k in enumerate(KEYS):
                values.add(await reader.get(k))
                if n % 50 == 0:
                    await asyncio.sleep(0)
            assert len(values) == 1, f"a mix of versions under {root.hex()}: {values}"
            seen_versions.update(values)

    await asyncio.gather(write_versions(), *(read_repeatedly() for _ in range(3)))
    assert len(seen_versions) >= 2  # readers really overlapped several commits


def _shared_read_only(max_cache_bytes: int) -> HAMT:
    """A read-only HAMT over ``KEYS`` (each key's value is its own bytes)."""
    cas = InMemoryCAS()
    hamt = asyncio.run(build_from([(k, k.encode()) for k in KEYS], cas))
    return asyncio.run(
        HAMT.build(
            cas=cas,
            root_node_id=hamt.root_node_id,
            read_only=True,
            values_are_bytes=True,
            max_cache_bytes=max_cache_bytes,
        )
    )


def _read_in_threads(shared: HAMT, orders: list[list[str]]) -> list[BaseException]:
    """One thread per key order, each with its own event loop, getting
    every key of its order from ``shared`` and checking the value; the
    errors the threads raised."""
    errors: list[BaseException] = []

    def reader(order: list[str]) -> None:
        async def go() -> None:
            for k in order:
                assert await shared.get(k) == k.encode()

        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - collected and returned
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(order,)) for order in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_threads_share_a_read_only_hamt() -> None:
    shared = _shared_read_only(200_000)
    errors = _read_in_threads(shared, [KEYS[n * 311 :] + KEYS[: n * 311] for n in range(6)])
    assert not errors, errors
    assert shared._loader.cache.nbytes <= 200_000


def test_threads_loading_the_same_nodes_uncached() -> None:
    """Regression: with nothing cached, every thread loads the same nodes
    at the same moments. The in-flight table was shared across threads and
    a load's cleanup could delete another thread's entry (a KeyError naming
    the node id): about one pass in three failed with a tiny switch interval."""
    shared = _shared_read_only(0)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        errors = _read_in_threads(shared, [KEYS * 3 for _ in range(8)])
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    assert not shared._loader._inflight  # every load cleaned up after itself


READER = textwrap.dedent(
    """
    import asyncio, sys
    from py_hamt import HAMT, LocalCAS

    async def main(path):
        cas = LocalCAS(path)
        root = await cas.get_ref("main")
        hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
        values = {await hamt.get(k) async for k in hamt.keys()}
        print(len(values), sorted(values)[0].decode())

    asyncio.run(main(sys.argv[1]))
    """
)


def test_processes_read_while_another_publishes(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)

    async def publish(version: int) -> Any:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        for k in KEYS[:300]:
            await hamt.set(k, f"v{version}".encode())
        await hamt.make_read_only()
        await cas.set_ref("main", hamt.root_node_id)

    asyncio.run(publish(0))
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for version in range(1, 4):
        asyncio.run(publish(version))
    outputs = []
    for proc in readers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        outputs.append(out.split())
    for count, seen in outputs:
        assert count == "1", "a reader saw a mix of versions"
        assert seen in {"v0", "v1", "v2", "v3"}


@pytest.mark.parametrize("threads", [4])
def test_localcas_is_safe_across_threads(tmp_path: Path, threads: int) -> None:
    cas = LocalCAS(tmp_path)
    blobs = [bytes([i % 256]) * (1000 + i) for i in range(400)]

    def save_all() -> list[Any]:
        return asyncio.run(_save(cas, blobs))

    results: list[list[Any]] = []
    pool = [threading.Thread(target=lambda: results.append(save_all())) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert len(results) == threads
    assert all(r == results[0] for r in results)
    assert len(cas.block_files()) == len(blobs)


async def _save(cas: LocalCAS, blobs: list[bytes]) -> list[Any]:
    return list(await asyncio.gather(*(cas.save(b, "raw") for b in blobs)))
