"""``py-hamt publish``: a NetCDF file or Zarr directory into a store."""

from __future__ import annotations

import argparse
from pathlib import Path

import xarray as xr

from py_hamt.cas.local import LocalCAS
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import STORE_HELP, close_store, open_store
from py_hamt.errors import InvalidArgumentError
from py_hamt.jobs.publish import DEFAULT_CHUNK_BYTES, publish_dataset

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        help="write a NetCDF file or a Zarr directory into a store and print its root",
        description="Reads SOURCE with xarray (NetCDF-4/HDF5 through h5netcdf, or a Zarr "
        "directory), rechunks it to at most --chunk-kib per chunk, writes it as a HAMT "
        "(or sharded) Zarr dataset, commits it and prints the root CID.",
    )
    p.add_argument("source", type=Path, help="a .nc file or a Zarr directory")
    p.add_argument("--store", required=True, help=f"where to write: {STORE_HELP}")
    p.add_argument("--layout", choices=("hamt", "sharded"), default="hamt")
    p.add_argument("--chunks-per-shard", type=int, default=6250, help="sharded layout only")
    p.add_argument(
        "--chunk-kib",
        type=int,
        default=DEFAULT_CHUNK_BYTES // 1024,
        help="largest chunk, KiB (default 1024: one IPFS block)",
    )
    p.add_argument("--ref", help="in a local store, also point this ref at the root")
    p.set_defaults(func=run)


def _open_source(path: Path) -> xr.Dataset:
    if not path.exists():
        raise InvalidArgumentError(f"{path} does not exist")
    if path.is_dir():
        opened: xr.Dataset = xr.open_zarr(path, chunks=None)
        return opened
    try:
        opened = xr.open_dataset(path, engine="h5netcdf", chunks=None)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path} is not a NetCDF-4 file xarray can read: {exc}") from exc
    return opened


async def run(args: argparse.Namespace) -> int:
    ds = _open_source(args.source)
    cas = open_store(args.store)
    bar = ProgressBar("publishing")
    try:
        done = await publish_dataset(
            cas,
            ds,
            layout=args.layout,
            chunks_per_shard=args.chunks_per_shard,
            target_chunk_bytes=args.chunk_kib * 1024,
            progress=bar,
        )
        if args.ref:
            if not isinstance(cas, LocalCAS):
                raise InvalidArgumentError("--ref needs a local store")
            await cas.set_ref(args.ref, done.root_cid)
    finally:
        bar.close()
        await close_store(cas)
    print(done.root_cid)
    return 0
