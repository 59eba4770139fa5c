"""convert_hamt_to_sharded and the sharded-converter command."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from py_hamt import (
    HAMT,
    InMemoryCAS,
    InvalidArgumentError,
    KuboCAS,
    MalformedNodeError,
    Progress,
    ShardedZarrStore,
    ZarrHAMTStore,
    convert_hamt_to_sharded,
)
from py_hamt.cli.sharded_converter import main as converter_main
from py_hamt.datasets import climate_dataset
from tests.conftest import CIDCAS, IpfsNode

CONVERTER = str(Path(sys.executable).with_name("sharded-converter"))
ENCODING = {
    "temperature": {"chunks": (12, 18, 24)},
    "precipitation": {"chunks": (24, 9, 72)},
    "pressure": {"chunks": (6, 36, 36)},
}


class SaveLog(InMemoryCAS):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[str] = []

    async def put(self, data: bytes, codec: Any, **kwargs: Any) -> Any:
        self.saves.append(codec)
        return await super().put(data, codec, **kwargs)


async def hamt_dataset(cas: Any, ds: xr.Dataset) -> Any:
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(store=ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=ENCODING)
    await hamt.make_read_only()
    return hamt.root_node_id


@pytest.mark.parametrize("cas_cls", [SaveLog, CIDCAS])
async def test_conversion_is_identical_and_by_pointer(cas_cls: type) -> None:
    cas = cas_cls()
    ds = climate_dataset()
    root = await hamt_dataset(cas, ds)
    if isinstance(cas, SaveLog):
        cas.saves.clear()
    seen: list[Progress] = []
    new_root = await convert_hamt_to_sharded(cas, root, 16, progress=seen.append)
    if isinstance(cas, SaveLog):
        assert set(cas.saves) == {"dag-cbor"}  # shards and the root only: no chunk re-uploaded
    sharded = await ShardedZarrStore.open(cas, True, new_root)
    hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    source = xr.open_zarr(ZarrHAMTStore(hamt, read_only=True), chunks=None).load()
    converted = xr.open_zarr(sharded, chunks=None).load()
    xr.testing.assert_identical(converted, source)
    xr.testing.assert_identical(converted, ds)
    assert seen[0] == Progress(0, seen[-1].total)
    assert seen[-1].done == seen[-1].total == len([k async for k in hamt.keys()])
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    manifest = await sharded._manifest()
    assert manifest.arrays["precipitation"].grid.chunk_shape == (24, 9, 72)


async def test_converting_something_that_is_not_a_dataset() -> None:
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    await hamt.set("not-zarr", b"x")
    await hamt.make_read_only()
    with pytest.raises(InvalidArgumentError, match=r"holds no zarr\.json"):
        await convert_hamt_to_sharded(cas, hamt.root_node_id, 8)
    value = await cas.save(b"plain bytes", "raw")
    with pytest.raises(MalformedNodeError, match="is not a valid HAMT node"):
        await convert_hamt_to_sharded(cas, value, 8)
    with pytest.raises(InvalidArgumentError, match="chunks_per_shard must be an int > 0"):
        await convert_hamt_to_sharded(cas, hamt.root_node_id, 0)
    with pytest.raises(InvalidArgumentError, match="not a CID: 'garbage'"):
        await convert_hamt_to_sharded(cas, "garbage", 8)


# ------------------------------------------------------------ the command
def test_cli_unreachable_node_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = converter_main(
        [
            "bafyr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
            "--gateway-url",
            f"http://127.0.0.1:{port}",
            "--rpc-url",
            f"http://127.0.0.1:{port}",
            "--timeout",
            "2",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("sharded-converter: error: connection refused")


def test_cli_bad_cid_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert converter_main(["not-a-cid", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not a CID: 'not-a-cid'" in err


async def test_cli_against_a_real_node(ipfs_node: IpfsNode) -> None:
    ds = climate_dataset(n_time=24, n_lat=18, n_lon=36)
    async with KuboCAS(rpc_base_url=ipfs_node.rpc, gateway_base_url=ipfs_node.gateway) as cas:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ds.to_zarr(store=ZarrHAMTStore(hamt), mode="w", zarr_format=3)
        await hamt.make_read_only()
        root = str(hamt.root_node_id)
        value_cid = str(await cas.save(b"not a node", "raw"))
        not_zarr = await HAMT.build(cas=cas, values_are_bytes=True)
        await not_zarr.set("k", b"v")
        await not_zarr.make_read_only()

    args = [
        "--rpc-url",
        ipfs_node.rpc,
        "--gateway-url",
        ipfs_node.gateway,
        "--chunks-per-shard",
        "4",
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        [CONVERTER, root, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    new_root = done.stdout.strip()
    assert new_root.startswith("bafyr4i")
    assert "converting [" in done.stderr
    assert "100%" in done.stderr

    async with KuboCAS(gateway_base_url=ipfs_node.gateway) as reader:
        back = xr.open_zarr(await ShardedZarrStore.open(reader, True, new_root), chunks=None).load()
    xr.testing.assert_identical(back, ds)

    for bad, message in (
        (value_cid, "is not a valid HAMT node"),
        (str(not_zarr.root_node_id), "holds no zarr.json"),
    ):
        failed = await asyncio.to_thread(
            subprocess.run,
            [CONVERTER, bad, *args, "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1
        assert message in failed.stderr


def test_cli_runs_offline_against_the_local_store(tmp_path: Path) -> None:
    import asyncio as aio

    from py_hamt import LocalCAS

    ds = climate_dataset(n_time=12, n_lat=6, n_lon=12)

    async def write() -> Any:
        cas = LocalCAS(tmp_path / "store")
        root = await hamt_dataset(cas, ds)
        await cas.set_ref("main", root)
        return root

    aio.run(write())
    done = subprocess.run(
        [CONVERTER, "ref:main", "--store", str(tmp_path / "store"), "--chunks-per-shard", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    new_root = done.stdout.strip()

    async def read() -> xr.Dataset:
        store = await ShardedZarrStore.open(LocalCAS(tmp_path / "store"), True, new_root)
        back: xr.Dataset = xr.open_zarr(store, chunks=None).load()
        return back

    xr.testing.assert_identical(aio.run(read()), ds)
