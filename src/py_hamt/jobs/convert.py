"""HAMT dataset -> ShardedZarrStore (``sharded_zarr_v2``, as py-hamt 3.6's
converter writes), by pointer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore, IPLDKind
from py_hamt.cas.write_result import WriteResult
from py_hamt.errors import InvalidArgumentError
from py_hamt.jobs.progress import Progress, ProgressCallback, report
from py_hamt.stores.sharded import ShardedZarrStore
from py_hamt.stores.sharded.layout import MANIFEST_V2
from py_hamt.stores.sharded.store import DEFAULT_MAX_CACHE_MEMORY_BYTES
from py_hamt.trie.hamt import HAMT

__all__ = ["convert_hamt_to_sharded", "resolve_root"]

_BATCH: Final = 256


def resolve_root(cas: ContentAddressedStore, root: IPLDKind) -> IPLDKind:
    """The id ``cas`` loads for ``root``, given as a CID, its text, or a raw id."""
    if isinstance(root, str):
        try:
            root = CID.decode(root.strip())
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a CID: {root!r} ({exc})") from exc
    if isinstance(root, CID):
        return cas.cid_to_id(root)
    return root


async def convert_hamt_to_sharded(
    cas: ContentAddressedStore,
    hamt_root_cid: IPLDKind,
    chunks_per_shard: int,
    *,
    progress: ProgressCallback | None = None,
    max_cache_memory_bytes: int = DEFAULT_MAX_CACHE_MEMORY_BYTES,
    on_commit: Callable[[WriteResult], None] | None = None,
) -> str:
    """Copy a ZarrHAMTStore dataset into a new ShardedZarrStore, by pointer.

    Every key of the HAMT is pointed at the block it already has: no chunk
    or metadata bytes are read (besides ``zarr.json`` documents) or
    uploaded; only shards and the new root are written. Returns the new
    root CID as text.

    Args:
        cas: the store holding the HAMT; the sharded store is written there too.
        hamt_root_cid: the HAMT's root (a CID, its text, or a raw id).
        chunks_per_shard: shard size of every array's chunk index (> 0).
        progress: called with a :class:`Progress` as keys are converted.
        on_commit: called with the new root block's :class:`WriteResult`.

    Raises:
        InvalidArgumentError: ``chunks_per_shard`` is not positive, the root
            is not a CID, or the HAMT holds no ``zarr.json`` (not a dataset).
        MalformedNodeError: the root is not a HAMT node.
        BlockNotFoundError, TransportError: the store cannot supply a block.
    """
    if not isinstance(chunks_per_shard, int) or chunks_per_shard <= 0:
        raise InvalidArgumentError(f"chunks_per_shard must be an int > 0, got {chunks_per_shard!r}")
    root_id = resolve_root(cas, hamt_root_cid)
    hamt = await HAMT.build(cas=cas, root_node_id=root_id, read_only=True, values_are_bytes=True)
    keys = [key async for key in hamt.keys()]
    if "zarr.json" not in keys:
        raise InvalidArgumentError(
            f"HAMT {hamt_root_cid} holds no zarr.json: it is not a Zarr dataset"
        )
    documents_keys = [k for k in keys if k.endswith("zarr.json")]
    store = await ShardedZarrStore.open(
        cas,
        False,
        chunks_per_shard=chunks_per_shard,
        max_cache_memory_bytes=max_cache_memory_bytes,
        manifest_version=MANIFEST_V2,
    )
    # Documents first, so every array's grid is known before its chunks.
    ordered = documents_keys + [k for k in keys if not k.endswith("zarr.json")]
    total = len(ordered)
    report(progress, Progress(0, total))
    for start in range(0, total, _BATCH):
        batch = ordered[start : start + _BATCH]
        pointers = await asyncio.gather(*(hamt.get_pointer(k) for k in batch))
        for key, pointer in zip(batch, pointers, strict=True):
            await store.set_pointer(key, cas.id_to_cid(pointer, "raw"))
        report(progress, Progress(start + len(batch), total))
    root = await store.flush()
    if on_commit is not None and store.last_commit is not None:
        on_commit(store.last_commit)
    return root
