"""Sets waiting for nodes that are not in memory.

When a set's path runs into a node that is neither a draft nor cached, the
HAMT does not load that node for this one key. It records the set here and
applies it later, with every other set waiting under the same root slot,
sorted by hash: each node on the way is then loaded once for all of them
instead of once per key. This is what keeps a write of millions of keys from
reloading a node for every set once the tree no longer fits in memory.

Records are kept packed, one ``bytearray`` per root slot (the first byte of
the key's hash), so a waiting set costs its bytes plus an 8-byte header and
no Python object of its own.
"""

from __future__ import annotations

import struct

__all__ = ["PendingSets", "Record"]

Record = tuple[bytes, bytes, bytes]
"""A waiting set: the key's hash, the key's UTF-8 bytes, the encoded value id."""

_HEAD = struct.Struct("<IHH")  # key length, hash length, id length


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

    def add(self, h: bytes, kb: bytes, raw: bytes) -> None:
        """Record ``kb -> raw`` (hash ``h``) after the sets already waiting."""
        log = self.logs.get(h[0])
        if log is None:
            log = self.logs[h[0]] = bytearray()
        before = len(log)
        log += _HEAD.pack(len(kb), len(h), len(raw))
        log += h
        log += kb
        log += raw
        self.nbytes += len(log) - before
        self.count += 1

    def next_slot(self) -> int:
        """The lowest root slot with waiting sets (there must be one)."""
        return min(self.logs)

    def take(self, slot: int) -> list[Record]:
        """Remove and return the sets waiting under ``slot``, sorted by hash
        (sets of one key stay in the order they were made); ``[]`` if none."""
        log = self.logs.pop(slot, None)
        if log is None:
            return []
        records = _records(log)
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
        for h, kb, raw in records:
            self.add(h, kb, raw)
        if newer is not None:
            for h, kb, raw in _records(newer):
                self.add(h, kb, raw)

    def clear(self) -> None:
        self.logs.clear()
        self.nbytes = self.count = 0


def _by_hash(record: Record) -> bytes:
    return record[0]


def _records(log: bytearray) -> list[Record]:
    out: list[Record] = []
    view = memoryview(log)
    pos, end, head = 0, len(log), _HEAD.size
    unpack = _HEAD.unpack_from
    while pos < end:
        nk, nh, nr = unpack(log, pos)
        pos += head
        h = bytes(view[pos : pos + nh])
        pos += nh
        kb = bytes(view[pos : pos + nk])
        pos += nk
        out.append((h, kb, bytes(view[pos : pos + nr])))
        pos += nr
    view.release()
    return out
