"""Sets waiting for nodes that are not in memory.

When a set's path runs into a node that is neither a draft nor cached, the
HAMT does not load that node for this one key. It records the set here and
applies it later, with every other set waiting under the same root slot,
sorted by hash: each node on the way is then loaded once for all of them
instead of once per key. This is what keeps a write of millions of keys from
reloading a node for every set once the tree no longer fits in memory.

Records are kept packed, one ``bytearray`` per root slot (the first byte of
the key's hash), so a waiting set costs the key's and the id's bytes plus a
6-byte header, and no Python object of its own. The hash is not kept: it is
computed again when the slot is applied (under a microsecond a key), which
lets a bounded buffer hold about a third more waiting sets, and so rewrite
the tree a third less often.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = ["PendingSets", "Record"]

Record = tuple[bytes, bytes, bytes]
"""A waiting set: the key's hash, the key's UTF-8 bytes, the encoded value id."""

_HEAD = struct.Struct("<IH")  # key length, id length


class PendingSets:
    """Waiting sets grouped by root slot, in the order they were made.

    ``nbytes`` counts the records' packed bytes (what they hold beyond the
    256 ``bytearray`` objects at most). The order of two sets of one key is
    kept: :meth:`take` sorts stably, so the later one is applied last.
    """

    __slots__ = ("count", "logs", "nbytes")

    def __init__(self) -> None:
        self.logs: dict[int, bytearray] = {}
        self.nbytes = 0
        self.count = 0

    def add(self, slot: int, kb: bytes, raw: bytes) -> None:
        """Record ``kb -> raw`` under root ``slot`` (the first byte of the
        key's hash) after the sets already waiting."""
        log = self.logs.get(slot)
        if log is None:
            log = self.logs[slot] = bytearray()
        before = len(log)
        log += _HEAD.pack(len(kb), len(raw))
        log += kb
        log += raw
        self.nbytes += len(log) - before
        self.count += 1

    def next_slot(self) -> int:
        """The lowest root slot with waiting sets (there must be one)."""
        return min(self.logs)

    def take(self, slot: int, hash_key: Callable[[bytes], bytes]) -> list[Record]:
        """Remove and return the sets waiting under ``slot``, with their keys'
        hashes (``hash_key``), sorted by hash (sets of one key stay in the
        order they were made); ``[]`` if none."""
        log = self.logs.pop(slot, None)
        if log is None:
            return []
        records = [(hash_key(kb), kb, raw) for kb, raw in _records(log)]
        self.nbytes -= len(log)
        self.count -= len(records)
        records.sort(key=_by_hash)
        return records

    def put_back(self, slot: int, records: list[Record]) -> None:
        """Return ``records`` (taken from ``slot`` and not applied) ahead of
        any set made under ``slot`` since, so no set and no order is lost."""
        if not records:
            return
        newer = self.logs.pop(slot, None)
        if newer is not None:
            self.nbytes -= len(newer)
            self.count -= len(_records(newer))
        for _, kb, raw in records:
            self.add(slot, kb, raw)
        if newer is not None:
            for kb, raw in _records(newer):
                self.add(slot, kb, raw)


def _by_hash(record: Record) -> bytes:
    return record[0]


def _records(log: bytearray) -> list[tuple[bytes, bytes]]:
    """The (key bytes, id bytes) pairs packed in ``log``, in order."""
    out: list[tuple[bytes, bytes]] = []
    view = memoryview(log)
    pos, end, head = 0, len(log), _HEAD.size
    unpack = _HEAD.unpack_from
    while pos < end:
        nk, nr = unpack(log, pos)
        pos += head
        kb = bytes(view[pos : pos + nk])
        pos += nk
        out.append((kb, bytes(view[pos : pos + nr])))
        pos += nr
    view.release()
    return out
