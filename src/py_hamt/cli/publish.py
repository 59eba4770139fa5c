"""``py-hamt publish``: a NetCDF file or Zarr directory into a store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from py_hamt.cli.options import positive_int
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import (
    STORE_HELP,
    check_ref_name,
    close_store,
    open_store,
    require_local,
    set_ref,
)
from py_hamt.errors import InvalidArgumentError, one_line

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["add_parser"]

DEFAULT_CHUNK_KIB = 1024  # py_hamt.jobs.publish.DEFAULT_CHUNK_BYTES // 1024, without importing it
DEFAULT_CHUNKS_PER_SHARD = 6250


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
    p.add_argument(
        "--chunks-per-shard",
        type=positive_int,
        default=None,
        help=f"chunk CIDs per shard, --layout sharded only (default {DEFAULT_CHUNKS_PER_SHARD})",
    )
    p.add_argument(
        "--chunk-kib",
        type=positive_int,
        default=DEFAULT_CHUNK_KIB,
        help=f"largest chunk, KiB, >= 1 (default {DEFAULT_CHUNK_KIB}: one IPFS block)",
    )
    p.add_argument("--ref", help="in a local store, also point this ref at the root")
    p.set_defaults(func=run)


def _open_source(path: Path) -> xr.Dataset:
    import xarray as xr

    if path.is_dir():
        try:
            opened: xr.Dataset = xr.open_zarr(path, chunks=None)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgumentError(
                f"{path} is not a Zarr directory xarray can read: {one_line(exc)}"
            ) from exc
        return opened
    try:
        opened = xr.open_dataset(path, engine="h5netcdf", chunks=None)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path} is not a NetCDF-4 file xarray can read: {exc}") from exc
    return opened


async def run(args: argparse.Namespace) -> int:
    # Everything that can be checked is checked before the store is touched.
    if not args.source.exists():
        raise InvalidArgumentError(f"{args.source} does not exist")
    if args.chunks_per_shard is not None and args.layout != "sharded":
        raise InvalidArgumentError("--chunks-per-shard applies to --layout sharded only")
    if args.ref is not None:
        require_local(args.store, "--ref")
    from py_hamt.jobs.publish import publish_dataset

    with _open_source(args.source) as ds:
        cas = open_store(args.store)
        try:
            if args.ref is not None:
                await check_ref_name(cas, args.ref)
            bar = ProgressBar("publishing")
            try:
                done = await publish_dataset(
                    cas,
                    ds,
                    layout=args.layout,
                    chunks_per_shard=args.chunks_per_shard or DEFAULT_CHUNKS_PER_SHARD,
                    target_chunk_bytes=args.chunk_kib * 1024,
                    progress=bar,
                )
            finally:
                bar.close()
            # Committed: the root is printed before anything else can fail.
            print(done.root_cid, flush=True)
            if args.ref is not None:
                await set_ref(cas, args.ref, done.root_cid)
        finally:
            await close_store(cas)
    return 0
