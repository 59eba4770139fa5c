"""LocalCAS packs: the small blocks of a write batch in one file, made
durable and visible to other store objects (and processes) at its exit."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path
from typing import Any, cast

import pytest
from multiformats import CID

import py_hamt.cas.local_packs as local_packs
from py_hamt import (
    HAMT,
    BlockNotFoundError,
    IntegrityError,
    LocalCAS,
)

SMALL = 700


def blob(i: int, size: int = SMALL) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


async def packed_store(folder: Path, count: int) -> tuple[LocalCAS, list[CID]]:
    """A store with ``blob(0)`` to ``blob(count - 1)`` written in one batch
    (so in one pack), and their ids."""
    cas = LocalCAS(folder)
    async with cas.write_batch():
        cids = [await cas.save(blob(i), "dag-cbor") for i in range(count)]
    return cas, cids


def packed_at(cas: LocalCAS, cid: CID) -> tuple[Path, int, int]:
    """The pack file, offset and length of a packed block."""
    loc = cas._packed[bytes(cid.digest)]
    ordinal, offset, length = cas._locate(loc)
    return Path(cas._pack_paths[ordinal]), offset, length


def mh_hex(cid: object) -> str:
    """A LocalCAS id's block file name."""
    return bytes(cast(CID, cid).digest).hex()


def flip_byte(path: Path, at: int) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes((b[0] ^ 0xFF,)))


async def test_a_commit_writes_its_nodes_into_one_pack_and_others_read_them(
    tmp_path: Path,
) -> None:
    keys = {f"t2m/c/{i // 50}/{i % 50}": blob(i, 64) for i in range(3_000)}
    cas = LocalCAS(tmp_path)
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    for k, v in keys.items():
        await hamt.set(k, v)
    await hamt.make_read_only()
    stats = await hamt.stats()
    assert len(cas.pack_files()) == 1
    # Every node under the root is in the pack. The root is written after
    # the batch (it names them, so they are durable first), and the values
    # (each put outside a batch) are files.
    assert len(cas.packed_blocks()) == stats["nodes"] - 1 > 10
    scratch = LocalCAS(tmp_path / "scratch", fsync=False)
    values = {await scratch.save(v, "raw") for v in keys.values()}
    empty = await HAMT.build(cas=scratch, values_are_bytes=True)
    names = {p.name for p in cas.block_files()}
    assert names == {mh_hex(c) for c in [*values, hamt.root_node_id, empty.root_node_id]}
    # Packing changes where nodes live, not what they are: a store without
    # batches (fsync off), so with every node a file, gives the same root.
    plain = LocalCAS(tmp_path / "plain", fsync=False)
    ref = await HAMT.build(cas=plain, values_are_bytes=True)
    for k, v in keys.items():
        await ref.set(k, v)
    await ref.make_read_only()
    assert ref.root_node_id == hamt.root_node_id
    assert plain.pack_files() == []
    # A fresh store object (as another process would) finds the pack.
    other = LocalCAS(tmp_path)
    ro = await HAMT.build(
        cas=other, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    assert [await ro.get(k) for k in keys] == list(keys.values())
    assert await ro.len() == len(keys)


async def test_packed_blocks_are_readable_at_once_here_and_elsewhere_after_the_exit(
    tmp_path: Path,
) -> None:
    cas = LocalCAS(tmp_path)
    other = LocalCAS(tmp_path)
    assert await other.has(await other.save(b"warm up the scan", "raw"))
    async with cas.write_batch():
        cids = [await cas.save(blob(i), "dag-cbor") for i in range(20)]
        assert [await cas.load(c) for c in cids] == [blob(i) for i in range(20)]
        assert cas.pack_files() == []  # not under its final name yet
        for c in cids:
            assert not await other.has(c)
            with pytest.raises(BlockNotFoundError, match=str(c)):
                await other.load(c)
    assert len(cas.pack_files()) == 1
    assert [await other.load(c) for c in cids] == [blob(i) for i in range(20)]
    assert all([await other.has(c) for c in cids])


def _write_then_die(path: str, ready: Any) -> None:
    async def run() -> None:
        cas = LocalCAS(path)
        async with cas.write_batch():
            await cas.save(blob(1), "dag-cbor")
            ready.set()
            os._exit(3)  # killed inside the batch: nothing of it is durable

    asyncio.run(run())


def test_a_writer_killed_inside_a_batch_leaves_only_a_temporary_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_write_then_die, args=(str(tmp_path), ready))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    cas = LocalCAS(tmp_path)
    temps = [p for p in (tmp_path / "packs").iterdir() if p.name.startswith(".tmp-")]
    assert len(temps) == 1
    assert cas.pack_files() == []
    lost = asyncio.run(LocalCAS(tmp_path / "elsewhere").save(blob(1), "dag-cbor"))
    with pytest.raises(BlockNotFoundError, match=str(lost)):
        asyncio.run(cas.load(lost))
    assert cas.cleanup() == 1
    assert list((tmp_path / "packs").iterdir()) == []


