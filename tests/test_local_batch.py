"""LocalCAS write batches (fsyncs deferred to the batch's exit) and loads
off the event loop (large or uncached blocks read and hashed in a pool)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from pathlib import Path

import pytest
from multiformats import CID

import py_hamt.cas.local_io as local_io
import py_hamt.cas.local_packs as local_packs
from py_hamt import BlockNotFoundError, InMemoryCAS, IntegrityError, LocalCAS

SMALL = 700  # a HAMT node's size: packed inside a batch
FILE = local_packs.PACK_BLOCK_MAX  # the smallest block a batch writes as a file
LARGE = 140_160  # a bench chunk's size


Event = tuple[str, int, int]


class Syncs:
    """Records, in order, what is made durable: ``("fsync", dev, inode)``
    for each fsync and ``("syncfs", dev, 0)`` for each syncfs."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.events: list[Event] = []

    def fsync(self, fd: int) -> None:
        info = os.fstat(fd)
        self.events.append(("fsync", info.st_dev, info.st_ino))
        os.fsync(fd)

    def syncfs(self, fd: int) -> int:
        self.events.append(("syncfs", os.fstat(fd).st_dev, 0))
        os.sync()
        return 0

    def covers(self, wanted: set[tuple[int, int]], events: list[Event] | None = None) -> bool:
        """Whether every (dev, inode) in ``wanted`` was made durable."""
        events = self.events if events is None else events
        fsynced = {(dev, ino) for kind, dev, ino in events if kind == "fsync"}
        synced = {dev for kind, dev, _ in events if kind == "syncfs"}
        return all(x in fsynced or x[0] in synced for x in wanted)

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture(params=["fsync", "syncfs"])
def syncs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Syncs:
    """A batch's exit fsyncs each path, or (``syncfs``) syncs the filesystem."""
    rec = Syncs(request.param)
    monkeypatch.setattr(local_io, "timed_fsync", rec.fsync)
    if request.param == "fsync":
        monkeypatch.setattr(local_io, "SYNCFS", None)
    else:
        monkeypatch.setattr(local_io, "SYNCFS", rec.syncfs)
        monkeypatch.setattr(local_io, "SYNCFS_MIN", 1)
        monkeypatch.setattr(local_io, "dirty_bytes", lambda: 0)
    return rec


