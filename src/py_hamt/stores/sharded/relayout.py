"""Making an array's chunk index follow its grid when ``zarr.json`` changes.

Chunks always keep their keys: those inside the new grid go to its index,
any others to the root's key map, so every key reads the same before and
after. Growing or shrinking the leading dimension keeps the row-major
positions of surviving chunks, so only the tail changes; any other change
re-lays the index out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from py_hamt.codec.cids import cid_from_bytes
from py_hamt.stores.sharded.grid import ChunkGrid
from py_hamt.stores.sharded.layout import ArrayIndex, Manifest
from py_hamt.stores.sharded.routing import Route

if TYPE_CHECKING:
    from py_hamt.stores.sharded.session import Session

__all__ = ["adopt_grid", "chunk_pointers"]


async def adopt_grid(
    session: Session,
    manifest: Manifest,
    array_path: str,
    grid: ChunkGrid | None,
    *,
    index_key: str | None = None,
) -> None:
    """Make the index of ``array_path`` follow ``grid`` (``None``: no index).

    ``index_key`` is where the index sits in ``manifest.arrays`` when that is
    not the array's path (a v1 root's single grid).
    """
    key = array_path if index_key is None else index_key
    old = manifest.arrays.get(key)
    if old is not None and grid == old.grid:
        return
    if old is not None and grid is not None and _only_first_dim_changed(old.grid, grid):
        await _resize_along_first_dim(session, manifest, key, array_path, old, grid)
    else:
        pointers = await chunk_pointers(session, key, old) if old is not None else {}
        if old is not None:
            session.cache.drop_array(key)
            del manifest.arrays[key]
        if grid is not None:
            manifest.arrays[key] = ArrayIndex.empty(grid)
        for coords, raw in pointers.items():
            await _place(session, manifest, key, array_path, coords, raw)
    if grid is not None:
        await _absorb_from_key_map(session, manifest, key, array_path)
    session.dirty_root = True


def _only_first_dim_changed(old: ChunkGrid, new: ChunkGrid) -> bool:
    return (
        old.chunk_shape == new.chunk_shape
        and old.separator == new.separator
        and old.chunks_per_shard == new.chunks_per_shard
        and len(old.shape) == len(new.shape) >= 1
        and old.chunks_per_dim[1:] == new.chunks_per_dim[1:]
    )


async def _resize_along_first_dim(
    session: Session,
    manifest: Manifest,
    key: str,
    array_path: str,
    old: ArrayIndex,
    grid: ChunkGrid,
) -> None:
    if grid.total_chunks < old.grid.total_chunks:
        for linear in range(grid.total_chunks, old.grid.total_chunks):
            routed = Route(key, old, linear)
            raw = await session.read_slot(routed)
            if raw is not None:
                await session.write_slot(routed, None)
                name = old.grid.chunk_key(array_path, old.grid.coords(linear))
                manifest.metadata[name] = cid_from_bytes(raw)
        for shard_no in range(grid.num_shards, old.grid.num_shards):
            session.cache.drop((key, shard_no))
    shards = old.shard_cids[: grid.num_shards]
    shards += [None] * (grid.num_shards - len(shards))
    old.grid, old.shard_cids = grid, shards


async def chunk_pointers(
    session: Session, key: str, index: ArrayIndex
) -> dict[tuple[int, ...], bytes]:
    """Every chunk an index points at, by grid coordinates."""
    return {index.grid.coords(linear): raw async for linear, raw in session.entries(key, index)}


async def _place(
    session: Session,
    manifest: Manifest,
    key: str,
    array_path: str,
    coords: tuple[int, ...],
    raw: bytes,
) -> None:
    index = manifest.arrays.get(key)
    linear = index.grid.linear(coords) if index and len(coords) == len(index.grid.shape) else None
    if index is not None and linear is not None:
        await session.write_slot(Route(key, index, linear), raw)
    else:
        name = "/".join([f"{array_path}/c" if array_path else "c", *map(str, coords)])
        manifest.metadata[name] = cid_from_bytes(raw)
        session.dirty_root = True


async def _absorb_from_key_map(
    session: Session, manifest: Manifest, key: str, array_path: str
) -> None:
    """Move the array's chunks that sit in the key map into its index."""
    index = manifest.arrays[key]
    prefix = f"{array_path}/c" if array_path else "c"
    for name in [k for k in manifest.metadata if k.startswith(prefix)]:
        coords = index.grid.parse_coords(array_path, name)
        linear = index.grid.linear(coords) if coords is not None else None
        if linear is not None:
            cid = manifest.metadata.pop(name)
            await session.write_slot(Route(key, index, linear), bytes(cid))
            session.dirty_root = True
