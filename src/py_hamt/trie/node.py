"""The in-memory form of a HAMT node.

A slot holds one of:

* ``None``: empty;
* a ``dict`` (a bucket): key -> value id, 1 to ``max_bucket_size`` entries;
* a :class:`Node`: a child held in memory (loaded, or buffered in write mode);
* a :class:`~py_hamt.codec.node.Link`: a child known only by its id.

A node is *clean* when ``saved_id`` is the id of its current content. Every
change marks the changed node and all its ancestors dirty, so a clean node
never has a dirty descendant; flushing relies on that.

``checked`` is the path (the slots taken from the root, one byte a level) at
which every bucket key was last found to hash to its place, or ``None`` when
not yet checked. Walks check each node once, lazily: a lookup needs no such
check, since it only ever finds a key along that key's own hash.
"""

from __future__ import annotations

from typing import TypeAlias

from py_hamt.codec.node import NODE_WIDTH, Bucket, Entry, Link, decode_node, encode_node
from py_hamt.errors import NotCommittedError

__all__ = ["Node", "Slot"]

Slot: TypeAlias = "Bucket | Node | Link | None"

# Rough encoded sizes, used only to estimate the bytes a dirty node holds.
_ID_ESTIMATE = 40
_KEY_OVERHEAD = 2
# CPython object sizes (64-bit), for Node.memory(): a Node with its 256-slot
# list, a small dict, a str header, a 34-byte id, a Link with its id.
_NODE_BASE = 72 + 56 + 8 * NODE_WIDTH
_DICT_BASE = 232
_STR_BASE = 49
_ID_MEMORY = 33 + 40
_LINK_MEMORY = 48 + _ID_MEMORY


class Node:
    """One HAMT node: 256 slots plus bookkeeping for flushing."""

    __slots__ = ("_memory", "checked", "nbytes", "saved_id", "slots", "version")

    def __init__(self, slots: list[Slot], saved_id: object = None, nbytes: int = 0) -> None:
        self.slots = slots
        self.saved_id = saved_id
        self.version = 0
        self.nbytes = nbytes
        self._memory = 0
        self.checked: bytes | None = None

    @classmethod
    def empty(cls) -> Node:
        return cls([None] * NODE_WIDTH)

    @classmethod
    def decode(cls, data: bytes, block_id: object, max_bucket_size: int | None = None) -> Node:
        """Decode a stored node; raises ``MalformedNodeError`` naming ``block_id``
        (see :func:`~py_hamt.codec.node.decode_node` for what is checked)."""
        entries: list[Slot] = decode_node(  # type: ignore[assignment]
            data, block_id, max_bucket_size=max_bucket_size
        )
        return cls(entries, saved_id=block_id, nbytes=len(data))

    def mark_dirty(self) -> None:
        self.saved_id = None
        self.version += 1
        self._memory = 0

    def encode(self) -> bytes:
        """Encode this node; every in-memory child must be clean."""
        entries: list[Entry] = []
        for e in self.slots:
            if type(e) is Node:
                if e.saved_id is None:
                    raise NotCommittedError("cannot encode a node whose child is not saved")
                entries.append(Link(e.saved_id))
            else:
                entries.append(e)  # type: ignore[arg-type]
        return encode_node(entries)

    def has_links(self) -> bool:
        return any(type(e) is Node or type(e) is Link for e in self.slots)

    def bucket_entries(self) -> list[tuple[str, object]]:
        """All (key, id) pairs held directly in this node's buckets."""
        return [kv for e in self.slots if type(e) is dict for kv in e.items()]

    def memory(self) -> int:
        """Estimated memory this node holds in CPython (the node, its slot
        list, buckets, keys and ids; not in-memory children). Cached once
        the node is clean."""
        if self.saved_id is not None and self._memory:
            return self._memory
        size = _NODE_BASE
        for e in self.slots:
            if e is None or type(e) is Node:
                continue
            if type(e) is dict:
                size += _DICT_BASE + sum(_STR_BASE + len(k) + _ID_MEMORY for k in e)
            else:
                size += _LINK_MEMORY
        if self.saved_id is not None:
            self._memory = size
        return size

    def estimated_bytes(self) -> int:
        """Encoded size if clean, otherwise an estimate."""
        if self.saved_id is not None and self.nbytes:
            return self.nbytes
        size = 3
        for e in self.slots:
            if e is None:
                size += 1
            elif type(e) is dict:
                size += 1 + sum(len(k) + _KEY_OVERHEAD + _ID_ESTIMATE for k in e)
            else:
                size += 1 + _ID_ESTIMATE
        return size

    def __eq__(self, other: object) -> bool:
        # Structural: equal slots, comparing in-memory children recursively.
        # A child held as a Node never equals one held as a Link.
        if not isinstance(other, Node):
            return NotImplemented
        return self is other or self.slots == other.slots

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        used = sum(e is not None for e in self.slots)
        state = "clean" if self.saved_id is not None else "dirty"
        return f"<Node {used}/256 slots used, {state}>"
