"""A byte-bounded LRU of decoded shards, with dirty shards pinned."""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["Shard", "ShardCache", "shard_nbytes"]

_ENTRY = sys.getsizeof(b"x" * 36)  # a typical binary CID held in a shard


def shard_nbytes(entries: list[bytes | None]) -> int:
    """Memory a shard's list and its CIDs take (Python object sizes)."""
    return sys.getsizeof(entries) + sum(sys.getsizeof(e) for e in entries if e is not None)


@dataclass
class Shard:
    """A shard in memory: binary CIDs or ``None``, and whether it changed."""

    entries: list[bytes | None]
    dirty: bool = False
    version: int = 0
    nbytes: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.nbytes:
            self.nbytes = shard_nbytes(self.entries)

    def put(self, slot: int, raw: bytes | None) -> int:
        """Set one entry; returns the change in ``nbytes``."""
        old = self.entries[slot]
        self.entries[slot] = raw
        delta = (sys.getsizeof(raw) if raw is not None else 0) - (
            sys.getsizeof(old) if old is not None else 0
        )
        self.nbytes += delta
        self.dirty = True
        self.version += 1
        return delta


class ShardCache:
    """Shards by ``(array path, shard index)``, bounded by ``max_bytes``.

    Clean shards are evicted least recently used first. Dirty shards are the
    write buffer and are never evicted: :meth:`over_budget` tells the store
    to write them out, after which they are clean and can go.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._shards: OrderedDict[tuple[str, int], Shard] = OrderedDict()

    def get(self, key: tuple[str, int]) -> Shard | None:
        shard = self._shards.get(key)
        if shard is not None:
            self._shards.move_to_end(key)
        return shard

    def put(self, key: tuple[str, int], shard: Shard) -> Shard:
        """Insert ``shard`` unless one is already cached; return the cached one.

        Never evicts: the caller is about to use the shard. Call
        :meth:`evict` once done with it.
        """
        existing = self._shards.get(key)
        if existing is not None:
            return existing
        self._shards[key] = shard
        self.nbytes += shard.nbytes
        return shard

    def grew(self, delta: int) -> None:
        self.nbytes += delta

    def drop(self, key: tuple[str, int]) -> None:
        old = self._shards.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes

    def drop_array(self, path: str) -> list[tuple[int, Shard]]:
        """Remove and return every cached shard of one array."""
        taken = [(k[1], s) for k, s in self._shards.items() if k[0] == path]
        for index, _ in taken:
            self.drop((path, index))
        return taken

    def dirty(self) -> list[tuple[tuple[str, int], Shard]]:
        return [(k, s) for k, s in self._shards.items() if s.dirty]

    def evict(self) -> None:
        """Drop clean shards, oldest first, until within budget (if possible)."""
        if self.nbytes <= self.max_bytes:
            return
        for key in [k for k, s in self._shards.items() if not s.dirty]:
            self.drop(key)
            if self.nbytes <= self.max_bytes:
                return

    def over_budget(self) -> bool:
        return self.nbytes > self.max_bytes

    def clear(self) -> None:
        self._shards.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._shards)
