"""Which zarr keys live in a chunk index, and where.

The rules are py-hamt 3.6's, so that both implementations find every key in
the same place in either layout:

- ``zarr.json``, ``.zarray``, ``.zattrs`` and ``.zgroup`` keys are metadata.
- **v2**: ``<path>/c/<i>/<j>/...`` (or ``c/<i>/...`` for an array at the
  root) is a chunk of array ``<path>`` when the root has an index for that
  path and the coordinates fall inside its grid. Zarr v2 keys of an indexed
  array (``<path>/<i>.<j>`` and ``<path>/<i>/<j>``) are chunks too. Anything
  else is looked up in ``metadata``.
- **v1**: only the primary array's chunks are in the grid. Arrays named
  like coordinates (:data:`V1_COORDINATE_NAMES`) never are; ``c/...`` keys are
  only when the recorded primary is the root array. A root from before 3.6
  records no primary: when exactly one data array could own the grid it does;
  when several could, their chunks are :class:`AmbiguousLayoutError`.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from py_hamt.errors import AmbiguousLayoutError
from py_hamt.stores.sharded.grid import ChunkGrid
from py_hamt.stores.sharded.layout import V1_COORDINATE_NAMES, V1_GRID, ArrayIndex, Manifest

__all__ = ["METADATA_SUFFIXES", "Route", "array_path_of", "route", "split_chunk_key"]

METADATA_SUFFIXES: Final = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


class Route(NamedTuple):
    """An indexed chunk: the key of its index in ``Manifest.arrays``, the
    index, and the chunk's row-major position in it."""

    path: str
    array: ArrayIndex
    linear: int


def array_path_of(metadata_key: str) -> str | None:
    """The array or group path a ``zarr.json``/``.zarray`` key describes."""
    for name in ("zarr.json", ".zarray"):
        if metadata_key == name:
            return ""
        if metadata_key.endswith("/" + name):
            return metadata_key[: -len(name) - 1]
    return None


def split_chunk_key(key: str) -> tuple[str, list[str]] | None:
    """``(array path, coordinate parts)`` of a zarr v3 chunk key, else ``None``."""
    marker = key.rfind("/c/")
    if marker >= 0:
        return key[:marker].strip("/"), key[marker + 3 :].split("/")
    if key.startswith("c/"):
        return "", key[2:].split("/")
    return None


def _coords(parts: list[str], grid: ChunkGrid) -> int | None:
    if len(parts) != len(grid.shape) or not parts or not all(p.isdecimal() for p in parts):
        return None
    return grid.linear(tuple(int(p) for p in parts))


def route(manifest: Manifest, key: str, root: object = None) -> Route | None:
    """Where ``key`` lives: a :class:`Route` into a chunk index, or ``None``
    for the root's ``metadata`` map.

    Raises:
        AmbiguousLayoutError: a pre-3.6 v1 root cannot say which of several
            arrays owns the chunk (``root`` is named in the message).
    """
    if key.endswith(METADATA_SUFFIXES):
        return None
    if manifest.is_v1:
        return _route_v1(manifest, key, root)
    return _route_v2(manifest, key)


def _route_v2(manifest: Manifest, key: str) -> Route | None:
    arrays = manifest.arrays
    split = split_chunk_key(key)
    if split is not None:
        path, parts = split
        index = arrays.get(path)
        if index is not None and all(p.isdecimal() for p in parts):
            linear = _coords(parts, index.grid)
            return None if linear is None else Route(path, index, linear)
    # zarr v2 keys: "<path>/i.j.k", then "<path>/i/j/k" (longest path first).
    head, _, last = key.rpartition("/")
    if "." in last:
        index = arrays.get(head)
        if index is not None:
            linear = _coords(last.split("."), index.grid)
            return None if linear is None else Route(head, index, linear)
    for path in sorted(arrays, key=len, reverse=True):
        if path and not key.startswith(path + "/"):
            continue
        index = arrays[path]
        parts = key[len(path) + 1 :].split("/") if path else key.split("/")
        if len(parts) == len(index.grid.shape) and all(p.isdecimal() for p in parts):
            linear = _coords(parts, index.grid)
            return None if linear is None else Route(path, index, linear)
    return None


def _route_v1(manifest: Manifest, key: str, root: object) -> Route | None:
    split = split_chunk_key(key)
    if split is None:
        return None
    path, parts = split
    if key.startswith("c/") and not (manifest.primary_recorded and manifest.primary == ""):
        return None
    if path.rsplit("/", 1)[-1] in V1_COORDINATE_NAMES:
        return None
    if path in manifest.ambiguous:
        raise AmbiguousLayoutError(
            f"sharded_zarr_v1 root {root} records no primary array and "
            f"{len(manifest.ambiguous)} arrays ({', '.join(sorted(manifest.ambiguous))}) "
            f"could own its chunk grid: chunk {key!r} cannot be read without guessing",
            root,
        )
    if manifest.primary is not None and path != manifest.primary:
        return None
    index = manifest.arrays[V1_GRID]
    linear = _coords(parts, index.grid)
    return None if linear is None else Route(V1_GRID, index, linear)
