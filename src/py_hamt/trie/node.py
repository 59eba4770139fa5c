"""The two in-memory forms of a HAMT node.

* :class:`Node`: a node as stored, clean and immutable. It keeps only its
  packed entries (see :mod:`py_hamt.codec.packed_node`) and its own raw id,
  so it costs about its encoded size, and one cached node may be shared by
  every reader, and by a writer, safely.
* :class:`Draft`: a node being changed (write mode). Its 256 ``slots`` each
  hold ``None`` (empty), ``bytes`` (an encoded entry: a bucket map, or a link
  ``0x81 + raw id``) or a :class:`Draft` (a changed child). A draft is dirty
  by definition; committing encodes it, writes it and freezes it back into a
  :class:`Node`.

Every change to a draft's slots goes through :meth:`Draft.put`, which bumps
``version``; a commit that encoded version ``v`` keeps the result only if
the draft is still at ``v`` once the write returns.

``checked`` is the path (the slots taken from the root, one byte a level) at
which every bucket key was last found to hash to its place, or ``None`` when
not yet checked. Walks check each node once, lazily: a lookup needs no such
check, since it only ever finds a key along that key's own hash.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from itertools import accumulate

from py_hamt.codec.node import NODE_WIDTH
from py_hamt.codec.packed_node import (
    EMPTY_ENTRY,
    LINK_HEAD,
    NODE_HEAD,
    Pair,
    bucket_pairs,
    bucket_size,
    decode_id,
    entry_at,
    make_offsets,
    node_contents,
    positions,
    scan_node,
)
from py_hamt.errors import MalformedNodeError, NotCommittedError, format_id

__all__ = [
    "MAX_VIEWS",
    "PROMOTE_AFTER",
    "VIEW_DEPTH",
    "Draft",
    "Frozen",
    "Node",
    "View",
    "invalid_node",
    "node_id",
    "node_name",
    "raw_name",
    "raw_to_id",
]

Frozen = tuple[int, list[bytes]]
"""A draft's bitmap and non-empty entries, as encoded."""

_OBJECT_SIZES: dict[type, int] = {}


View = list["bytes | dict[bytes, bytes] | None"]
"""A hot node decoded: per slot, a link's raw id, a bucket as
``{key bytes: raw id}``, or ``None``."""

PROMOTE_AFTER = 8
"""Lookups through a node's packed form before it gets a decoded view."""
VIEW_DEPTH = 2
"""Only nodes this close to the root (the root and its children) get views:
every lookup passes through them, while a leaf of a large trie is seldom
hit twice, so decoding it whole would be wasted. At most 257 nodes a HAMT."""
_DEMOTED = -8 * PROMOTE_AFTER
"""Where a node's count restarts when its view is dropped: a node that lost
its view to hotter ones needs many more lookups to earn one again, so a
large trie does not churn views."""
MAX_VIEWS = 512
"""Nodes holding a decoded view at once (process-wide, oldest dropped first)."""