def ident(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def block_path(cas: LocalCAS, cid: CID) -> Path:
    return cas._file(bytes(cid.digest))


def blob(i: int, size: int = SMALL) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


def stored_at(cas: LocalCAS, cid: CID) -> Path:
    """The file that holds ``cid``: its pack, else its own file."""
    loc = cas._packed.get(bytes(cid.digest))
    return block_path(cas, cid) if loc is None else Path(cas._pack_paths[loc >> 64])


def durable_set(cas: LocalCAS, cids: list[CID]) -> set[tuple[int, int]]:
    """The file holding each block (its own or its pack) and that file's directory."""
    out = set()
    for cid in cids:
        path = stored_at(cas, cid)
        out |= {ident(path), ident(path.parent)}
    return out


# ------------------------------------------------------------------ batches
async def test_a_batch_fsyncs_nothing_until_its_exit_then_everything_once(
    tmp_path: Path, syncs: Syncs
) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        cids = list(await asyncio.gather(*(cas.save(blob(i), "dag-cbor") for i in range(40))))
        cids.append(await cas.save(blob(99, LARGE), "raw"))  # written in the pool
        assert syncs.events == []
        for i, cid in enumerate(cids[:-1]):
            assert await cas.load(cid) == blob(i)  # readable before it is durable
    wanted = durable_set(cas, cids)
    assert syncs.covers(wanted)
    # The 40 small blocks went to one pack, the large one to a file of its own.
    [pack] = cas.pack_files()
    assert {stored_at(cas, c) for c in cids[:-1]} == {pack}
    assert stored_at(cas, cids[-1]) == block_path(cas, cids[-1])
    counts = Counter((dev, ino) for _, dev, ino in syncs.events)
    # The pack and its folder are fsynced once each, whatever the files take.
    assert counts[ident(pack)] == 1
    assert counts[ident(pack.parent)] == 1
    if syncs.mode == "fsync":
        assert all(counts[x] == 1 for x in wanted)  # each file and directory once
        # New block directories were created: their names (in blocks/) are durable too.
        assert ident(tmp_path / "blocks") in counts
    else:
        assert [e for e in syncs.events if e[0] == "syncfs"] == [
            ("syncfs", ident(tmp_path)[0], 0)
        ]  # one for the files
    assert await cas.load(cids[-1]) == blob(99, LARGE)


async def test_without_a_batch_every_put_fsyncs_its_file_and_folder(
    tmp_path: Path, syncs: Syncs
) -> None:
    cas = LocalCAS(tmp_path)
    cid = await cas.save(blob(1), "raw")
    assert syncs.covers(durable_set(cas, [cid]))
    # Its folder was new: the folder's name (in blocks/) is durable too.
    assert ("fsync", *ident(tmp_path / "blocks")) in syncs.events


async def test_a_writer_outside_the_batch_still_fsyncs_each_write(
    tmp_path: Path, syncs: Syncs
) -> None:
    cas = LocalCAS(tmp_path)
    inside_done = asyncio.Event()
    outside_checked = asyncio.Event()
    seen: dict[str, object] = {}

    async def batched() -> list[CID]:
        async with cas.write_batch():
            cids = [await cas.save(blob(i), "raw") for i in range(5)]
            inside_done.set()
            await outside_checked.wait()  # the batch is still open here
        return cids

    async def outside() -> None:
        await inside_done.wait()
        cid = await cas.save(blob(100), "raw")
        seen["durable"] = syncs.covers(durable_set(cas, [cid]))
        files = durable_set(cas, batch_cids)
        seen["batch_events"] = [
            e for e in syncs.events if e[0] == "syncfs" or (e[1], e[2]) in files
        ]
        outside_checked.set()

    batch_cids: list[CID] = []

    async def run_batched() -> None:
        batch_cids.extend(await batched())

    # Tasks of their own, each with a copy of this (batch-less) context.
    await asyncio.gather(run_batched(), outside())
    assert seen["durable"] is True
    assert seen["batch_events"] == []  # the batch's own files waited for its exit
    assert syncs.covers(durable_set(cas, batch_cids))


async def test_tasks_started_in_the_batch_join_it(tmp_path: Path, syncs: Syncs) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        task = asyncio.create_task(cas.save(blob(7), "raw"))
        cid = await task
        assert syncs.events == []
    assert syncs.covers(durable_set(cas, [cid]))


async def test_nested_batches_join_the_outer_one(tmp_path: Path, syncs: Syncs) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        first = await cas.save(blob(1), "raw")
        async with cas.write_batch():
            second = await cas.save(blob(2), "raw")
        assert syncs.events == []  # the inner exit made nothing durable by itself
        third = await cas.save(blob(3), "raw")
        assert syncs.events == []
    assert syncs.covers(durable_set(cas, [first, second, third]))


async def test_a_batch_of_another_store_defers_nothing_here(tmp_path: Path, syncs: Syncs) -> None:
    one, other = LocalCAS(tmp_path / "one"), LocalCAS(tmp_path / "other")
    async with one.write_batch():
        cid = await other.save(blob(1), "raw")
        assert syncs.covers(durable_set(other, [cid]))


async def test_an_exception_in_the_batch_still_makes_its_blocks_durable(
    tmp_path: Path, syncs: Syncs
) -> None:
    cas = LocalCAS(tmp_path)
    cids: list[CID] = []
    seen: list[Event] = []

    async def failing() -> None:
        async with cas.write_batch():
            cids.append(await cas.save(blob(1), "raw"))
            cids.append(await cas.save(blob(2, LARGE), "raw"))
            seen.extend(syncs.events)
            raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        await failing()
    assert seen == []
    assert syncs.covers(durable_set(cas, cids))
    # A later put of the same bytes finds the (durable) copy and writes nothing.
    syncs.clear()
    assert await cas.save(blob(1), "raw") == cids[0]
    assert await cas.save(blob(2, LARGE), "raw") == cids[1]
    assert syncs.events == []


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["inline", "pool"])
async def test_a_block_already_here_is_made_durable_by_the_batch(
    tmp_path: Path, syncs: Syncs, size: int
) -> None:
    """Its writer (another batch, another process) may not have fsynced it yet."""
    cas = LocalCAS(tmp_path)
    cid = await cas.save(blob(5, size), "raw")
    syncs.clear()
    async with cas.write_batch():
        assert await cas.save(blob(5, size), "raw") == cid
        assert syncs.events == []
    assert syncs.covers(durable_set(cas, [cid]))


async def test_a_write_whose_batch_closed_in_flight_fsyncs_itself(
    tmp_path: Path, syncs: Syncs
) -> None:
    """The batch is looked up on the loop; the write runs later, in a thread."""
    cas = LocalCAS(tmp_path)
    batch = local_io.Batch(cas)
    batch.take(close=True)
    final = tmp_path / "blocks" / "ab" / "file"
    final.parent.mkdir()
    cas._write_atomic(final, b"bytes", batch)
    assert syncs.covers({ident(final), ident(final.parent)})
    assert final.read_bytes() == b"bytes"