async def test_a_damaged_packed_block_is_an_integrity_error_naming_it_and_a_put_repairs_it(
    tmp_path: Path,
) -> None:
    cas, cids = await packed_store(tmp_path, 3)
    path, offset, _ = packed_at(cas, cids[1])
    flip_byte(path, offset + 10)
    fresh = LocalCAS(tmp_path)
    with pytest.raises(IntegrityError, match=f"block {cids[1]} in pack .*{path.name}") as info:
        await fresh.load(cids[1])
    assert info.value.block_id == cids[1]
    assert await fresh.verify(cids[1]) is False
    assert await fresh.load(cids[0]) == blob(0)  # its neighbours are intact
    # Writing the good bytes again repairs it (as a file; reads fall back to it).
    async with fresh.write_batch():
        assert await fresh.save(blob(1), "dag-cbor") == cids[1]
    assert await fresh.load(cids[1]) == blob(1)
    assert await LocalCAS(tmp_path).load(cids[1]) == blob(1)
    assert await LocalCAS(tmp_path).verify(cids[1]) is True


async def test_a_pack_removed_after_it_was_indexed_is_named_and_a_put_writes_the_block_again(
    tmp_path: Path,
) -> None:
    cas, cids = await packed_store(tmp_path, 2)
    reader = LocalCAS(tmp_path)
    assert await reader.load(cids[0]) == blob(0)  # indexes packs/ and opens the pack
    reader.close()
    [pack] = cas.pack_files()
    pack.unlink()
    with pytest.raises(BlockNotFoundError, match=f"its pack .*{pack.name} is gone") as info:
        await reader.load(cids[1])
    assert info.value.block_id == cids[1]
    assert await reader.has(cids[1]) is False
    # A put does not take the vanished copy for a stored one.
    async with reader.write_batch():
        assert await reader.save(blob(1), "dag-cbor") == cids[1]
    assert await reader.load(cids[1]) == blob(1)
    assert await reader.has(cids[1]) is True
    assert await LocalCAS(tmp_path).load(cids[1]) == blob(1)
    with pytest.raises(BlockNotFoundError, match=f"its pack .*{pack.name} is gone"):
        await reader.load(cids[0])


async def test_a_pack_with_a_damaged_index_is_reported_and_its_blocks_are_never_absent_keys(
    tmp_path: Path,
) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        cid = await cas.save(blob(9), "dag-cbor")
    [pack] = cas.pack_files()
    flip_byte(pack, pack.stat().st_size - 1)  # the end mark
    fresh = LocalCAS(tmp_path)
    assert list(fresh.damaged_packs()) == [pack.name]
    with pytest.raises(BlockNotFoundError, match=f"damaged packs.*{pack.name}"):
        await fresh.load(cid)


@pytest.mark.parametrize(
    "cut",
    [
        lambda raw: raw[:-3],  # shorter than its trailer says
        lambda raw: b"not a pack" + raw[10:],  # no magic
        lambda raw: raw[:14] + raw[-16:],  # the index points past the end
    ],
    ids=["cut", "magic", "index"],
)
def test_read_index_refuses_malformed_packs(tmp_path: Path, cut: object) -> None:
    writer = local_packs.PackWriter(str(tmp_path))
    writer.append(b"\x1e\x20" + bytes(32), blob(1))
    final = Path(writer.finish(durable=False))
    os.close(writer.fd)
    final.write_bytes(cut(final.read_bytes()))  # type: ignore[operator]
    with pytest.raises(local_packs.PackDamagedError, match=final.name):
        local_packs.read_index(str(final))


