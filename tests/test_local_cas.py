"""LocalCAS: durable, atomic, verified; safe across processes and kills."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3
import pytest
import xarray as xr
from multiformats import CID

from py_hamt import (
    HAMT,
    BlockNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    KuboCAS,
    LocalCAS,
    ZarrHAMTStore,
)
from py_hamt.cas.base import verify_block
from py_hamt.datasets import climate_dataset
from tests.conftest import IpfsNode


async def test_ids_are_cidv1_blake3_with_the_codec(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    raw = await cas.save(b"value", "raw")
    node = await cas.save(b"\xa0", "dag-cbor")
    assert str(raw).startswith("bafkr4i")
    assert str(node).startswith("bafyr4i")
    assert bytes(raw.digest) == b"\x1e\x20" + blake3.blake3(b"value").digest()
    assert await cas.load(raw) == b"value"
    assert await cas.load(str(raw), offset=1, length=2) == b"al"
    assert await cas.load(raw, suffix=0) == b""


async def test_sha2_256_store(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path, hasher="sha2-256")
    cid = await cas.save(b"x", "raw")
    assert cid.hashfun.name == "sha2-256"
    assert str(cid).startswith("bafkrei")


async def test_missing_and_damaged_blocks(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    cid = await cas.save(b"precious bytes", "raw")
    absent = CID("base32", 1, "raw", cid.digest[:2] + bytes(32))
    with pytest.raises(BlockNotFoundError, match=f"no block with id {absent}"):
        await cas.load(absent)
    assert await cas.has(cid)
    assert not await cas.has(absent)
    (path,) = cas.block_files()
    path.write_bytes(b"precious bytez")
    with pytest.raises(IntegrityError, match=f"block file {path} is damaged"):
        await cas.load(cid)
    with pytest.raises(IntegrityError):
        await cas.load(cid, offset=0, length=3)  # ranges are verified too
    with pytest.raises(TypeError, match="LocalCAS ids are CIDs, got bytes"):
        await cas.load(b"\x1e\x20")


async def test_refs_are_written_after_their_root_only(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    root = await cas.save(b"\xa0", "dag-cbor")
    await cas.set_ref("main", root)
    assert await cas.get_ref("main") == root
    assert cas.refs() == {"main": root}
    assert await cas.get_ref("other") is None
    ghost = CID("base32", 1, "dag-cbor", root.digest[:2] + bytes(32))
    with pytest.raises(BlockNotFoundError, match="refusing to point ref 'x' at a missing root"):
        await cas.set_ref("x", ghost)
    with pytest.raises(InvalidArgumentError, match="ref names are"):
        await cas.set_ref("../escape", root)


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="is not a directory"):
        LocalCAS(tmp_path / "f")


async def test_dataset_survives_reopening(tmp_path: Path) -> None:
    ds = climate_dataset(n_time=12, n_lat=6, n_lon=8)
    cas = LocalCAS(tmp_path)
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(store=ZarrHAMTStore(hamt), mode="w", zarr_format=3)
    await hamt.make_read_only()
    await cas.set_ref("main", hamt.root_node_id)

    again = LocalCAS(tmp_path)
    root = await again.get_ref("main")
    ro = await HAMT.build(cas=again, root_node_id=root, read_only=True, values_are_bytes=True)
    xr.testing.assert_identical(
        xr.open_zarr(ZarrHAMTStore(ro, read_only=True), chunks=None).load(), ds
    )


WRITER = textwrap.dedent(
    """
    import asyncio, os, sys, warnings
    warnings.filterwarnings("ignore")
    from py_hamt import HAMT, LocalCAS, ZarrHAMTStore
    from py_hamt.datasets import climate_dataset

    async def main(path):
        cas = LocalCAS(path)
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        await asyncio.to_thread(
            climate_dataset(n_time=12, n_lat=6, n_lon=8).to_zarr,
            store=ZarrHAMTStore(hamt), mode="w", zarr_format=3,
        )
        await hamt.make_read_only()
        await cas.set_ref("main", hamt.root_node_id)
        print("COMMITTED", flush=True)
        await hamt.enable_write()
        i = 0
        while True:  # the next version: big values, killed part way
            big = [(i + j).to_bytes(8, "big") * (4 << 20) for j in range(4)]  # 32 MiB each
            await asyncio.gather(*(hamt.set(f"big/{i + j}", v) for j, v in enumerate(big)))
            if i == 0:
                print("WRITING", flush=True)
            i += 4

    asyncio.run(main(sys.argv[1]))
    """
)


def kill_writer_and_check(store: Path, delay: float) -> int:
    """Start a writer, SIGKILL it ``delay`` s into its second version, check
    the store, and return how many temporary files the kill left."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store)], stdout=subprocess.PIPE, text=True
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "COMMITTED"
            assert writer.stdout.readline().strip() == "WRITING"
            time.sleep(delay)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    cas = LocalCAS(store)
    temps = list((store / "blocks").rglob(".tmp-*"))
    assert cas.cleanup() == len(temps)
    assert not list((store / "blocks").rglob(".tmp-*"))
    # Every block that is visible is whole: its bytes hash to its name.
    files = cas.block_files()
    assert files
    for path in files:
        verify_block(CID("base32", 1, "raw", bytes.fromhex(path.name)), path.read_bytes())
    # The committed root still reads, in full.
    root = asyncio.run(cas.get_ref("main"))
    assert root is not None

    async def read() -> xr.Dataset:
        ro = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
        back: xr.Dataset = xr.open_zarr(ZarrHAMTStore(ro, read_only=True), chunks=None).load()
        return back

    xr.testing.assert_identical(asyncio.run(read()), climate_dataset(n_time=12, n_lat=6, n_lon=8))
    return len(temps)