async def test_a_write_that_outlives_its_batch_fsyncs_itself(tmp_path: Path, syncs: Syncs) -> None:
    cas = LocalCAS(tmp_path)
    go = asyncio.Event()

    async def late() -> CID:
        await go.wait()
        return await cas.save(blob(8), "raw")

    async with cas.write_batch():
        task = asyncio.create_task(late())  # sees the batch, writes after it closed
    go.set()
    cid = await task
    assert syncs.covers(durable_set(cas, [cid]))


async def test_set_ref_in_a_batch_makes_the_root_durable_first(
    tmp_path: Path, syncs: Syncs
) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        child = await cas.save(blob(1), "raw")
        root = await cas.save(blob(2), "dag-cbor")
        assert syncs.events == []
        await cas.set_ref("main", root)
        ref = ("fsync", *ident(tmp_path / "refs" / "main"))
        assert ref in syncs.events  # the ref itself is durable at once
        before_ref = syncs.events[: syncs.events.index(ref)]
        assert syncs.covers(durable_set(cas, [child, root]), before_ref)
        later = await cas.save(blob(3), "raw")
    assert syncs.covers(durable_set(cas, [later]))
    assert await cas.get_ref("main") == root


async def test_without_fsync_a_batch_changes_nothing(tmp_path: Path, syncs: Syncs) -> None:
    cas = LocalCAS(tmp_path, fsync=False)
    async with cas.write_batch():
        cid = await cas.save(blob(1), "raw")
    assert syncs.events == []
    assert await cas.load(cid) == blob(1)


async def test_many_paths_take_one_syncfs_few_take_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Syncs("default")
    monkeypatch.setattr(local_io, "timed_fsync", rec.fsync)
    monkeypatch.setattr(local_io, "SYNCFS", rec.syncfs)
    monkeypatch.setattr(local_io, "dirty_bytes", lambda: local_io.SYNCFS_MAX_DIRTY)
    cas = LocalCAS(tmp_path)
    few = await cas.save(blob(0, FILE), "raw")  # its folder exists from here on
    rec.clear()
    async with cas.write_batch():
        again = await cas.save(blob(0, FILE * 2), "raw")
    assert {e[0] for e in rec.events} == {"fsync"}  # under _SYNCFS_MIN paths
    assert rec.covers(durable_set(cas, [again]))
    assert await cas.load(few) == blob(0, FILE)
    rec.clear()
    async with cas.write_batch():
        many = [await cas.save(blob(i, FILE), "raw") for i in range(1, local_io.SYNCFS_MIN)]
    assert rec.events == [("syncfs", ident(tmp_path)[0], 0)]
    assert rec.covers(durable_set(cas, many))


@pytest.mark.parametrize("dirty", [local_io.SYNCFS_MAX_DIRTY + 1, None], ids=["dirty", "unknown"])
async def test_much_dirty_data_elsewhere_means_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dirty: int | None
) -> None:
    """A syncfs would also wait for everything else dirty on the filesystem."""
    rec = Syncs("default")
    monkeypatch.setattr(local_io, "timed_fsync", rec.fsync)
    monkeypatch.setattr(local_io, "SYNCFS", rec.syncfs)
    monkeypatch.setattr(local_io, "dirty_bytes", lambda: dirty)
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        many = [await cas.save(blob(i, FILE), "raw") for i in range(2 * local_io.SYNCFS_MIN)]
    assert {e[0] for e in rec.events} == {"fsync"}
    assert rec.covers(durable_set(cas, many))


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="reads /proc/meminfo")
def test_dirty_bytes_are_read_from_meminfo() -> None:
    dirty = local_io.dirty_bytes()
    assert isinstance(dirty, int)
    assert dirty >= 0


async def test_the_default_batch_does_nothing() -> None:
    cas = InMemoryCAS()
    async with cas.write_batch():
        cid = await cas.save(b"x", "raw")
    assert await cas.load(cid) == b"x"


# -------------------------------------------------------------------- reads
@pytest.fixture
def reader_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads ``_read_to_end`` runs in."""
    threads: list[int] = []
    real = local_io.read_to_end

    def recording(fd: int, size: int) -> bytes:
        threads.append(threading.get_ident())
        return real(fd, size)

    monkeypatch.setattr(local_io, "read_to_end", recording)
    return threads


@pytest.fixture
def uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every large block reads as if the page cache did not hold it."""
    monkeypatch.setattr(local_io, "read_cached", lambda fd, size: None)


