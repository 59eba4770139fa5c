"""Sharded store roots: reading ``sharded_zarr_v1`` and ``sharded_zarr_v2``,
writing ``sharded_zarr_v2``.

v1 (py-hamt 3.x) has one chunk grid for the whole store::

    {"manifest_version": "sharded_zarr_v1",
     "metadata": {key: CID},
     "chunks": {"array_shape": [...], "chunk_shape": [...],
                "sharding_config": {"chunks_per_shard": n},
                "shard_cids": [CID | null, ...]}}

and sends a key to that grid when it contains ``/c/``, does not end in
``.json`` and its array is not named time, lat, lon, latitude or longitude.
So two data variables share slots and overwrite each other's chunks.

v2 keeps the v1 fields (``chunks`` is the store-level grid given to
``open``) and adds one index per array, learned from the array's own
``zarr.json``::

    "arrays": {path: {"shape": [...], "chunk_shape": [...], "separator": "/",
                      "chunks_per_shard": n, "shard_cids": [CID | null, ...]}}

Every key that is not a chunk inside a known array's grid lives in
``metadata``, so the store answers every key exactly like a plain key-value
store, whatever the arrays are called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import dag_cbor
from multiformats import CID

from py_hamt.codec import dagcbor
from py_hamt.errors import MalformedNodeError, format_id, one_line
from py_hamt.stores.sharded.grid import ChunkGrid

__all__ = [
    "LEGACY",
    "MANIFEST_V1",
    "MANIFEST_V2",
    "V1_COORDINATE_NAMES",
    "ArrayIndex",
    "Manifest",
]

MANIFEST_V1: Final = "sharded_zarr_v1"
MANIFEST_V2: Final = "sharded_zarr_v2"
LEGACY: Final = "\x00v1-grid"
"""The key of a v1 store's single grid in :attr:`Manifest.arrays`."""
V1_COORDINATE_NAMES: Final = frozenset({"time", "lat", "lon", "latitude", "longitude"})


@dataclass
class ArrayIndex:
    """One array's chunk index: its grid and the CID of each shard."""

    grid: ChunkGrid
    shard_cids: list[CID | None]

    @classmethod
    def empty(cls, grid: ChunkGrid) -> ArrayIndex:
        return cls(grid, [None] * grid.num_shards)


@dataclass
class Manifest:
    """A root in memory. ``version`` is what was read; writing gives v2."""

    version: str
    grid: ChunkGrid
    metadata: dict[str, CID] = field(default_factory=dict)
    arrays: dict[str, ArrayIndex] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The v2 root block (canonical DAG-CBOR)."""
        g = self.grid
        root: dict[str, Any] = {
            "manifest_version": MANIFEST_V2,
            "metadata": dict(self.metadata),
            "chunks": {
                "array_shape": list(g.shape),
                "chunk_shape": list(g.chunk_shape),
                "sharding_config": {"chunks_per_shard": g.chunks_per_shard},
            },
            "arrays": {
                path: {
                    "shape": list(a.grid.shape),
                    "chunk_shape": list(a.grid.chunk_shape),
                    "separator": a.grid.separator,
                    "chunks_per_shard": a.grid.chunks_per_shard,
                    "shard_cids": list(a.shard_cids),
                }
                for path, a in self.arrays.items()
            },
        }
        return dag_cbor.encode(root)

    @classmethod
    def decode(cls, data: bytes, root_id: object) -> Manifest:
        """Parse a v1 or v2 root; ``MalformedNodeError`` naming ``root_id`` otherwise."""
        try:
            obj = dagcbor.decode(data)
            if not isinstance(obj, dict):
                raise ValueError("the root is not a map")
            version = obj.get("manifest_version")
            if version == MANIFEST_V1:
                return cls._decode_v1(obj)
            if version == MANIFEST_V2:
                return cls._decode_v2(obj)
            raise ValueError(
                f"unknown manifest_version {version!r} "
                f"(expected {MANIFEST_V1!r} or {MANIFEST_V2!r})"
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedNodeError(
                f"block {format_id(root_id)} is not a sharded Zarr root: {one_line(exc)}", root_id
            ) from exc

    @staticmethod
    def _metadata(obj: dict[str, Any]) -> dict[str, CID]:
        out: dict[str, CID] = {}
        for key, value in obj["metadata"].items():
            # py-hamt 3.x could leave a CID as text here; accept both.
            out[key] = value if isinstance(value, CID) else CID.decode(str(value))
        return out

    @staticmethod
    def _shards(value: Any, grid: ChunkGrid) -> list[CID | None]:
        if not isinstance(value, list) or any(
            v is not None and not isinstance(v, CID) for v in value
        ):
            raise ValueError("shard_cids must be a list of CIDs and nulls")
        if len(value) != grid.num_shards:
            raise ValueError(f"{len(value)} shard CIDs for a grid of {grid.num_shards} shards")
        return list(value)

    @staticmethod
    def _grid(shape: Any, chunk_shape: Any, per_shard: Any, separator: str = "/") -> ChunkGrid:
        return ChunkGrid(
            tuple(int(s) for s in shape),
            tuple(int(c) for c in chunk_shape),
            int(per_shard),
            separator,
        )

    @classmethod
    def _decode_v1(cls, obj: dict[str, Any]) -> Manifest:
        chunks = obj["chunks"]
        grid = cls._grid(
            chunks["array_shape"],
            chunks["chunk_shape"],
            chunks["sharding_config"]["chunks_per_shard"],
        )
        legacy = ArrayIndex(grid, cls._shards(chunks["shard_cids"], grid))
        return cls(MANIFEST_V1, grid, cls._metadata(obj), {LEGACY: legacy})

    @classmethod
    def _decode_v2(cls, obj: dict[str, Any]) -> Manifest:
        chunks = obj["chunks"]
        grid = cls._grid(
            chunks["array_shape"],
            chunks["chunk_shape"],
            chunks["sharding_config"]["chunks_per_shard"],
        )
        arrays: dict[str, ArrayIndex] = {}
        for path, a in obj["arrays"].items():
            g = cls._grid(a["shape"], a["chunk_shape"], a["chunks_per_shard"], a["separator"])
            arrays[path] = ArrayIndex(g, cls._shards(a["shard_cids"], g))
        return cls(MANIFEST_V2, grid, cls._metadata(obj), arrays)


def v1_chunk_coords(key: str, grid: ChunkGrid) -> tuple[int, ...] | None:
    """Where py-hamt 3.x put ``key``: grid coordinates, or ``None`` for its
    metadata map. Coordinates outside the grid are an error there; here they
    are simply not in the grid."""
    if key.endswith(".json"):
        return None
    marker = key.rfind("/c/")
    if marker < 0:
        return None
    name = key[:marker].rsplit("/", 1)[-1]
    if name in V1_COORDINATE_NAMES:
        return None
    parts = key[marker + 3 :].split("/")
    if len(parts) != len(grid.shape) or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)
