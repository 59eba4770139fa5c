"""Whole-store edits: grafting another root in by pointer, resizing, and
removing folders."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from py_hamt.codec.cids import cid_from_bytes
from py_hamt.errors import InvalidArgumentError, KeyNotFoundError
from py_hamt.stores.sharded import relayout
from py_hamt.stores.sharded.layout import V1_GRID, ArrayIndex, Manifest
from py_hamt.stores.sharded.routing import Route

if TYPE_CHECKING:
    from py_hamt.stores.sharded.session import Session

__all__ = ["clear", "delete_dir", "graft", "resize_store", "resize_variable"]


def _index_of(manifest: Manifest, path: str) -> tuple[str, ArrayIndex] | None:
    """``(index key, index)`` of array ``path``, in either layout."""
    if manifest.is_v1:
        if manifest.primary == path and path not in manifest.ambiguous:
            return V1_GRID, manifest.v1_index
        return None
    index = manifest.arrays.get(path)
    return None if index is None else (path, index)


def _array_paths(manifest: Manifest) -> list[str]:
    if manifest.is_v1:
        return [] if manifest.primary is None else [manifest.primary]
    return list(manifest.arrays)


async def graft(
    target: Session,
    source: Session,
    chunk_offset: Sequence[int],
    *,
    source_array_path: str | None = None,
    target_array_path: str | None = None,
) -> dict[str, int]:
    """Point ``target``'s chunks at ``source``'s, shifted by ``chunk_offset``
    chunks. One named array, or every array both have with the offset's rank
    and the same chunk shape. Chunks that land outside the target's grid are
    kept in its key map under their keys. Returns chunks grafted per array.

    Raises:
        InvalidArgumentError: a named array is missing on either side, the
            offset's rank differs from it, or chunk shapes differ.
    """
    offset = tuple(int(o) for o in chunk_offset)
    theirs, mine = await source.load_manifest(), await target.load_manifest()
    if source_array_path is not None:
        pairs = [
            (source_array_path.strip("/"), (target_array_path or source_array_path).strip("/"))
        ]
    else:
        pairs = [(p, p) for p in _array_paths(theirs) if _index_of(mine, p) is not None]
    grafted: dict[str, int] = {}
    for src_path, dst_path in pairs:
        src, dst = _index_of(theirs, src_path), _index_of(mine, dst_path)
        if src is None or dst is None:
            missing = src_path if src is None else dst_path
            raise InvalidArgumentError(f"no chunk index for array {missing!r} to graft")
        (src_key, src_index), (dst_key, dst_index) = src, dst
        if len(src_index.grid.shape) != len(offset):
            if source_array_path is None:
                continue
            raise InvalidArgumentError(
                f"chunk_offset {offset} has rank {len(offset)}, array {src_path!r} "
                f"has {len(src_index.grid.shape)}"
            )
        if dst_index.grid.chunk_shape != src_index.grid.chunk_shape:
            raise InvalidArgumentError(
                f"array {src_path!r}: chunk shape {src_index.grid.chunk_shape} in "
                f"{source.root_cid} differs from {dst_index.grid.chunk_shape} here"
            )
        count = 0
        for key_coords, raw in (await relayout.chunk_pointers(source, src_key, src_index)).items():
            coords = tuple(c + o for c, o in zip(key_coords, offset, strict=True))
            linear = dst_index.grid.linear(coords)
            if linear is None:
                name = "/".join([f"{dst_path}/c" if dst_path else "c", *map(str, coords)])
                mine.metadata[name] = cid_from_bytes(raw)
                target.dirty_root = True
            else:
                await target.write_slot(Route(dst_key, dst_index, linear), raw)
            count += 1
        grafted[dst_path] = count
    return grafted


async def resize_store(
    session: Session, new_shape: Sequence[int], *, array_path: str | None = None
) -> list[str]:
    """Resize chunk indexes (not ``zarr.json``: see :func:`resize_variable`).

    ``array_path`` names one array. Without it: a v1 root's grid, or in v2
    every array with the shape of the largest array (the main grid that the
    data variables share). Returns the arrays resized.

    Raises:
        InvalidArgumentError: the rank differs, or there is no such array.
    """
    manifest = await session.load_manifest()
    shape = tuple(int(s) for s in new_shape)
    if array_path is not None:
        targets = [array_path.strip("/")]
    elif manifest.is_v1:
        targets = [manifest.primary or ""]
    else:
        main = max(
            manifest.arrays.items(),
            key=lambda item: (item[1].grid.total_chunks, item[0]),
            default=None,
        )
        if main is None:
            raise InvalidArgumentError("the store has no array to resize")
        targets = [p for p, a in manifest.arrays.items() if a.grid.shape == main[1].grid.shape]
    for path in targets:
        found = (V1_GRID, manifest.v1_index) if manifest.is_v1 else _index_of(manifest, path)
        if found is None:
            raise InvalidArgumentError(f"no chunk index for array {path!r} to resize")
        key, index = found
        if len(shape) != len(index.grid.shape):
            raise InvalidArgumentError(
                f"new shape {shape} has {len(shape)} dimensions, array {path!r} has "
                f"{len(index.grid.shape)}"
            )
        await relayout.adopt_grid(
            session, manifest, path, index.grid.with_shape(shape), index_key=key
        )
    session.dirty_root = True
    return targets


async def resize_variable(session: Session, name: str, new_shape: Sequence[int]) -> None:
    """Rewrite ``<name>/zarr.json`` with ``shape = new_shape`` (its index
    follows), and the variable's entry in every enclosing group's
    consolidated metadata, so readers that open through it see the new shape.

    Raises:
        KeyNotFoundError: the variable has no ``zarr.json`` here.
    """
    manifest = await session.load_manifest()
    name = name.strip("/")
    key = f"{name}/zarr.json" if name else "zarr.json"
    if key not in manifest.metadata:
        raise KeyNotFoundError(key)
    shape = [int(s) for s in new_shape]

    def own(document: dict[str, Any]) -> bool:
        document["shape"] = shape
        return True

    await _rewrite_document(session, key, own)
    parts = name.split("/")
    for depth in range(len(parts)):
        group = "/".join(parts[:depth])
        member = "/".join(parts[depth:])

        def consolidated(document: dict[str, Any], member: str = member) -> bool:
            entries = (document.get("consolidated_metadata") or {}).get("metadata") or {}
            if not isinstance(entries.get(member), dict):
                return False
            entries[member]["shape"] = shape
            return True

        group_key = f"{group}/zarr.json" if group else "zarr.json"
        if group_key in manifest.metadata:
            await _rewrite_document(session, group_key, consolidated)


async def _rewrite_document(
    session: Session, key: str, edit: Callable[[dict[str, Any]], bool]
) -> None:
    manifest = await session.load_manifest()
    cas = session.cas
    document = json.loads(await cas.load(cas.cid_to_id(manifest.metadata[key])))
    if not edit(document):
        return
    data = json.dumps(document, indent=2).encode()
    await session.put(key, cas.id_to_cid(await cas.save(data, "raw"), "raw"), data)


async def delete_dir(session: Session, prefix: str) -> None:
    """Remove every key under ``prefix`` and the indexes of arrays there;
    ``""`` clears the store."""
    manifest = await session.load_manifest()
    prefix = prefix.strip("/")
    if not prefix:
        await clear(session)
        return
    for name in [k for k in manifest.metadata if k.startswith(prefix + "/")]:
        del manifest.metadata[name]
        session.documents.pop(name)
    for path in _array_paths(manifest):
        if path == prefix or path.startswith(prefix + "/"):
            _drop_index(session, manifest, path)
    session.dirty_root = True


async def clear(session: Session) -> None:
    """Remove every key. A v1 store keeps its (now empty) grid and owner."""
    manifest = await session.load_manifest()
    manifest.metadata.clear()
    session.documents.clear()
    for path in _array_paths(manifest):
        _drop_index(session, manifest, path)
    session.dirty_root = True


def _drop_index(session: Session, manifest: Manifest, path: str) -> None:
    if manifest.is_v1:
        index = manifest.v1_index
        index.shard_cids = [None] * len(index.shard_cids)
        session.cache.drop_array(V1_GRID)
    else:
        manifest.arrays.pop(path, None)
        session.cache.drop_array(path)
