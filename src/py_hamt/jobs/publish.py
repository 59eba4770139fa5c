"""Write an xarray dataset into a store as a HAMT or sharded Zarr dataset."""

from __future__ import annotations

import asyncio
import math
import warnings
from dataclasses import dataclass
from typing import Any, Final, Literal

import xarray as xr
from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.errors import InvalidArgumentError
from py_hamt.jobs.progress import Progress, ProgressCallback, report
from py_hamt.stores.hamt_store import ZarrHAMTStore
from py_hamt.stores.sharded import ShardedZarrStore
from py_hamt.trie.hamt import HAMT

__all__ = ["DEFAULT_CHUNK_BYTES", "PublishReport", "auto_chunks", "publish_dataset"]

DEFAULT_CHUNK_BYTES: Final = 1 << 20
"""One MiB: Kubo's default chunk size, so every chunk is one IPFS block."""


@dataclass
class PublishReport:
    root_cid: CID
    layout: str
    keys: int
    bytes: int
    root: WriteResult | None


def auto_chunks(shape: tuple[int, ...], itemsize: int, target: int) -> tuple[int, ...]:
    """A chunk shape of at most ``target`` bytes, halving the largest
    dimension first (so time series stay long and maps stay square)."""
    chunks = list(shape) or []
    while chunks and math.prod(chunks) * itemsize > target and max(chunks) > 1:
        i = chunks.index(max(chunks))
        chunks[i] = -(-chunks[i] // 2)
    return tuple(max(c, 1) for c in chunks)


def _encoding(ds: xr.Dataset, target: int) -> dict[str, dict[str, Any]]:
    return {
        str(name): {"chunks": auto_chunks(tuple(var.shape), var.dtype.itemsize, target)}
        for name, var in ds.variables.items()
        if var.ndim > 0
    }


async def publish_dataset(
    cas: ContentAddressedStore,
    ds: xr.Dataset,
    *,
    layout: Literal["hamt", "sharded"] = "hamt",
    chunks_per_shard: int = 6250,
    target_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: ProgressCallback | None = None,
) -> PublishReport:
    """Write ``ds`` to ``cas`` and commit it; return the root and totals.

    Chunks are chosen afresh (at most ``target_chunk_bytes`` each, 1 MiB by
    default), whatever chunking the source had.
    """
    if layout not in ("hamt", "sharded"):
        raise InvalidArgumentError(f"layout must be 'hamt' or 'sharded', got {layout!r}")
    ds = ds.drop_encoding()
    encoding = _encoding(ds, target_chunk_bytes)
    expected = (
        len(ds.variables)
        + 1
        + sum(
            math.prod(-(-s // c) for s, c in zip(ds[n].shape, e["chunks"], strict=True))
            for n, e in encoding.items()
        )
    )
    written = {"keys": 0, "bytes": 0}

    def on_write(key: str, result: WriteResult) -> None:
        written["keys"] += 1
        written["bytes"] += result.size
        report(
            progress,
            Progress(written["keys"], max(expected, written["keys"]), "keys", written["bytes"]),
        )

    store: ZarrHAMTStore | ShardedZarrStore
    if layout == "hamt":
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        store = ZarrHAMTStore(hamt, on_write=on_write)
    else:
        biggest = max((v for v in ds.data_vars.values()), key=lambda v: v.size, default=None)
        shape = tuple(biggest.shape) if biggest is not None else (1,)
        chunk = encoding[str(biggest.name)]["chunks"] if biggest is not None else (1,)
        store = await ShardedZarrStore.open(
            cas, False, array_shape=shape, chunk_shape=chunk, chunks_per_shard=chunks_per_shard
        )
        store.on_write = on_write
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        await asyncio.to_thread(ds.to_zarr, store=store, mode="w", zarr_format=3, encoding=encoding)
    commit: WriteResult | None
    if isinstance(store, ZarrHAMTStore):
        commit = await store.hamt.make_read_only()
        root = cas.id_to_cid(commit.id, "dag-cbor")
    else:
        root = CID.decode(await store.flush())
        commit = store.last_commit
    return PublishReport(root, layout, written["keys"], written["bytes"], commit)
