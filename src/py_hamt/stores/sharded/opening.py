"""Options of a new or reopened ShardedZarrStore, checked once, and the
root a new store starts from."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Final

from py_hamt.errors import InvalidArgumentError
from py_hamt.stores.sharded.grid import ChunkGrid
from py_hamt.stores.sharded.layout import MANIFEST_V1, MANIFEST_V2, V1_GRID, ArrayIndex, Manifest

__all__ = [
    "DEFAULT_MAX_CACHE_MEMORY_BYTES",
    "READ_MODES",
    "ShardedZarrV1DeprecationWarning",
    "new_manifest",
]

DEFAULT_MAX_CACHE_MEMORY_BYTES: Final = 100 * 2**20
READ_MODES: Final = ("full", "sparse", "auto")


class ShardedZarrV1DeprecationWarning(FutureWarning):
    """Emitted when a store writes ``sharded_zarr_v1`` (as py-hamt 3.6 does).
    Reading v1 roots stays supported and does not warn."""


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidArgumentError(f"{name} must be an int > 0, got {value!r}")
    return value


def new_manifest(
    manifest_version: str | None,
    array_shape: Sequence[int] | None,
    chunk_shape: Sequence[int] | None,
    chunks_per_shard: object,
    primary_array_path: str,
) -> Manifest:
    if manifest_version not in (None, MANIFEST_V1, MANIFEST_V2):
        raise InvalidArgumentError(
            f"manifest_version must be {MANIFEST_V1!r}, {MANIFEST_V2!r} or None, "
            f"got {manifest_version!r}"
        )
    if (array_shape is None) != (chunk_shape is None):
        raise InvalidArgumentError("array_shape and chunk_shape go together: give both or neither")
    per_shard = _positive_int(chunks_per_shard, "chunks_per_shard")
    primary = primary_array_path.strip("/")
    grid = None
    if array_shape is not None and chunk_shape is not None:
        grid = ChunkGrid(tuple(array_shape), tuple(chunk_shape), per_shard)
    if manifest_version == MANIFEST_V1:
        if grid is None:
            raise InvalidArgumentError(
                "a new sharded_zarr_v1 store needs array_shape and chunk_shape"
            )
        warnings.warn(
            "writing sharded_zarr_v1, which holds one gridded array; "
            "sharded_zarr_v2 (the default) keeps every array apart",
            ShardedZarrV1DeprecationWarning,
            stacklevel=4,
        )
        return Manifest(
            MANIFEST_V1,
            per_shard,
            arrays={V1_GRID: ArrayIndex.empty(grid)},
            primary=primary or None,
            primary_recorded=bool(primary),
        )
    arrays = {primary: ArrayIndex.empty(grid)} if grid is not None else {}
    return Manifest(MANIFEST_V2, per_shard, arrays=arrays)
