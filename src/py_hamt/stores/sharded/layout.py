"""Sharded store roots, in py-hamt 3.6's two layouts.

``sharded_zarr_v2`` keeps one chunk index per array (what this package writes
by default)::

    {"manifest_version": "sharded_zarr_v2",
     "store_type": "py_hamt.sharded_zarr",
     "zarr_format": 3,
     "sharding_config": {"chunks_per_shard": n, "order": "C"},
     "metadata": {key: CID},
     "arrays": {path: {"array_shape": [...], "chunk_shape": [...],
                       "sharding_config": {"chunks_per_shard": n, "order": "C"},
                       "shard_cids": [CID | null, ...]}}}

``sharded_zarr_v1`` has a single chunk grid; py-hamt 3.6 records which array
owns it in ``chunks.primary_array_path`` and keeps every other array's chunks
in ``metadata``. Roots written before 3.6 have no such field::

    {"manifest_version": "sharded_zarr_v1",
     "metadata": {key: CID},
     "chunks": {"array_shape": [...], "chunk_shape": [...],
                "sharding_config": {"chunks_per_shard": n},
                "shard_cids": [CID | null, ...],
                "primary_array_path": "t2m"}}

In both, a chunk's slot is its row-major index in the array's grid of chunks:
shard ``index // n``, entry ``index % n``.
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
    "MANIFEST_V1",
    "MANIFEST_V2",
    "STORE_TYPE",
    "V1_COORDINATE_NAMES",
    "V1_GRID",
    "ArrayIndex",
    "Manifest",
]

MANIFEST_V1: Final = "sharded_zarr_v1"
MANIFEST_V2: Final = "sharded_zarr_v2"
STORE_TYPE: Final = "py_hamt.sharded_zarr"
V1_GRID: Final = "\x00v1-grid"
"""The key of a v1 root's single grid in :attr:`Manifest.arrays` (never a zarr path)."""
V1_COORDINATE_NAMES: Final = frozenset(
    {"time", "lat", "lon", "latitude", "longitude", "forecast_reference_time", "step"}
)
"""Array names whose chunks py-hamt 3.x always kept in a v1 root's metadata."""


@dataclass
class ArrayIndex:
    """One array's chunk index: its grid and the CID of each shard."""

    grid: ChunkGrid
    shard_cids: list[CID | None]

    @classmethod
    def empty(cls, grid: ChunkGrid) -> ArrayIndex:
        return cls(grid, [None] * grid.num_shards)

    def encode(self) -> dict[str, Any]:
        return {
            "array_shape": list(self.grid.shape),
            "chunk_shape": list(self.grid.chunk_shape),
            "sharding_config": {"chunks_per_shard": self.grid.chunks_per_shard, "order": "C"},
            "shard_cids": list(self.shard_cids),
        }


