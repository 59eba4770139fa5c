"""Listing a sharded store: the key map, then each index's chunks. An
index is walked only when a listing reaches inside its array."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from py_hamt.stores.sharded.layout import V1_GRID, ArrayIndex, Manifest

if TYPE_CHECKING:
    from py_hamt.stores.sharded.session import Session

__all__ = ["list_dir", "list_keys", "list_prefix"]


def _indexes(manifest: Manifest) -> list[tuple[str, str, ArrayIndex]]:
    """``(index key, array path, index)`` for every index whose array is known.

    A v1 grid with no known owner cannot name its chunks, so it is left out
    (as py-hamt 3.x listed only its key map)."""
    out = []
    for key, index in manifest.arrays.items():
        if key != V1_GRID:
            out.append((key, key, index))
        elif manifest.primary is not None and manifest.primary not in manifest.ambiguous:
            out.append((key, manifest.primary, index))
    return out


async def _chunk_keys(
    session: Session, key: str, path: str, index: ArrayIndex
) -> AsyncIterator[str]:
    async for linear, _ in session.entries(key, index):
        yield index.grid.chunk_key(path, index.grid.coords(linear))


async def list_keys(session: Session) -> AsyncIterator[str]:
    """Every key: the key map, then each index's chunks (each key once)."""
    manifest = await session.load_manifest()
    seen = set(manifest.metadata)
    for name in list(manifest.metadata):
        yield name
    for key, path, index in _indexes(manifest):
        async for name in _chunk_keys(session, key, path, index):
            if name not in seen:
                yield name


async def list_prefix(session: Session, prefix: str) -> AsyncIterator[str]:
    manifest = await session.load_manifest()
    seen: set[str] = set()
    for name in list(manifest.metadata):
        if name.startswith(prefix):
            seen.add(name)
            yield name
    for key, path, index in _indexes(manifest):
        base = f"{path}/c" if path else "c"
        if base.startswith(prefix) or prefix.startswith(base):
            async for name in _chunk_keys(session, key, path, index):
                if name.startswith(prefix) and name not in seen:
                    yield name


async def list_dir(session: Session, prefix: str) -> AsyncIterator[str]:
    """Names directly under ``prefix``. Above an array's chunk folder its
    index is only asked whether it holds any chunk."""
    manifest = await session.load_manifest()
    prefix = prefix.rstrip("/")
    lead = f"{prefix}/" if prefix else ""
    seen: set[str] = set()
    candidates = list(manifest.metadata)
    for key, path, index in _indexes(manifest):
        if not _has_chunks(session, key, index):
            continue
        base = f"{path}/c" if path else "c"
        if (base + "/").startswith(lead) and base + "/" != lead:
            candidates.append(base)  # the whole chunk tree sits under one name
        elif base.startswith(lead) or lead.startswith(base):
            candidates.extend([k async for k in _chunk_keys(session, key, path, index)])
    for name in candidates:
        if name.startswith(lead):
            head = name[len(lead) :].split("/", 1)[0]
            if head and head not in seen:
                seen.add(head)
                yield head


def _has_chunks(session: Session, key: str, index: ArrayIndex) -> bool:
    for shard_no, cid in enumerate(index.shard_cids):
        cached = session.cache.get((key, shard_no))
        if cached is not None:
            if any(e is not None for e in cached.entries):
                return True
        elif cid is not None:
            return True  # a written shard is never all nulls
    return False
