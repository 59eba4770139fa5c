"""py_hamt.dask: xarray's to_zarr on a real dask.distributed process cluster.

One LocalCluster (2 worker processes, 1 thread each) serves the module.
Each test compares against what a single-process ``ds.to_zarr`` gives, so a
wrong chunk, a lost or doubled pointer or different metadata shows as a
different root.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import dask.array
import distributed
import numpy as np
import pytest
import xarray as xr

import py_hamt.dask as phd
from py_hamt import (
    HAMT,
    DecryptionError,
    InMemoryCAS,
    InvalidArgumentError,
    InvalidTypeError,
    LocalCAS,
    NotCommittedError,
    Progress,
    ReadOnlyError,
    ShardedZarrStore,
    SimpleEncryptedZarrHAMTStore,
    ZarrHAMTStore,
)

# dask and distributed carry no annotations: typed handles for mypy strict
LocalCluster: Callable[..., Any] = distributed.LocalCluster
Client: Callable[..., Any] = distributed.Client
map_blocks: Callable[..., Any] = dask.array.map_blocks

KEY = bytes(range(32))
HEADER = b"dask-test"


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    cluster = LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with cluster, Client(cluster) as c:
        yield c


@pytest.fixture
def cas(tmp_path: Path) -> LocalCAS:
    return LocalCAS(tmp_path / "cas")


def dataset(n_time: int = 40) -> xr.Dataset:
    rng = np.random.default_rng(7)
    return xr.Dataset(
        {
            "temp": (("time", "x"), rng.random((n_time, 6), dtype="f4")),
            "rain": (("time",), rng.random(n_time)),
            # all NaN, xarray's fill value: zarr stores no chunks, on either path
            "calm": (("time", "x"), np.full((n_time, 6), np.nan, "f4")),
        },
        coords={"time": np.arange(n_time), "x": np.arange(6)},
    )


def new_hamt(cas: Any) -> HAMT:
    return asyncio.run(HAMT.build(cas=cas, values_are_bytes=True))


def single_process_root(cas: Any, *writes: tuple[xr.Dataset, dict[str, Any]]) -> Any:
    """The root of plain ``ds.to_zarr`` calls, one after another, in-process."""
    hamt = new_hamt(cas)
    with dask.config.set(scheduler="synchronous"):
        for ds, kwargs in writes:
            if hamt.read_only:
                asyncio.run(hamt.enable_write())
            ds.to_zarr(store=ZarrHAMTStore(hamt), zarr_format=3, **kwargs)
            asyncio.run(hamt.make_read_only())
    return hamt.root_node_id


def read_back(cas: Any, root: Any) -> xr.Dataset:
    ro = asyncio.run(HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True))
    with dask.config.set(scheduler="synchronous"):
        back: xr.Dataset = xr.open_zarr(ZarrHAMTStore(ro, read_only=True), chunks=None).load()
    return back


# ------------------------------------------------------------ ZarrHAMTStore
def test_same_data_gives_the_single_process_root(client: distributed.Client, cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    expected = single_process_root(cas, (ds, {"mode": "w"}))
    hamt = new_hamt(cas)
    reports: list[Progress] = []
    result = phd.to_zarr(ds, ZarrHAMTStore(hamt), mode="w", zarr_format=3, progress=reports.append)
    assert hamt.read_only
    assert result.id == hamt.root_node_id == expected
    assert hamt.last_commit == result
    xr.testing.assert_identical(read_back(cas, result.id), dataset())
    # temp and rain: 4 blocks each (calm's 4 too, storing nothing); progress ends complete
    assert reports[-1].done == reports[-1].total == 12
    assert reports[-1].bytes_moved > 0


def test_plain_to_zarr_under_a_client_names_py_hamt_dask(
    client: distributed.Client, cas: LocalCAS
) -> None:
    store = ZarrHAMTStore(new_hamt(cas))
    with pytest.raises(NotCommittedError, match=r"py_hamt\.dask\.to_zarr"):
        dataset().chunk({"time": 10}).to_zarr(store=store, mode="w", zarr_format=3)


def test_plain_to_zarr_of_a_sharded_store_under_a_client_names_py_hamt_dask(
    client: distributed.Client, cas: LocalCAS
) -> None:
    store = asyncio.run(ShardedZarrStore.open(cas, False, chunks_per_shard=4))
    with pytest.raises(NotCommittedError, match=r"ShardedZarrStore.*py_hamt\.dask\.to_zarr"):
        dataset().chunk({"time": 10}).to_zarr(store=store, mode="w", zarr_format=3)


def test_pickling_a_store_with_buffered_changes_names_py_hamt_dask(cas: LocalCAS) -> None:
    hamt = new_hamt(cas)
    asyncio.run(hamt.set("zarr.json", b"{}"))
    with (
        dask.config.set(scheduler="threads"),
        pytest.raises(NotCommittedError, match=r"py_hamt\.dask\.to_zarr"),
    ):
        pickle.dumps(ZarrHAMTStore(hamt))
    asyncio.run(hamt.make_read_only())
    copy = pickle.loads(pickle.dumps(ZarrHAMTStore(hamt, read_only=True)))
    assert copy.hamt.root_node_id == hamt.root_node_id


def test_in_memory_cas_is_refused_under_a_process_cluster(client: distributed.Client) -> None:
    store = ZarrHAMTStore(new_hamt(InMemoryCAS()))
    with pytest.raises(InvalidArgumentError, match="InMemoryCAS cannot be shared"):
        phd.to_zarr(dataset().chunk({"time": 10}), store, mode="w")


def test_in_memory_cas_works_with_the_threaded_scheduler() -> None:
    cas = InMemoryCAS()
    ds = dataset().chunk({"time": 10})
    expected = single_process_root(cas, (ds, {"mode": "w"}))
    with dask.config.set(scheduler="threads"):
        result = phd.to_zarr(ds, ZarrHAMTStore(new_hamt(cas)), mode="w", zarr_format=3)
    assert result.id == expected


def test_a_block_covering_part_of_a_chunk_is_refused(cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    with (
        dask.config.set(scheduler="threads"),
        pytest.raises(InvalidArgumentError, match=r"'temp'.*covers part of a stored chunk"),
    ):
        phd.to_zarr(
            ds,
            ZarrHAMTStore(new_hamt(cas)),
            mode="w",
            encoding={"temp": {"chunks": (20, 6)}},
            safe_chunks=False,
        )


def test_wrong_stores_are_refused(cas: LocalCAS) -> None:
    hamt = new_hamt(cas)
    asyncio.run(hamt.make_read_only())
    with pytest.raises(ReadOnlyError):
        phd.to_zarr(dataset(), ZarrHAMTStore(hamt, read_only=True))
    with pytest.raises(InvalidTypeError, match="dict"):
        phd.to_zarr(dataset(), {})  # type: ignore[arg-type]


# ------------------------------------------------- append, region, compute=False
def test_append_gives_the_single_process_root(client: distributed.Client, cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    first, second = ds.isel(time=slice(0, 20)), ds.isel(time=slice(20, 40))
    expected = single_process_root(cas, (first, {"mode": "w"}), (second, {"append_dim": "time"}))
    store = ZarrHAMTStore(new_hamt(cas))
    phd.to_zarr(first, store, mode="w", zarr_format=3)
    result = phd.to_zarr(second, store, append_dim="time", zarr_format=3)
    assert result.id == expected
    xr.testing.assert_identical(read_back(cas, result.id), dataset())


def test_template_then_regions_gives_the_full_write_root(
    client: distributed.Client, cas: LocalCAS
) -> None:
    ds = dataset().chunk({"time": 10})
    expected = single_process_root(cas, (ds, {"mode": "w"}))
    store = ZarrHAMTStore(new_hamt(cas))
    template = phd.to_zarr(ds, store, mode="w", zarr_format=3, compute=False)
    # metadata only: the data reads as fill value, the coordinates are there
    empty = read_back(cas, template.id)
    assert bool(empty["temp"].isnull().all())
    np.testing.assert_array_equal(empty["time"].values, np.arange(40))
    # one store object serves every region write (re-enabled after each commit)
    phd.to_zarr(ds.isel(time=slice(20, 40)).drop_vars("x"), store, region={"time": slice(20, 40)})
    result = phd.to_zarr(ds.isel(time=slice(0, 20)), store, region="auto")
    assert result.id == expected


def test_a_region_of_fill_values_deletes_its_chunks_as_zarr_does(
    client: distributed.Client, cas: LocalCAS
) -> None:
    ds = dataset().chunk({"time": 10})
    zeroed = ds.isel(time=slice(0, 10)).drop_vars("x").copy(deep=True)
    zeroed["temp"][:] = np.nan
    region = {"time": slice(0, 10)}
    expected = single_process_root(cas, (ds, {"mode": "w"}), (zeroed, {"region": region}))
    store = ZarrHAMTStore(new_hamt(cas))
    phd.to_zarr(ds, store, mode="w", zarr_format=3)
    result = phd.to_zarr(zeroed, store, region=region)
    assert result.id == expected
    assert asyncio.run(store.hamt.has("temp/c/0/0")) is False


# -------------------------------------------------------- other stores
def test_sharded_store_gives_the_single_process_root(
    client: distributed.Client, cas: LocalCAS
) -> None:
    ds = dataset().chunk({"time": 10})
    single = asyncio.run(ShardedZarrStore.open(cas, False, chunks_per_shard=3))
    with dask.config.set(scheduler="synchronous"):
        ds.to_zarr(store=single, mode="w", zarr_format=3)
    expected = asyncio.run(single.flush())
    store = asyncio.run(ShardedZarrStore.open(cas, False, chunks_per_shard=3))
    result = phd.to_zarr(ds, store, mode="w", zarr_format=3)
    assert str(store.root_cid) == expected
    assert result == store.last_commit
    ro = asyncio.run(ShardedZarrStore.open(cas, True, expected))
    with dask.config.set(scheduler="synchronous"):
        xr.testing.assert_identical(xr.open_zarr(ro, chunks=None).load(), dataset())


@pytest.mark.parametrize("bind_keys", [False, True])
def test_encrypted_store_encrypts_on_the_workers(
    client: distributed.Client, cas: LocalCAS, bind_keys: bool
) -> None:
    ds = dataset().chunk({"time": 10})
    hamt = new_hamt(cas)
    store = SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER, bind_keys=bind_keys)
    result = phd.to_zarr(ds, store, mode="w", zarr_format=3)
    ro = asyncio.run(
        HAMT.build(cas=cas, root_node_id=result.id, read_only=True, values_are_bytes=True)
    )
    reader = SimpleEncryptedZarrHAMTStore(ro, True, KEY, HEADER, bind_keys=bind_keys)
    with dask.config.set(scheduler="synchronous"):
        xr.testing.assert_identical(xr.open_zarr(reader, chunks=None).load(), dataset())
        wrong = SimpleEncryptedZarrHAMTStore(ro, True, bytes(32), HEADER, bind_keys=bind_keys)
        with pytest.raises(DecryptionError, match="temp/c/0/0"):
            wrong.get_sync("temp/c/0/0")


# ---------------------------------------------------------------- faults
def _kill_once(block: np.ndarray[Any, Any], marker: str) -> np.ndarray[Any, Any]:
    """Kill this worker process the first time any block runs here."""
    if block.size == 0:  # dask probing for the output's type, in this process
        return block
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return block
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return block  # pragma: no cover - the process is gone


def test_a_killed_worker_loses_and_doubles_nothing(
    client: distributed.Client, cas: LocalCAS, tmp_path: Path
) -> None:
    ds = dataset().chunk({"time": 10})
    expected = single_process_root(cas, (ds, {"mode": "w"}))
    marker = str(tmp_path / "killed-once")
    doomed = ds.copy()
    doomed["temp"] = doomed["temp"].copy(
        data=map_blocks(_kill_once, ds["temp"].data, marker, dtype="f4")
    )
    result = phd.to_zarr(doomed, ZarrHAMTStore(new_hamt(cas)), mode="w", zarr_format=3)
    assert Path(marker).exists()  # a worker did die
    assert result.id == expected
    client.wait_for_workers(2, timeout=60)


class BoomError(RuntimeError):
    pass


def _fail(block: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if block.size == 0:  # dask probing for the output's type
        return block
    raise BoomError("a task failed")


def test_a_failed_job_commits_nothing(client: distributed.Client, cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    store = ZarrHAMTStore(new_hamt(cas))
    before = phd.to_zarr(ds, store, mode="w", zarr_format=3).id
    broken = (ds * 2).copy()
    broken["temp"] = broken["temp"].copy(data=map_blocks(_fail, broken["temp"].data, dtype="f4"))
    with pytest.raises(BoomError, match="a task failed"):
        phd.to_zarr(broken.drop_vars("x"), store, region={"time": slice(0, 40)})
    assert not store.hamt.read_only  # the new metadata stays buffered, uncommitted
    xr.testing.assert_identical(read_back(cas, before), dataset())


# ----------------------------------------------------------------- merges
def _region_writer(cas: LocalCAS, template: Any, ds: xr.Dataset, region: slice) -> Any:
    """An independent writer: opens the template root, fills one region."""
    hamt = asyncio.run(HAMT.build(cas=cas, root_node_id=template, values_are_bytes=True))
    asyncio.run(hamt.enable_write())
    with dask.config.set(scheduler="threads"):
        return phd.to_zarr(
            ds.isel(time=region).drop_vars("x"), ZarrHAMTStore(hamt), region={"time": region}
        ).id


def test_merge_of_disjoint_regions_gives_the_full_write_root(cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    expected = single_process_root(cas, (ds, {"mode": "w"}))
    with dask.config.set(scheduler="threads"):
        template = phd.to_zarr(
            ds, ZarrHAMTStore(new_hamt(cas)), mode="w", zarr_format=3, compute=False
        ).id
    left = _region_writer(cas, template, ds, slice(0, 20))
    right = _region_writer(cas, template, ds, slice(20, 40))
    assert asyncio.run(phd.merge_hamts(cas, [left, right])) == expected
    assert asyncio.run(phd.merge_hamts(cas, [right, left, template])) == expected


def test_merge_of_overlapping_writers_names_the_key(cas: LocalCAS) -> None:
    ds = dataset().chunk({"time": 10})
    with dask.config.set(scheduler="threads"):
        template = phd.to_zarr(
            ds, ZarrHAMTStore(new_hamt(cas)), mode="w", zarr_format=3, compute=False
        ).id
    left = _region_writer(cas, template, ds, slice(0, 20))
    other = (ds + 1).assign_coords(time=ds.time)
    right = _region_writer(cas, template, other, slice(10, 30))
    with pytest.raises(InvalidArgumentError, match=r"key 'temp/c/1/0' holds"):
        asyncio.run(phd.merge_hamts(cas, [left, right]))
    for prefer, winner in (("left", ds), ("right", other)):
        merged = asyncio.run(phd.merge_hamts(cas, [left, right], prefer=prefer))  # type: ignore[arg-type]
        back = read_back(cas, merged)
        np.testing.assert_array_equal(back["temp"][10:20], winner["temp"][10:20])
    with pytest.raises(InvalidArgumentError, match="prefer must be"):
        asyncio.run(phd.merge_hamts(cas, [left], prefer="both"))  # type: ignore[arg-type]


def test_sharded_independent_writers_graft_into_a_template(
    client: distributed.Client, cas: LocalCAS
) -> None:
    ds = dataset().chunk({"time": 10})
    main = asyncio.run(ShardedZarrStore.open(cas, False, chunks_per_shard=3))
    phd.to_zarr(ds, main, mode="w", zarr_format=3, compute=False)
    parts = []
    for start in (0, 20):
        part = asyncio.run(ShardedZarrStore.open(cas, False, chunks_per_shard=3))
        phd.to_zarr(ds.isel(time=slice(start, start + 20)), part, mode="w", zarr_format=3)
        parts.append((str(part.root_cid), start // 10))
    for root, offset in parts:
        asyncio.run(main.graft_store(root, (offset,), source_array_path="rain"))
        asyncio.run(main.graft_store(root, (offset, 0), source_array_path="temp"))
    root = asyncio.run(main.flush())
    ro = asyncio.run(ShardedZarrStore.open(cas, True, root))
    with dask.config.set(scheduler="synchronous"):
        xr.testing.assert_identical(xr.open_zarr(ro, chunks=None).load(), dataset())


# --------------------------------------------------------- HAMT.set_pointer
async def test_set_pointer_links_an_existing_value(cas: LocalCAS) -> None:
    by_value = await HAMT.build(cas=cas, values_are_bytes=True)
    await by_value.set("k", b"value")
    await by_value.make_read_only()
    by_pointer = await HAMT.build(cas=cas, values_are_bytes=True)
    await by_pointer.set_pointer("k", await by_value.get_pointer("k"))
    await by_pointer.make_read_only()
    assert by_pointer.root_node_id == by_value.root_node_id
    assert await by_pointer.get("k") == b"value"
    with pytest.raises(ReadOnlyError):
        await by_pointer.set_pointer("k", await by_value.get_pointer("k"))
    await by_pointer.enable_write()
    with pytest.raises(InvalidTypeError, match="'k'"):
        await by_pointer.set_pointer("k", None)
