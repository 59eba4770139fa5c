"""A byte-bounded LRU of decoded shards, with dirty shards pinned."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from py_hamt.caching import LRUCache

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


def _shard_size(shard: Shard) -> int:
    return shard.nbytes


def _is_dirty(shard: Shard) -> bool:
    return shard.dirty


class ShardCache:
    """Shards by ``(array path, shard index)``, bounded by ``max_bytes``.

    Clean shards are evicted least recently used first. Dirty shards are the
    write buffer and are never evicted: :meth:`over_budget` tells the store
    to write them out, after which they are clean and can go.

    A thin wrapper of an unlocked :class:`~py_hamt.caching.LRUCache`: a
    session's cache is used from one event loop, and its get-then-put
    sequences are ordered by the session, not by a lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lru: LRUCache[tuple[str, int], Shard] = LRUCache(
            max_bytes, _shard_size, pinned=_is_dirty, locked=False
        )

    @property
    def max_bytes(self) -> int:
        return self._lru.max_bytes

    @property
    def nbytes(self) -> int:
        """The sum of the cached shards' ``nbytes``."""
        return self._lru.nbytes

    def get(self, key: tuple[str, int]) -> Shard | None:
        """The cached shard, now the most recently used; ``None`` if absent."""
        return self._lru.get(key)

    def put(self, key: tuple[str, int], shard: Shard) -> Shard:
        """Insert ``shard`` unless one is already cached; return the cached one.

        Never evicts: the caller is about to use the shard. Call
        :meth:`evict` once done with it.
        """
        existing = self._lru.get(key)
        if existing is not None:
            return existing
        self._lru.put(key, shard, evict=False)
        return shard

    def grew(self, delta: int) -> None:
        """A cached shard's ``nbytes`` changed by ``delta`` (``Shard.put``)."""
        self._lru.grew(delta)

    def drop(self, key: tuple[str, int]) -> None:
        """Forget one shard, dirty or not; nothing happens if it is absent."""
        self._lru.pop(key)

    def drop_array(self, path: str) -> list[tuple[int, Shard]]:
        """Remove and return every cached shard of one array."""
        taken = [(k[1], s) for k, s in self._lru.snapshot() if k[0] == path]
        for index, _ in taken:
            self._lru.pop((path, index))
        return taken

    def dirty(self) -> list[tuple[tuple[str, int], Shard]]:
        """The dirty shards, oldest first."""
        return [(k, s) for k, s in self._lru.snapshot() if s.dirty]

    def evict(self) -> None:
        """Drop clean shards, oldest first, until within budget (if possible)."""
        self._lru.evict()

    def over_budget(self) -> bool:
        return self._lru.nbytes > self._lru.max_bytes

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)
