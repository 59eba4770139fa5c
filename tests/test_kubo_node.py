"""KuboCAS against a real IPFS node: adds, gateway reads, ranges, pins and a
whole xarray dataset written and read back through ZarrHAMTStore."""

from __future__ import annotations

import os
import time

import pytest
import xarray as xr
from multiformats import CID

from py_hamt import HAMT, BlockNotFoundError, KuboCAS, RequestTimeoutError, ZarrHAMTStore
from py_hamt.codec.multihash import blake3_multihash
from py_hamt.datasets import climate_dataset
from tests.conftest import IpfsNode


def cas_for(node: IpfsNode, **kwargs: object) -> KuboCAS:
    return KuboCAS(rpc_base_url=node.rpc, gateway_base_url=node.gateway, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("hasher", ["blake3", "sha2-256"])
async def test_add_and_load_with_both_hashes(ipfs_node: IpfsNode, hasher: str) -> None:
    data = os.urandom(5000)
    async with cas_for(ipfs_node, hasher=hasher) as cas:
        value = await cas.save(data, "raw")
        node = await cas.save(b"\x99\x01\x00" + b"\xa0" * 256, "dag-cbor")
        assert value.codec.name == "raw"
        assert node.codec.name == "dag-cbor"
        assert value.hashfun.name == hasher
        assert await cas.load(value) == data
        assert await cas.load(node) == b"\x99\x01\x00" + b"\xa0" * 256
        assert await cas.load(value, offset=100, length=50) == data[100:150]
        assert await cas.load(value, offset=4990) == data[4990:]
        assert await cas.load(value, suffix=7) == data[-7:]
        assert await cas.load(value, suffix=0) == b""


@pytest.mark.parametrize("hasher", ["blake3", "sha2-256"])
async def test_ranged_reads_of_dag_cbor_blocks(ipfs_node: IpfsNode, hasher: str) -> None:
    """The JS gateway answers a Range on a dag-cbor CID with 500: such reads
    fetch the raw block, verify it and cut the range."""
    node = b"\x99\x01\x00" + bytes(range(256))
    async with cas_for(ipfs_node, hasher=hasher) as cas:
        cid = await cas.save(node, "dag-cbor")
        assert cid.codec.name == "dag-cbor"
        assert await cas.load(cid, offset=2, length=4) == node[2:6]
        assert await cas.load(cid, offset=250) == node[250:]
        assert await cas.load(cid, suffix=3) == node[-3:]


async def test_blake3_cids_match_a_local_computation(ipfs_node: IpfsNode) -> None:
    data = b"same bytes, same id"
    async with cas_for(ipfs_node) as cas:
        cid = await cas.save(data, "raw")
    assert bytes(cid.digest) == blake3_multihash(data)


async def test_multi_chunk_values_read_whole_and_ranged(ipfs_node: IpfsNode) -> None:
    data = os.urandom(2 * 2**20 + 123)
    async with cas_for(ipfs_node, chunker="size-1048576") as cas:
        cid = await cas.save(data, "raw")
        assert cid.codec.name == "dag-pb"
        assert await cas.load(cid) == data
        assert await cas.load(cid, offset=2**20 - 5, length=10) == data[2**20 - 5 : 2**20 + 5]


async def test_verified_ranges_on_the_real_gateway(ipfs_node: IpfsNode) -> None:
    data = os.urandom(4096)
    async with cas_for(ipfs_node, verify_ranges=True) as cas:
        cid = await cas.save(data, "raw")
        assert await cas.load(cid, offset=10, length=20) == data[10:30]
        assert cid in cas._verified


async def test_pins(ipfs_node: IpfsNode) -> None:
    async with cas_for(ipfs_node) as cas:
        a = await cas.save(os.urandom(64), "raw")
        b = await cas.save(os.urandom(64), "raw")
        await cas.pin_cid(a)
        assert a in await cas.pin_ls()
        await cas.pin_update(a, b)
        pins = await cas.pin_ls()
        assert b in pins
        assert a not in pins
        await cas.unpin_cid(b, target_rpc=ipfs_node.rpc + "/api/v0/")
        assert b not in await cas.pin_ls()


async def test_pin_on_add(ipfs_node: IpfsNode) -> None:
    async with cas_for(ipfs_node, pin_on_add=True) as cas:
        cid = await cas.save(os.urandom(32), "raw")
        assert cid in await cas.pin_ls()


async def test_a_cid_the_node_lacks_times_out_instead_of_hanging(ipfs_node: IpfsNode) -> None:
    absent = CID("base32", 1, "raw", blake3_multihash(b"never added " + os.urandom(8)))
    started = time.monotonic()
    async with cas_for(ipfs_node, timeout=1.5, max_retries=0) as cas:
        with pytest.raises((RequestTimeoutError, BlockNotFoundError), match=str(absent)):
            await cas.load(absent)
    assert time.monotonic() - started < 15


async def test_xarray_dataset_through_zarr_hamt_store(ipfs_node: IpfsNode) -> None:
    ds = climate_dataset(n_time=24, n_lat=18, n_lon=36)
    encoding = {v: {"chunks": (12, 9, 18)} for v in ds.data_vars}
    async with cas_for(ipfs_node) as cas:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ds.to_zarr(
            store=ZarrHAMTStore(hamt, read_only=False), mode="w", zarr_format=3, encoding=encoding
        )
        await hamt.make_read_only()
        root = hamt.root_node_id
    assert isinstance(root, CID)
    assert str(root).startswith("bafyr4i")

    # A reader with only the gateway: no RPC endpoint at all.
    async with KuboCAS(
        gateway_base_url=ipfs_node.gateway, rpc_base_url="http://127.0.0.1:9"
    ) as reader:
        ro = await HAMT.build(cas=reader, root_node_id=root, read_only=True, values_are_bytes=True)
        back = xr.open_zarr(store=ZarrHAMTStore(ro, read_only=True), chunks=None).load()
    xr.testing.assert_identical(back, ds)
