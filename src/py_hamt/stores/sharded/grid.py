"""Chunk-grid geometry: row-major chunk indices, shards, and chunk keys."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from py_hamt.errors import InvalidArgumentError

__all__ = ["ChunkGrid", "grid_from_zarr_json"]


@dataclass(frozen=True)
class ChunkGrid:
    """A regular chunk grid and how it is cut into shards.

    A chunk's linear index is its row-major position in the grid of chunks;
    its shard is ``index // chunks_per_shard`` and its slot ``index % n``.
    """

    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    chunks_per_shard: int
    separator: str = "/"

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.chunk_shape):
            raise InvalidArgumentError(
                f"array_shape {self.shape} and chunk_shape {self.chunk_shape} differ in rank"
            )
        if any(c <= 0 for c in self.chunk_shape):
            raise InvalidArgumentError(f"chunk_shape must be positive, got {self.chunk_shape}")
        if any(s < 0 for s in self.shape):
            raise InvalidArgumentError(f"array_shape must not be negative, got {self.shape}")
        if self.chunks_per_shard <= 0:
            raise InvalidArgumentError(f"chunks_per_shard must be > 0, got {self.chunks_per_shard}")
        if self.separator not in ("/", "."):
            raise InvalidArgumentError(f"unsupported chunk key separator {self.separator!r}")

    @property
    def chunks_per_dim(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunk_shape, strict=True))

    @property
    def total_chunks(self) -> int:
        return math.prod(self.chunks_per_dim)

    @property
    def num_shards(self) -> int:
        return -(-self.total_chunks // self.chunks_per_shard)

    def linear(self, coords: tuple[int, ...]) -> int | None:
        """Row-major index of chunk ``coords``; ``None`` if outside the grid."""
        index = 0
        for c, n in zip(coords, self.chunks_per_dim, strict=True):
            if not 0 <= c < n:
                return None
            index = index * n + c
        return index

    def coords(self, index: int) -> tuple[int, ...]:
        """Inverse of :meth:`linear`."""
        out = []
        for n in reversed(self.chunks_per_dim):
            index, c = divmod(index, n)
            out.append(c)
        return tuple(reversed(out))

    def chunk_key(self, path: str, coords: tuple[int, ...]) -> str:
        """The zarr v3 default-encoding key of a chunk of array ``path``."""
        prefix = f"{path}/c" if path else "c"
        if not coords:
            return prefix
        return prefix + self.separator + self.separator.join(map(str, coords))

    def parse_coords(self, path: str, key: str) -> tuple[int, ...] | None:
        """Coordinates if ``key`` is a chunk key of array ``path``, else ``None``."""
        prefix = f"{path}/c" if path else "c"
        if not key.startswith(prefix):
            return None
        rest = key[len(prefix) :]
        if not rest:
            return () if not self.shape else None
        if rest[0] != self.separator:
            return None
        parts = rest[1:].split(self.separator)
        if len(parts) != len(self.shape) or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)

    def with_shape(self, shape: tuple[int, ...]) -> ChunkGrid:
        return ChunkGrid(tuple(shape), self.chunk_shape, self.chunks_per_shard, self.separator)


def grid_from_zarr_json(document: bytes, chunks_per_shard: int) -> ChunkGrid | None:
    """The chunk grid a zarr v3 array's ``zarr.json`` declares.

    ``None`` for groups, scalars, non-regular grids, key encodings other than
    the default with ``/``, and for anything that does not parse: such arrays keep their chunks in
    the store's plain key map, which is always correct, only not sharded.
    """
    try:
        meta: Any = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("node_type") != "array":
        return None
    try:
        grid = meta["chunk_grid"]
        if grid.get("name") != "regular":
            return None
        chunk_shape = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
        shape = tuple(int(s) for s in meta["shape"])
        encoding = meta.get("chunk_key_encoding", {"name": "default"})
        if encoding.get("name") != "default":
            return None
        if encoding.get("configuration", {}).get("separator", "/") != "/" or not shape:
            # py-hamt 3.6 finds only "<path>/c/i/j" keys in an index, so these
            # arrays' chunks stay in the key map where both can read them.
            return None
        return ChunkGrid(shape, chunk_shape, chunks_per_shard)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