class Node:
    """A clean node: its raw id (the CBOR encoding of its id, as its parent
    holds it) and its packed entries. Immutable apart from ``checked`` and
    the lookup accelerator ``hot``: the number of lookups through the node
    (an int), or once it has earned one, its decoded :data:`View` (a list;
    one slot for both keeps every cached node 8 bytes smaller).

    A node of the first :data:`VIEW_DEPTH` levels (every node of a small
    HAMT) gets a decoded :data:`View` after :data:`PROMOTE_AFTER` lookups,
    so the part of the path every lookup takes skips the byte decoding. At
    most :data:`MAX_VIEWS` nodes hold one (a few MB at most); the rest of a
    large trie stays packed.
    """

    __slots__ = ("bitmap", "checked", "hot", "offsets", "packed", "raw_id")

    def __init__(self, raw_id: bytes, bitmap: int, packed: bytes, offsets: bytes) -> None:
        self.raw_id = raw_id
        self.bitmap = bitmap
        self.packed = packed
        self.offsets = offsets
        self.checked: bytes | None = None
        self.hot: int | View = 0

    def promote(self) -> View:
        """Give this node a decoded view (see the class docstring);
        ``ValueError`` if a bucket is malformed (then no view is kept)."""
        view: View = [None] * NODE_WIDTH
        for slot, entry in self.entries():
            if entry[0] == LINK_HEAD:
                view[slot] = entry[1:]
            else:
                view[slot] = dict(bucket_pairs(entry))
        _VIEWS.keep(self, view)
        return view

    def check_buckets(self) -> None:
        """Decode every bucket once: keys UTF-8 text in canonical order (what
        loading leaves to the decoding of each bucket). A writer calls this
        before it copies a node's entries into a draft, so that it never
        writes a bucket it has not checked. ``MalformedNodeError`` names the
        node."""
        try:
            node_contents(self.bitmap, self.packed, self.offsets)
        except (ValueError, IndexError) as exc:
            raise invalid_node(self, exc) from exc

    @classmethod
    def decode(cls, data: bytes, block_id: object, raw_id: bytes, max_bucket_size: int) -> Node:
        """Check and pack a stored node; ``MalformedNodeError`` names ``block_id``."""
        bitmap, packed, offsets = scan_node(data, block_id, max_bucket_size)
        return cls(raw_id, bitmap, packed, offsets)

    @property
    def id(self) -> object:
        """The node's id, as the store gave it."""
        return decode_id(self.raw_id)

    def entry(self, slot: int) -> bytes | None:
        """Slot ``slot``'s encoded entry, or ``None`` when it is empty."""
        bitmap = self.bitmap
        if not (bitmap >> slot) & 1:
            return None
        return entry_at(self.packed, self.offsets, (bitmap & ((1 << slot) - 1)).bit_count())

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """``(slot, encoded entry)`` for every non-empty slot, in slot order."""
        bitmap = self.bitmap
        packed = self.packed
        o = positions(packed, self.offsets)
        rank = 0
        while bitmap:
            low = bitmap & -bitmap
            yield low.bit_length() - 1, packed[o[rank] : o[rank + 1]]
            bitmap ^= low
            rank += 1

    def used(self) -> int:
        """How many slots are not empty."""
        return self.bitmap.bit_count()

    def nbytes(self) -> int:
        """The encoded size: the array head, one byte per empty slot, the entries."""
        return len(NODE_HEAD) + NODE_WIDTH - self.used() + len(self.packed)

    def encode(self) -> bytes:
        """The stored bytes again (canonical: the bytes the id names)."""
        parts = [NODE_HEAD]
        previous = -1
        for slot, entry in self.entries():
            parts.append(EMPTY_ENTRY * (slot - previous - 1))
            parts.append(entry)
            previous = slot
        parts.append(EMPTY_ENTRY * (NODE_WIDTH - previous - 1))
        return b"".join(parts)

    def memory(self) -> int:
        """Bytes of memory this node holds in CPython: the object, its packed
        entries, offsets, bitmap and raw id (exact ``sys.getsizeof`` sizes)."""
        return (
            _object_size(self)
            + sys.getsizeof(self.packed)
            + sys.getsizeof(self.offsets)
            + sys.getsizeof(self.bitmap)
            + sys.getsizeof(self.raw_id)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return self.raw_id == other.raw_id

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Node {self.used()}/256 slots used, {len(self.packed)} bytes of entries>"


class Draft:
    """A node being changed: its used slots, each an encoded entry or a
    draft child, in a dict by slot number (an unused slot is absent).

    A dict of the used slots rather than a list of all 256: a leaf of a
    large HAMT uses a few dozen, so a draft is a third of the size, and the
    garbage collector, which walks every container it tracks, has a few
    dozen references to visit per draft instead of 256.

    ``kids`` is the set of slots holding drafts (changed children), kept by
    :meth:`put`, so a commit finds them without scanning the slots.
    """

    __slots__ = ("bitmap", "checked", "held", "kids", "slots", "version")

    def __init__(self, slots: dict[int, bytes | Draft]) -> None:
        self.slots = slots
        self.version = 0
        self.checked: bytes | None = None
        self.kids = {i for i, e in slots.items() if type(e) is Draft}
        self.bitmap = sum(_BIT[i] for i in slots)
        self.held = (
            _DRAFT_BASE
            + sys.getsizeof(slots)
            + sum(len(e) + _BYTES_HEADER for e in slots.values() if type(e) is bytes)
        )

    @classmethod
    def empty(cls) -> Draft:
        return cls._make({}, 0, 0)

    @classmethod
    def _make(cls, slots: dict[int, bytes | Draft], bitmap: int, held: int) -> Draft:
        draft = cls.__new__(cls)
        draft.slots = slots
        draft.version = 0
        draft.checked = None
        draft.kids = set()
        draft.bitmap = bitmap
        draft.held = _DRAFT_BASE + sys.getsizeof(slots) + held
        return draft

    @classmethod
    def thaw(cls, node: Node) -> Draft:
        """A draft holding ``node``'s entries (the node itself is unchanged)."""
        slots: dict[int, bytes | Draft] = {}
        bitmap, packed = node.bitmap, node.packed
        o = positions(packed, node.offsets)
        rank = 0
        while bitmap:
            low = bitmap & -bitmap
            slots[low.bit_length() - 1] = packed[o[rank] : o[rank + 1]]
            bitmap ^= low
            rank += 1
        draft = cls._make(slots, node.bitmap, len(packed) + rank * _BYTES_HEADER)
        draft.checked = node.checked
        return draft

    def put(self, slot: int, value: bytes | Draft | None) -> int:
        """Set one slot (``None`` empties it); returns the change in :attr:`held`."""
        slots = self.slots
        old = slots.get(slot)
        delta = 0
        if value is None:
            if old is not None:
                del slots[slot]  # a dict keeps its table: its size is unchanged
            self.bitmap &= ~_BIT[slot]
        elif old is None:
            before = sys.getsizeof(slots)
            slots[slot] = value
            delta = sys.getsizeof(slots) - before
            self.bitmap |= _BIT[slot]
        else:
            slots[slot] = value
        self.version += 1
        if type(value) is Draft:
            self.kids.add(slot)
        elif type(old) is Draft:
            self.kids.discard(slot)
        delta += (len(value) + _BYTES_HEADER if type(value) is bytes else 0) - (
            len(old) + _BYTES_HEADER if type(old) is bytes else 0
        )
        self.held += delta
        return delta

    def memory(self) -> int:
        """Bytes of memory this draft holds (itself, its slot dict and its
        encoded entries; not its draft children)."""
        return self.held

    def has_links(self) -> bool:
        return bool(self.kids) or any(
            type(e) is bytes and e[0] == LINK_HEAD for e in self.slots.values()
        )

    def key_count(self) -> int:
        """Keys held directly in this draft's buckets."""
        return sum(
            bucket_size(e) for e in self.slots.values() if type(e) is bytes and e[0] != LINK_HEAD
        )

    def pairs(self) -> list[Pair]:
        """Every ``(key bytes, raw id)`` held directly in this draft's
        buckets, in slot order."""
        return [
            p
            for _, e in sorted(self.slots.items())
            if type(e) is bytes and e[0] != LINK_HEAD
            for p in bucket_pairs(e)
        ]

    def encode(self) -> tuple[bytes, Frozen]:
        """The encoded node, and what :meth:`freeze` needs to make the clean
        node for exactly that encoding; every child must have been written
        (no draft in a slot)."""
        if self.kids:
            raise NotCommittedError("cannot encode a node whose child is not saved")
        slots = self.slots
        bitmap = bits = self.bitmap
        parts: list[bytes] = []
        out = [NODE_HEAD]
        previous = -1
        while bits:
            low = bits & -bits
            slot = low.bit_length() - 1
            entry: bytes = slots[slot]  # type: ignore[assignment]
            if slot - previous > 1:
                out.append(EMPTY_ENTRY * (slot - previous - 1))
            out.append(entry)
            parts.append(entry)
            previous = slot
            bits ^= low
        out.append(EMPTY_ENTRY * (NODE_WIDTH - 1 - previous))
        return b"".join(out), (bitmap, parts)

    @staticmethod
    def freeze(raw_id: bytes, frozen: Frozen) -> Node:
        """The clean :class:`Node` for what :meth:`encode` returned."""
        bitmap, parts = frozen
        offsets = make_offsets(positions=list(accumulate(map(len, parts), initial=0)))
        return Node(raw_id, bitmap, b"".join(parts), offsets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Draft):
            return NotImplemented
        return self is other or self.slots == other.slots

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        used = len(self.slots)
        return f"<Draft {used}/256 slots used>"


def invalid_node(node: Node | Draft, detail: object) -> MalformedNodeError:
    """The error for a node whose entries are malformed, naming it."""
    return MalformedNodeError(
        f"node {node_name(node)} is not a valid HAMT node: {detail}", node_id(node)
    )


def node_name(node: Node | Draft) -> str:
    """A node's id for a message (a draft has none yet)."""
    return raw_name(node.raw_id) if type(node) is Node else "<unsaved node>"


def node_id(node: Node | Draft) -> object:
    """A node's id, or ``None`` for a draft (or an undecodable raw id)."""
    return raw_to_id(node.raw_id) if type(node) is Node else None


def raw_to_id(raw: bytes) -> object:
    """The id a raw id encodes, or ``None`` when it encodes none."""
    try:
        return decode_id(raw)
    except (ValueError, IndexError):
        return None


def raw_name(raw: bytes) -> str:
    """A raw id for a message: the id it encodes, else its hex."""
    ident = raw_to_id(raw)
    return format_id(ident) if ident is not None else raw.hex()


def _object_size(obj: object) -> int:
    size = _OBJECT_SIZES.get(type(obj))
    if size is None:
        size = _OBJECT_SIZES[type(obj)] = sys.getsizeof(obj)
    return size


_BYTES_HEADER = sys.getsizeof(b"")
# The draft object and its empty ``kids`` set; its slot dict is counted apart.
_DRAFT_BASE = 80 + sys.getsizeof(set())
_BIT = [1 << i for i in range(NODE_WIDTH)]


class _Views:
    """The nodes holding a decoded view: at most :data:`MAX_VIEWS`, the
    oldest giving theirs up first. Locked (nodes are shared by threads)."""

    def __init__(self) -> None:
        self._nodes: OrderedDict[int, Node] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, node: Node, view: View) -> None:
        with self._lock:
            if type(node.hot) is not list:
                node.hot = view
                self._nodes[id(node)] = node
            while len(self._nodes) > MAX_VIEWS:
                _, old = self._nodes.popitem(last=False)
                old.hot = _DEMOTED


_VIEWS = _Views()