async def test_small_blocks_are_read_on_the_event_loop(
    tmp_path: Path, reader_threads: list[int], uncached: None
) -> None:
    cas = LocalCAS(tmp_path)
    cid = await cas.save(blob(1, local_io.INLINE_MAX - 1), "raw")
    assert await cas.load(cid) == blob(1, local_io.INLINE_MAX - 1)
    assert reader_threads == [threading.get_ident()]


async def test_large_uncached_blocks_are_read_in_the_pool(
    tmp_path: Path, reader_threads: list[int], uncached: None
) -> None:
    cas = LocalCAS(tmp_path)
    cids = [await cas.save(blob(i, LARGE), "raw") for i in range(8)]
    got = await asyncio.gather(*(cas.load(c, offset=4, length=8) for c in cids))
    assert got == [blob(i, LARGE)[4:12] for i in range(8)]
    assert len(reader_threads) == 8
    assert threading.get_ident() not in reader_threads


async def test_large_cached_blocks_are_read_without_a_thread(
    tmp_path: Path, reader_threads: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cas = LocalCAS(tmp_path)
    cid = await cas.save(blob(1, LARGE), "raw")
    cached: list[int] = []
    real = local_io.read_cached

    def recording(fd: int, size: int) -> bytes | None:
        cached.append(size)
        return real(fd, size)

    monkeypatch.setattr(local_io, "read_cached", recording)
    assert await cas.load(cid) == blob(1, LARGE)
    assert cached == [LARGE]
    if local_io.NOWAIT is not None and cas._nowait:
        # Just written: the page cache holds it (unless the filesystem
        # refuses non-blocking reads, which sends it to the pool).
        assert reader_threads == []
    else:
        assert threading.get_ident() not in reader_threads


async def test_blocks_over_the_inline_hash_limit_are_hashed_in_the_pool(
    tmp_path: Path, reader_threads: list[int]
) -> None:
    cas = LocalCAS(tmp_path)
    data = blob(3, local_io.HASH_INLINE_MAX + 4)
    cid = await cas.save(data, "raw")
    assert await cas.load(cid, suffix=4) == data[-4:]
    assert len(reader_threads) == 1
    assert reader_threads[0] != threading.get_ident()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["inline", "pool"])
@pytest.mark.usefixtures("uncached")
async def test_damage_raises_the_same_errors_on_either_path(tmp_path: Path, size: int) -> None:
    cas = LocalCAS(tmp_path)
    good = [await cas.save(blob(i, size), "raw") for i in range(4)]
    bad = await cas.save(blob(9, size), "raw")
    path = block_path(cas, bad)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    results = await asyncio.gather(
        *(cas.load(c) for c in [*good, bad]),
        cas.load(bad, offset=0, length=1),
        return_exceptions=True,
    )
    assert results[:4] == [blob(i, size) for i in range(4)]
    for exc in results[4:]:
        assert type(exc) is IntegrityError
        assert str(exc).startswith(f"block file {path} is damaged: {size} bytes do not hash")
    assert not await cas.verify(bad)
    assert await cas.verify(good[0])

    # A truncated (short) file is damage too, not a short block.
    path.write_bytes(bytes(raw[: size // 2]))
    with pytest.raises(IntegrityError, match="is damaged"):
        await cas.load(bad)

    # Missing, and a directory in the file's place.
    path.unlink()
    with pytest.raises(BlockNotFoundError, match=f"no block with id {bad}"):
        await cas.load(bad)
    path.mkdir()
    with pytest.raises(IntegrityError, match="is a directory, not a block file"):
        await cas.load(bad)
    assert not await cas.verify(bad)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.usefixtures("uncached")
async def test_cancelled_pool_loads_leak_no_descriptors(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    cids = [await cas.save(blob(i, LARGE), "raw") for i in range(6)]
    release = threading.Event()
    pool = local_io.io_pool()
    blockers = [pool.submit(release.wait) for _ in range(local_io.IO_WORKERS)]
    before = len(os.listdir("/proc/self/fd"))
    try:
        loads = [asyncio.ensure_future(cas.load(c)) for c in cids]
        await asyncio.sleep(0.05)
        assert len(os.listdir("/proc/self/fd")) == before + len(cids)  # queued, fds open
        for task in loads:
            task.cancel()
        await asyncio.gather(*loads, return_exceptions=True)
    finally:
        release.set()
        for b in blockers:
            b.result()
    assert all(t.cancelled() for t in loads)
    assert len(os.listdir("/proc/self/fd")) == before
    assert await cas.load(cids[0]) == blob(0, LARGE)


async def test_read_to_end_reads_a_file_that_grew(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abcdef")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert local_io.read_to_end(fd, 3) == b"abcdef"
    finally:
        os.close(fd)