@dataclass
class Manifest:
    """A root in memory.

    ``arrays`` maps array paths to indexes (v2), or holds the one grid of a
    v1 root under :data:`V1_GRID`. For v1, ``primary`` is the array that owns
    the grid: recorded in the root (``primary_recorded``), inferred for an
    older root, or ``None`` when unknown; ``ambiguous`` names the arrays whose
    chunks cannot be told apart on an older root's grid.
    """

    version: str
    chunks_per_shard: int
    metadata: dict[str, CID] = field(default_factory=dict)
    arrays: dict[str, ArrayIndex] = field(default_factory=dict)
    primary: str | None = None
    primary_recorded: bool = False
    ambiguous: frozenset[str] = frozenset()

    @property
    def is_v1(self) -> bool:
        return self.version == MANIFEST_V1

    @property
    def v1_index(self) -> ArrayIndex:
        return self.arrays[V1_GRID]

    def encode(self) -> bytes:
        """The root block (canonical DAG-CBOR) in this manifest's layout."""
        root: dict[str, Any]
        if self.is_v1:
            index = self.v1_index
            chunks: dict[str, Any] = {
                "array_shape": list(index.grid.shape),
                "chunk_shape": list(index.grid.chunk_shape),
                "sharding_config": {"chunks_per_shard": index.grid.chunks_per_shard},
                "shard_cids": list(index.shard_cids),
            }
            if self.primary_recorded and self.primary is not None:
                chunks["primary_array_path"] = self.primary
            root = {
                "manifest_version": MANIFEST_V1,
                "metadata": dict(self.metadata),
                "chunks": chunks,
            }
        else:
            root = {
                "manifest_version": MANIFEST_V2,
                "store_type": STORE_TYPE,
                "zarr_format": 3,
                "sharding_config": {"chunks_per_shard": self.chunks_per_shard, "order": "C"},
                "metadata": dict(self.metadata),
                "arrays": {path: a.encode() for path, a in self.arrays.items()},
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
        metadata = obj["metadata"]
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a map")
        out: dict[str, CID] = {}
        for key, value in metadata.items():
            if not isinstance(key, str):
                raise ValueError(f"metadata key {key!r} is not text")
            # py-hamt 3.x could leave a CID as text here; accept both.
            out[key] = value if isinstance(value, CID) else CID.decode(str(value))
        return out

    @staticmethod
    def _index(entry: dict[str, Any], per_shard: Any) -> ArrayIndex:
        if not isinstance(entry, dict):
            raise ValueError("an array index is not a map")
        if not isinstance(per_shard, int) or isinstance(per_shard, bool):
            raise ValueError(f"chunks_per_shard {per_shard!r} is not an integer")
        shape, chunks = entry["array_shape"], entry["chunk_shape"]
        if not isinstance(shape, list) or not isinstance(chunks, list):
            raise ValueError("array_shape and chunk_shape must be lists")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in shape + chunks):
            raise ValueError("array_shape and chunk_shape must hold integers")
        grid = ChunkGrid(tuple(shape), tuple(chunks), per_shard)
        shards = entry["shard_cids"]
        if not isinstance(shards, list) or any(
            v is not None and not isinstance(v, CID) for v in shards
        ):
            raise ValueError("shard_cids must be a list of CIDs and nulls")
        if len(shards) != grid.num_shards:
            raise ValueError(f"{len(shards)} shard CIDs for a grid of {grid.num_shards} shards")
        return ArrayIndex(grid, list(shards))

    @classmethod
    def _decode_v1(cls, obj: dict[str, Any]) -> Manifest:
        chunks = obj["chunks"]
        per_shard = chunks["sharding_config"]["chunks_per_shard"]
        index = cls._index(chunks, per_shard)
        recorded = chunks.get("primary_array_path")
        if recorded is not None and not isinstance(recorded, str):
            raise ValueError(f"primary_array_path {recorded!r} is not text")
        return cls(
            MANIFEST_V1,
            per_shard,
            cls._metadata(obj),
            {V1_GRID: index},
            primary=recorded.strip("/") if recorded is not None else None,
            primary_recorded=recorded is not None,
        )

    @classmethod
    def _decode_v2(cls, obj: dict[str, Any]) -> Manifest:
        arrays_obj = obj["arrays"]
        if not isinstance(arrays_obj, dict):
            raise ValueError("arrays is not a map")
        arrays: dict[str, ArrayIndex] = {}
        for path, entry in arrays_obj.items():
            if not isinstance(path, str) or not isinstance(entry, dict):
                raise ValueError("arrays must map text paths to maps")
            config = entry.get("sharding_config", {})
            if config.get("order", "C") != "C":
                raise ValueError(f"array {path!r}: only order 'C' is defined")
            try:
                arrays[path.strip("/")] = cls._index(entry, config["chunks_per_shard"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"array {path!r}: {one_line(exc)}") from exc
        config = obj.get("sharding_config") or {}
        per_shard = config.get("chunks_per_shard") if isinstance(config, dict) else None
        if per_shard is None and arrays:
            per_shard = next(iter(arrays.values())).grid.chunks_per_shard
        if not isinstance(per_shard, int) or per_shard <= 0:
            raise ValueError(f"sharding_config.chunks_per_shard {per_shard!r} is not positive")
        return cls(MANIFEST_V2, per_shard, cls._metadata(obj), arrays)
