"""``sharded_zarr_v1``: which array owns the single grid, the rules for
writing one, and the migration to v2."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from multiformats import CID

from py_hamt.errors import InvalidArgumentError
from py_hamt.stores.sharded import relayout
from py_hamt.stores.sharded.grid import ChunkGrid
from py_hamt.stores.sharded.layout import (
    MANIFEST_V1,
    MANIFEST_V2,
    V1_COORDINATE_NAMES,
    V1_GRID,
    Manifest,
)
from py_hamt.stores.sharded.routing import array_path_of, split_chunk_key

if TYPE_CHECKING:
    from py_hamt.stores.sharded.session import Session

__all__ = ["claim_grid", "infer_primary", "migrate_v1_to_v2", "record_primary"]

_GROUP_DOC = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


def _is_coordinate(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in V1_COORDINATE_NAMES


def _array_rank(document: bytes) -> int | None:
    """Rank of the array a metadata document declares; ``None`` for groups
    and for anything that is not an array document."""
    try:
        meta: Any = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("node_type") == "group":
        return None
    shape = meta.get("shape")
    return len(shape) if isinstance(shape, list) else None


async def infer_primary(session: Session, manifest: Manifest) -> None:
    """For a v1 root that records no primary array (written before py-hamt
    3.6): the one data array whose rank matches the grid owns it. With
    several such arrays the root cannot tell their chunks apart, and reads
    of them raise instead of guessing. A metadata block that cannot be
    loaded fails the open: it is never taken as "no array"."""
    if not manifest.is_v1 or manifest.primary_recorded:
        return
    rank = len(manifest.v1_index.grid.shape)
    paths: list[tuple[str, CID]] = []
    for key, cid in manifest.metadata.items():
        path = array_path_of(key)
        if path is not None and not _is_coordinate(path):
            paths.append((path, cid))
    documents = await asyncio.gather(
        *(session.cas.load(session.cas.cid_to_id(cid)) for _, cid in paths)
    )
    owners = sorted(
        {path for (path, _), doc in zip(paths, documents, strict=True) if _array_rank(doc) == rank}
    )
    if len(owners) == 1:
        manifest.primary = owners[0]
    elif len(owners) > 1:
        manifest.ambiguous = frozenset(owners)


def record_primary(manifest: Manifest, chunk_key: str) -> None:
    """A chunk written to a v1 grid with no owner yet makes its array the
    owner, recorded in the root as py-hamt 3.6 does."""
    split = split_chunk_key(chunk_key)
    if split is not None:
        manifest.primary, manifest.primary_recorded = split[0], True


async def claim_grid(
    session: Session,
    manifest: Manifest,
    path: str,
    grid: ChunkGrid | None,
    document: bytes,
) -> None:
    """An array's ``zarr.json`` written to a v1 store: the first data array
    owns the grid (which follows its shape); coordinates and scalars live in
    the key map, as every v1 reader expects.

    Raises:
        InvalidArgumentError: a second data array, or one whose chunks no v1
            grid can hold. Readers older than py-hamt 3.6 would read its
            chunks from the other array's grid, so it is refused.
    """
    rank = _array_rank(document)
    if _is_coordinate(path) or not rank:
        return
    owner = manifest.primary
    if grid is None or (owner is not None and owner != path):
        raise InvalidArgumentError(
            f"a sharded_zarr_v1 store holds one gridded array "
            f"({owner!r}); array {path!r} needs manifest_version='{MANIFEST_V2}'"
            if grid is not None
            else f"array {path!r} has a chunk layout a sharded_zarr_v1 grid cannot hold"
        )
    manifest.primary, manifest.primary_recorded = path, True
    await relayout.adopt_grid(session, manifest, path, grid, index_key=V1_GRID)


def _source_path(metadata: dict[str, CID], primary: str) -> str:
    leaf = primary.rsplit("/", 1)[-1]
    for candidate in dict.fromkeys([primary, leaf, ""]):
        names = (
            ("zarr.json", ".zarray")
            if not candidate
            else (
                f"{candidate}/zarr.json",
                f"{candidate}/.zarray",
            )
        )
        if any(name in metadata for name in names):
            return candidate
    return leaf


def _moved_key(key: str, source: str, primary: str) -> str:
    parent = primary.rsplit("/", 1)[0] if "/" in primary else ""
    if source and key.startswith(source + "/"):
        return f"{primary}/{key[len(source) + 1 :]}"
    if not source and (key.startswith("c/") or key in ("zarr.json", ".zarray")):
        return f"{primary}/{key}"
    if parent and "/" in key and not key.startswith(parent + "/"):
        return f"{parent}/{key}"
    return key


async def migrate_v1_to_v2(session: Session, primary_array_path: str) -> CID:
    """Rewrite a v1 root as v2, its grid becoming the index of
    ``primary_array_path``; py-hamt 3.6's ``migrate_v1_to_v2``.

    The shards are reused as they are. The grid's array moves under
    ``primary_array_path`` (with its group's other keys), missing group
    documents are added, and consolidated metadata of those groups is
    dropped when keys moved (it would name the old paths). Returns the new
    root, committed.

    Raises:
        InvalidArgumentError: an empty path, or a root that is not v1.
    """
    primary = primary_array_path.strip("/")
    if not primary:
        raise InvalidArgumentError("primary_array_path must name an array, got ''")
    manifest = await session.load_manifest()
    if manifest.version != MANIFEST_V1:
        raise InvalidArgumentError(
            f"only sharded_zarr_v1 roots can be migrated; {session.root_cid} is {manifest.version}"
        )
    await session.commit()
    source = _source_path(manifest.metadata, primary)
    metadata = {_moved_key(k, source, primary): cid for k, cid in manifest.metadata.items()}
    moved = metadata.keys() != manifest.metadata.keys()
    parts = primary.split("/")
    for depth in range(len(parts)):
        group = "/".join(parts[:depth])
        name = f"{group}/zarr.json" if group else "zarr.json"
        if name not in metadata:
            cid = session.cas.id_to_cid(await session.cas.save(_GROUP_DOC, "raw"), "raw")
            metadata[name] = cid
        elif moved:
            metadata[name] = await _without_consolidated(session, metadata[name])
    index = manifest.arrays.pop(V1_GRID)
    session.cache.drop_array(V1_GRID)
    session.manifest = Manifest(
        MANIFEST_V2, index.grid.chunks_per_shard, metadata, {primary: index}
    )
    session.documents.clear()
    session.dirty_root = True
    return await session.commit()


async def _without_consolidated(session: Session, cid: CID) -> CID:
    cas = session.cas
    try:
        document = json.loads(await cas.load(cas.cid_to_id(cid)))
    except (ValueError, UnicodeDecodeError):
        return cid
    if not isinstance(document, dict) or "consolidated_metadata" not in document:
        return cid
    document.pop("consolidated_metadata")
    return cas.id_to_cid(await cas.save(json.dumps(document, indent=2).encode(), "raw"), "raw")