def test_sigkill_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    # Whether a kill lands inside a block's write is a race; keep killing
    # (every attempt is checked in full) until one has, a bounded number of times.
    mid_write = 0
    for attempt, delay in enumerate([0.05, 0.3, 0.15, 0.5, 0.1, 0.4, 0.25, 0.7]):
        mid_write += kill_writer_and_check(tmp_path / f"store{attempt}", delay) > 0
        if mid_write and attempt >= 2:
            break
    assert mid_write, "no kill landed while a block was being written"


def test_temp_files_of_live_writers_are_kept(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    folder = tmp_path / "blocks" / "ab"
    folder.mkdir()
    mine = folder / f".tmp-{os.getpid()}-00ff"
    mine.write_bytes(b"in progress")
    dead = folder / ".tmp-999999999-00ff"
    dead.write_bytes(b"abandoned")
    assert cas.cleanup() == 1
    assert mine.exists()
    assert not dead.exists()
    assert cas.block_files() == []  # temporary files are never blocks


CONCURRENT = textwrap.dedent(
    """
    import asyncio, sys
    from py_hamt import LocalCAS

    async def main(path, me):
        cas = LocalCAS(path)
        shared = [bytes([i]) * 200_000 for i in range(20)]   # every process writes these
        own = [f"{me}-{i}".encode() * 10_000 for i in range(20)]
        await asyncio.gather(*(cas.save(b, "raw") for b in shared + own))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_processes_writing_one_store_at_once(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path), str(n)])
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    cas = LocalCAS(tmp_path)
    files = cas.block_files()
    assert len(files) == 20 + 4 * 20
    for path in files:
        verify_block(CID("base32", 1, "raw", bytes.fromhex(path.name)), path.read_bytes())
    assert cas.cleanup() == 0


@pytest.mark.parametrize("codec", ["raw", "dag-cbor"])
async def test_ids_match_what_a_real_node_gives(
    ipfs_node: IpfsNode, tmp_path: Path, codec: str
) -> None:
    local = LocalCAS(tmp_path)
    async with KuboCAS(rpc_base_url=ipfs_node.rpc, gateway_base_url=ipfs_node.gateway) as kubo:
        for data in (b"", b"small", os.urandom(300_000), os.urandom(1 << 20)):
            assert await local.save(data, codec) == await kubo.save(data, codec)  # type: ignore[arg-type]