def test_read_index_reads_what_was_written(tmp_path: Path) -> None:
    writer = local_packs.PackWriter(str(tmp_path))
    mhs = [b"\x1e\x20" + bytes((i,)) * 32 for i in range(5)]
    offsets = [writer.append(mh, blob(i, 40 * (i + 1))) for i, mh in enumerate(mhs)]
    final = writer.finish(durable=True)
    os.close(writer.fd)
    entries = local_packs.read_index(final)
    assert entries == [
        (mh, o, 40 * (i + 1)) for i, (mh, o) in enumerate(zip(mhs, offsets, strict=True))
    ]
    raw = Path(final).read_bytes()
    assert [raw[o : o + n] for _, o, n in entries] == [blob(i, 40 * (i + 1)) for i in range(5)]


async def test_a_batch_starts_a_new_pack_past_the_size_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("py_hamt.cas.local.PACK_MAX_BYTES", 10 * SMALL)
    cas, cids = await packed_store(tmp_path, 35)
    assert len(cas.pack_files()) == 4  # 11 blocks fill a pack (the header is 14 bytes)
    fresh = LocalCAS(tmp_path)
    assert [await fresh.load(c) for c in cids] == [blob(i) for i in range(35)]


async def test_a_block_already_durably_packed_is_not_written_again(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        cid = await cas.save(blob(1), "dag-cbor")
        assert await cas.save(blob(1), "dag-cbor") == cid  # twice in one batch: once
    async with cas.write_batch():
        assert await cas.save(blob(1), "dag-cbor") == cid
    assert await LocalCAS(tmp_path).save(blob(1), "dag-cbor") == cid  # outside a batch
    assert len(cas.pack_files()) == 1
    assert cas.block_files() == []
    assert len(LocalCAS(tmp_path).packed_blocks()) == 1


async def test_set_ref_inside_a_batch_publishes_its_pack_first(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    async with cas.write_batch():
        root = await cas.save(blob(2), "dag-cbor")
        await cas.set_ref("main", root)
        # Another process following the ref finds the root already.
        other = LocalCAS(tmp_path)
        named = await other.get_ref("main")
        assert named == root
        assert await other.load(named) == blob(2)
        later = await cas.save(blob(3), "dag-cbor")  # a pack of its own
    assert len(cas.pack_files()) == 2
    assert await LocalCAS(tmp_path).load(later) == blob(3)


async def test_a_store_pickles_to_its_path_and_settings(tmp_path: Path) -> None:
    import pickle

    cas = LocalCAS(tmp_path, hasher="sha2-256", fsync=False)
    copy = pickle.loads(pickle.dumps(cas))
    assert (copy.path, copy.hasher, copy.fsync) == (tmp_path, "sha2-256", False)
    assert copy._packed == {}


async def test_a_store_keeps_a_bounded_number_of_packs_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("py_hamt.cas.local.MAX_OPEN_PACKS", 3)
    cas = LocalCAS(tmp_path)
    cids = []
    for i in range(8):  # eight batches, eight packs
        async with cas.write_batch():
            cids.append(await cas.save(blob(i), "dag-cbor"))
    fresh = LocalCAS(tmp_path)
    for _ in range(2):
        assert [await fresh.load(c) for c in cids] == [blob(i) for i in range(8)]
        assert len(fresh._pack_fds) == 3
    fresh.close()
    assert fresh._pack_fds == {}
    assert await fresh.load(cids[0]) == blob(0)  # reopened on demand


async def test_a_write_that_fails_part_way_leaves_the_pack_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cas = LocalCAS(tmp_path)
    real = os.pwrite
    calls = {"n": 0}

    def full_disk_once(fd: int, data: Any, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 3:  # the third write: half of it, then the disk is full
            real(fd, bytes(data)[: len(data) // 2], offset)
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk_once)
    async with cas.write_batch():
        first = await cas.save(blob(1), "dag-cbor")
        with pytest.raises(OSError, match="No space left"):
            await cas.save(blob(2), "dag-cbor")
        third = await cas.save(blob(3), "dag-cbor")
    fresh = LocalCAS(tmp_path)
    assert await fresh.load(first) == blob(1)
    assert await fresh.load(third) == blob(3)
    assert len(fresh.packed_blocks()) == 2  # the failed block was never indexed
