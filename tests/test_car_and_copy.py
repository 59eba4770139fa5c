"""CAR export/import and store-to-store copies: verified, root last,
resumable; interoperable with a real IPFS node."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import dag_cbor
import httpx
import pytest
import xarray as xr
from multiformats import CID

from py_hamt import (
    HAMT,
    IntegrityError,
    KuboCAS,
    LocalCAS,
    ShardedZarrStore,
    ZarrHAMTStore,
    convert_hamt_to_sharded,
    copy_dag,
    export_car,
    import_car,
)
from py_hamt.codec.car import CARFormatError, CARReader, encode_header, encode_section
from py_hamt.datasets import climate_dataset
from py_hamt.jobs.progress import Progress
from tests.conftest import CIDCAS, IpfsNode

DS = climate_dataset(n_time=24, n_lat=12, n_lon=24)


async def _export_bytes(cas: Any, root: Any) -> bytes:
    buf = io.BytesIO()
    await export_car(cas, root, buf)
    return buf.getvalue()


async def reachable_blocks(cas: Any, root: Any) -> int:
    """How many blocks the DAG under ``root`` has (via a CAR export)."""
    return (await export_car(cas, root, io.BytesIO())).blocks


async def hamt_dataset(cas: Any, ds: xr.Dataset = DS) -> CID:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(
        store=ZarrHAMTStore(hamt),
        mode="w",
        zarr_format=3,
        encoding={v: {"chunks": (6, 6, 12)} for v in DS.data_vars},
    )
    await hamt.make_read_only()
    return cast("CID", hamt.root_node_id)  # every store used here returns CIDs


async def read_hamt(cas: Any, root: Any) -> xr.Dataset:
    ro = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    back: xr.Dataset = xr.open_zarr(ZarrHAMTStore(ro, read_only=True), chunks=None).load()
    return back


# -------------------------------------------------------------------- CAR
async def test_car_round_trip_of_hamt_and_sharded_datasets(tmp_path: Path) -> None:
    src = LocalCAS(tmp_path / "src")
    root = await hamt_dataset(src)
    sharded_root = await convert_hamt_to_sharded(src, root, 8)
    for name, r in (("hamt", root), ("sharded", sharded_root)):
        seen: list[Progress] = []
        report = await export_car(src, r, tmp_path / f"{name}.car", progress=seen.append)
        assert report.blocks == seen[-1].done
        dst = LocalCAS(tmp_path / f"dst-{name}")
        imported = await import_car(dst, tmp_path / f"{name}.car")
        assert imported.roots == [CID.decode(str(r))]
        assert imported.blocks == report.blocks
    xr.testing.assert_identical(await read_hamt(LocalCAS(tmp_path / "dst-hamt"), root), DS)
    sharded = await ShardedZarrStore.open(LocalCAS(tmp_path / "dst-sharded"), True, sharded_root)
    xr.testing.assert_identical(xr.open_zarr(sharded, chunks=None).load(), DS)


async def test_car_is_v1_with_the_root_first(tmp_path: Path) -> None:
    src = CIDCAS()
    root = await hamt_dataset(src)
    buf = io.BytesIO()
    await export_car(src, root, buf)
    buf.seek(0)
    reader = CARReader(buf)
    assert reader.roots == [root]
    blocks = list(reader)
    assert blocks[0][0] == root
    # Exactly the blocks reachable from the root, each once (found here with
    # dag_cbor itself, not py_hamt's walker).
    reachable: set[CID] = set()
    todo = [root]
    while todo:
        cid = todo.pop()
        if cid in reachable:
            continue
        reachable.add(cid)
        if cid.codec.name == "dag-cbor":
            stack = [dag_cbor.decode(src.blocks[cid])]
            while stack:
                item = stack.pop()
                if isinstance(item, CID):
                    todo.append(item)
                elif isinstance(item, dict):
                    stack.extend(item.values())
                elif isinstance(item, list):
                    stack.extend(item)
    assert {c for c, _ in blocks} == reachable
    assert len(blocks) == len(reachable)
    assert all(src.blocks[c] == data for c, data in blocks)


async def test_import_checks_every_block_before_writing_any(tmp_path: Path) -> None:
    good = b"good block"
    cid = CID("base32", 1, "raw", _b3(good))
    bad_cid = CID("base32", 1, "raw", _b3(b"expected"))
    car = encode_header([cid]) + encode_section(cid, good) + encode_section(bad_cid, b"tampered")
    dst = LocalCAS(tmp_path)
    with pytest.raises(IntegrityError, match=f"do not hash to {bad_cid}"):
        await import_car(dst, car)
    assert dst.block_files() == []  # nothing written


def _b3(data: bytes) -> bytes:
    from multiformats import multihash

    return bytes(multihash.get("blake3").digest(data, size=32))


@pytest.mark.parametrize(
    ("car", "message"),
    [
        (b"", "empty file"),
        (b"\x05abc", "truncated"),
        (b"\x02\xa0\x00", "not DAG-CBOR"),
        (b"\x01\xa0", "not a CAR v1 header"),
        (
            bytes([len(dag_cbor.encode({"roots": [1], "version": 1}))])
            + dag_cbor.encode({"roots": [1], "version": 1}),
            "not a list of CIDs",
        ),
        (encode_header([]) + b"\xff\xff\xff\xff\x0f", "claims"),
        (encode_header([]) + b"\x05\x01\x55\x1e", "truncated"),
        (encode_header([]) + b"\x03\xff\xff\xff", "no valid CID"),
    ],
)
async def test_malformed_cars_are_format_errors(tmp_path: Path, car: bytes, message: str) -> None:
    with pytest.raises(CARFormatError, match=message):
        await import_car(LocalCAS(tmp_path), car)


# ------------------------------------------------------------------- copy
class FailingAfter(LocalCAS):
    """A destination that dies after ``n`` writes, as an interrupted copy would.

    It writes in the calling thread, so no write is still in flight (in a
    worker thread) when it fails, and the count of blocks left is exact.
    """

    def __init__(self, path: Path, n: int) -> None:
        super().__init__(path)
        self.left = n

    async def _store(self, cid: CID, data: bytes) -> None:
        self._store_sync(cid, data)

    async def put_block(self, cid: CID, data: bytes) -> Any:
        if self.left == 0:
            raise ConnectionError("destination went away")
        self.left -= 1
        return await super().put_block(cid, data)


async def test_copy_resumes_and_moves_only_the_rest(tmp_path: Path) -> None:
    src = LocalCAS(tmp_path / "src")
    root = await hamt_dataset(src)
    total = await reachable_blocks(src, root)
    half = total // 2
    with pytest.raises(ConnectionError, match="destination went away"):
        await copy_dag(src, FailingAfter(tmp_path / "dst", half), root, concurrency=1)
    dst = LocalCAS(tmp_path / "dst")
    assert len(dst.block_files()) == half
    assert not await dst.has(
        root
    )  # the root is never written before its blocks  # the root is never written before its blocks

    done = await copy_dag(src, dst, root, record_written=True)
    assert done.copied == total - half
    assert done.skipped == half
    assert done.written[-1] == root  # root last
    assert done.bytes_copied == sum([len(await src.load(c)) for c in done.written])
    xr.testing.assert_identical(await read_hamt(dst, root), DS)

    again = await copy_dag(src, dst, root)
    assert (again.copied, again.skipped, again.bytes_copied) == (0, total, 0)


async def test_copy_verifies_source_blocks(tmp_path: Path) -> None:
    src = LocalCAS(tmp_path / "src")
    root = await hamt_dataset(src)
    victim = next(p for p in src.block_files() if bytes.fromhex(p.name) != bytes(root.digest))
    victim.write_bytes(b"rotten")
    dst = LocalCAS(tmp_path / "dst")
    with pytest.raises(IntegrityError, match="damaged"):
        await copy_dag(src, dst, root)
    assert not await dst.has(root)


# ---------------------------------------------------------- a real node
async def test_our_car_imports_into_the_node_and_reads_through_its_gateway(
    ipfs_node: IpfsNode, tmp_path: Path
) -> None:
    src = LocalCAS(tmp_path / "src")
    root = await hamt_dataset(src)
    await export_car(src, root, tmp_path / "d.car")
    async with KuboCAS(rpc_base_url=ipfs_node.rpc, gateway_base_url=ipfs_node.gateway) as node:
        report = await import_car(node, tmp_path / "d.car")
        assert report.roots == [root]
        xr.testing.assert_identical(await read_hamt(node, root), DS)


async def test_a_car_the_node_exports_imports_into_the_local_store(
    ipfs_node: IpfsNode, tmp_path: Path
) -> None:
    async with KuboCAS(rpc_base_url=ipfs_node.rpc, gateway_base_url=ipfs_node.gateway) as node:
        root = await hamt_dataset(node)
    async with httpx.AsyncClient(timeout=60) as client:
        exported = await client.post(
            f"{ipfs_node.rpc}/api/v0/dag/export", params={"arg": str(root)}
        )
    assert exported.status_code == 200
    local = LocalCAS(tmp_path)
    report = await import_car(local, exported.content)
    assert report.roots == [root]
    xr.testing.assert_identical(await read_hamt(local, root), DS)


async def test_copy_local_to_node_and_rerun(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    fresh = climate_dataset(n_time=24, n_lat=12, n_lon=24, seed=42)  # not on the node yet
    src = LocalCAS(tmp_path)
    root = await hamt_dataset(src, fresh)
    total = await reachable_blocks(src, root)
    async with KuboCAS(rpc_base_url=ipfs_node.rpc, gateway_base_url=ipfs_node.gateway) as node:
        held = await node.local_multihashes()
        walked = CARReader(io.BytesIO(await _export_bytes(src, root)))
        already = sum(bytes(c.digest) in held for c, _ in walked)
        first = await copy_dag(src, node, root)
        assert first.copied + first.skipped == total
        assert (first.copied, first.skipped) == (total - already, already)
        assert first.copied > total // 2
        assert first.root is not None
        second = await copy_dag(src, node, root)
        assert (second.copied, second.skipped) == (0, total)
        xr.testing.assert_identical(await read_hamt(node, root), fresh)
