"""HAMT nodes kept as their encoded bytes, decoded one entry at a time.

A stored node (``codec.node``'s layout: a CBOR array of 256 entries, each
``{}``, a bucket map ``{key: id, ...}`` or a link ``[id]``) is held in memory
as three things:

* ``bitmap``: an ``int`` whose bit ``i`` is set when slot ``i`` is not empty;
* ``packed``: the encoded bytes of the non-empty entries, in slot order, with
  the empty entries (and the array head) left out;
* ``offsets``: ``len(entries) + 1`` positions into ``packed``, as the bytes
  of a native ``uint16`` array (``uint32`` when ``packed`` is 64 KiB or
  more): a bytes object costs 31 bytes less than an ``array`` and a second
  allocation less, which is about 5 bytes a key in a large trie.

Slot ``i``'s entry is ``packed[start:end]`` with ``start, end`` the positions
``r`` and ``r + 1`` (:func:`entry_at`), where ``r`` is the number of set bits
below ``i``. An entry stays encoded until it is used:
:func:`bucket_pairs` decodes one bucket into ``(key bytes, raw id)`` pairs and
:func:`decode_id` turns a raw id (its CBOR encoding) into the id the store
gave. Keeping ids raw means a lookup builds one id object (the one it needs)
instead of one per key in the node, and a node costs about its encoded size
in memory.

What is checked when. :func:`scan_node` checks the node's shape: 256
entries, each empty, a one-element array or a map of 1 to
``max_bucket_size`` text-keyed pairs whose values are ids; lengths within
the block and in their shortest form (DAG-CBOR's rule, which py-hamt 3.x's
decoder enforces too); no trailing bytes; no child linked from two slots.
The text of each key (UTF-8) and the order of a bucket's keys are checked
when that bucket is decoded, and a CID's bytes when that id is decoded: an
answer never depends on bytes that were not checked, and a walk decodes (so
checks) everything, as a writer does before it copies a node's entries.
"""

from __future__ import annotations

import re
import struct
from array import array
from collections.abc import Callable
from itertools import accumulate
from operator import sub
from typing import Final

import dag_cbor

from py_hamt.codec import dagcbor
from py_hamt.codec.cids import cid_from_bytes
from py_hamt.codec.node import NODE_WIDTH, decode_node, encode_id, oversized_bucket, read_length
from py_hamt.errors import MalformedNodeError, format_id, one_line

__all__ = [
    "CID_HEAD",
    "EMPTY_ENTRY",
    "LINK_HEAD",
    "Misplaced",
    "NODE_HEAD",
    "NodeContents",
    "bucket_lookup",
    "bucket_pairs",
    "bucket_size",
    "decode_id",
    "encode_bucket",
    "entry_at",
    "make_offsets",
    "node_contents",
    "node_summary",
    "positions",
    "scan_node",
]

NODE_HEAD: Final = b"\x99\x01\x00"  # array(256)
CID_HEAD: Final = b"\xd8\x2a\x58"  # tag 42, then a byte string of under 256 bytes
EMPTY_ENTRY: Final = b"\xa0"  # {}
LINK_HEAD: Final = 0x81  # array(1), the first byte of a link entry

_EMPTY_RUN: Final = re.compile(rb"\xa0*")

Pair = tuple[bytes, bytes]
"""A bucket entry: the key's UTF-8 bytes and the raw (CBOR-encoded) id."""


class _Fallback(Exception):
    """The fast scanner met a valid-looking shape it does not handle."""


def _skip_id(data: bytes, pos: int) -> int:
    """The end of the id that starts at ``pos``: a byte string, a CID under
    tag 42, or (ids of other stores) an integer, a text string or a float;
    ``_Fallback`` for anything else."""
    b = data[pos]
    if b == 0x58 and data[pos + 1] >= 24:  # a byte string of 24-255 bytes: every multihash id
        return pos + 2 + data[pos + 1]
    if data.startswith(CID_HEAD, pos) and data[pos + 3] >= 24 and data[pos + 4] == 0:
        return pos + 4 + data[pos + 3]  # a CID of 24-255 bytes
    major = b >> 5
    if b == 0xD8:
        if data[pos + 1] != 42:
            raise _Fallback
        b = data[pos + 2]
        if b >> 5 != 2:
            raise ValueError(f"tag 42 must wrap a byte string (byte {pos + 2})")
        n, p = read_length(data, pos + 3, b & 31)
        if n < 2 or data[p] != 0:
            raise ValueError(f"malformed CID under tag 42 at byte {pos}")
        return p + n
    if major == 2 or major == 3:
        n, p = read_length(data, pos + 1, b & 31)
        return p + n
    if major <= 1:
        return read_length(data, pos + 1, b & 31)[1]
    if b == 0xFB:
        return pos + 9
    if b in (0xF4, 0xF5):
        return pos + 1
    raise _Fallback


def _duplicate_link(slot: int, raw_id: bytes, first: int) -> ValueError:
    # The same child in two slots cannot be valid: each child's keys hash to
    # the one slot that links it. Refusing it also stops a few blocks from
    # fanning out into exponentially many paths for a walk.
    return ValueError(
        f"slot {slot} links child {format_id(decode_id(raw_id))} already linked from slot {first}"
    )


def make_offsets(sizes: list[int] | None = None, positions: list[int] | None = None) -> bytes:
    """The offsets of entries at ``positions`` (already cumulative, from 0 to
    the packed length) or of entries of ``sizes``: native ``uint16`` when
    the packed length is under 64 KiB, else ``uint32`` (see the module
    docstring)."""
    if positions is None:
        positions = [0]
        total = 0
        for s in sizes or ():
            total += s
            positions.append(total)
    return array("H" if positions[-1] < 0x10000 else "I", positions).tobytes()


_NARROW: Final = struct.Struct("=HH").unpack_from
_WIDE: Final = struct.Struct("=II").unpack_from


def entry_at(packed: bytes, offsets: bytes, rank: int) -> bytes:
    """The ``rank``-th entry of a packed node (0 is the lowest used slot)."""
    if len(packed) < 0x10000:
        start, end = _NARROW(offsets, rank << 1)
    else:
        start, end = _WIDE(offsets, rank << 2)
    return packed[start:end]


def positions(packed: bytes, offsets: bytes) -> memoryview:
    """A packed node's offsets as integers (for loops over every entry)."""
    return memoryview(offsets).cast("H" if len(packed) < 0x10000 else "I")


def _scan_fast(data: bytes, max_bucket_size: int) -> tuple[int, bytes, bytes]:
    if not data.startswith(NODE_HEAD):
        raise _Fallback
    pos = 3
    i = 0
    size = len(data)
    bitmap = 0
    starts: list[int] = []
    ends: list[int] = []
    links: dict[bytes, int] = {}
    empty_run = _EMPTY_RUN.match
    startswith = data.startswith
    while i < NODE_WIDTH:
        b = data[pos]
        if b == 0xA0:  # empty: a run of them
            if i == NODE_WIDTH - 1 or data[pos + 1] != 0xA0:
                pos += 1
                i += 1
                continue
            n = empty_run(data, pos).end() - pos  # type: ignore[union-attr]
            if n > NODE_WIDTH - i:
                n = NODE_WIDTH - i
            pos += n
            i += n
            continue
        start = pos
        if b == 0x81:  # a link
            if data[pos + 1] == 0x58 and data[pos + 2] >= 24:
                pos += 3 + data[pos + 2]
            elif startswith(CID_HEAD, pos + 1) and data[pos + 4] >= 24 and data[pos + 5] == 0:
                pos += 5 + data[pos + 4]
            else:
                pos = _skip_id(data, pos + 1)
            raw = data[start + 1 : pos]
            first = links.setdefault(raw, i)
            if first != i:
                raise _duplicate_link(i, raw, first)
        else:  # a bucket
            if 0xA1 <= b <= 0xB7:
                n, pos = b - 0xA0, pos + 1
            elif b >> 5 == 5:
                n, pos = read_length(data, pos + 1, b & 31)
            else:
                raise ValueError(f"entry {i} is neither a map nor a one-element array")
            if n > max_bucket_size:
                raise oversized_bucket(i, n, max_bucket_size)
            while n:
                n -= 1
                kb = data[pos]
                if 0x60 <= kb < 0x78:
                    pos += 1 + kb - 0x60
                elif kb >> 5 == 3:
                    klen, p = read_length(data, pos + 1, kb & 31)
                    pos = p + klen
                else:
                    raise ValueError(f"bucket key at byte {pos} is not a text string")
                if data[pos] == 0x58 and data[pos + 1] >= 24:  # a multihash (InMemoryCAS)
                    pos += 2 + data[pos + 1]
                elif startswith(CID_HEAD, pos) and data[pos + 3] >= 24 and data[pos + 4] == 0:
                    pos += 4 + data[pos + 3]  # a CID (LocalCAS, KuboCAS)
                else:
                    pos = _skip_id(data, pos)
        if pos > size:
            raise ValueError(f"entry {i} runs past the end of the block")
        bitmap |= 1 << i
        starts.append(start)
        ends.append(pos)
        i += 1
    if pos != size:
        raise ValueError(f"{size - pos} trailing bytes after the node")
    if not starts:
        return 0, b"", make_offsets(positions=[0])
    lengths = list(map(sub, ends, starts))
    positions = list(accumulate(lengths, initial=0))
    if ends[-1] - starts[0] == positions[-1]:  # no empty slot between entries
        packed = data[starts[0] : ends[-1]]
    else:
        packed = b"".join(map(data.__getitem__, map(slice, starts, ends)))
    return bitmap, packed, make_offsets(positions=positions)


def _scan_generic(data: bytes, block_id: object, max_bucket_size: int) -> tuple[int, bytes, bytes]:
    """Any node the general decoder accepts (ids of other kinds, unusual
    heads): decode it, then re-encode each entry canonically."""
    entries = decode_node(data, block_id, max_bucket_size=max_bucket_size)
    bitmap = 0
    parts: list[bytes] = []
    for i, e in enumerate(entries):
        if e is None:
            continue
        bitmap |= 1 << i
        if type(e) is dict:
            parts.append(encode_bucket([(k.encode("utf-8"), encode_id(v)) for k, v in e.items()]))
        else:
            parts.append(bytes((LINK_HEAD,)) + encode_id(e.id))  # type: ignore[union-attr]
    return bitmap, b"".join(parts), make_offsets([len(p) for p in parts])


def scan_node(data: bytes, block_id: object, max_bucket_size: int) -> tuple[int, bytes, bytes]:
    """Check a stored node's shape and pack it: ``(bitmap, packed, offsets)``.

    Raises :class:`MalformedNodeError` naming ``block_id`` for anything that
    is not a node (see the module docstring for what is checked here and
    what later).
    """
    try:
        try:
            return _scan_fast(bytes(data), max_bucket_size)
        except (_Fallback, IndexError):
            return _scan_generic(bytes(data), block_id, max_bucket_size)
    except (ValueError, IndexError, TypeError, dag_cbor.decoding.CBORDecodingError) as exc:
        if isinstance(exc, MalformedNodeError):
            raise
        raise MalformedNodeError(
            f"block {format_id(block_id)} is not a valid HAMT node: {one_line(exc)}", block_id
        ) from exc


def bucket_size(entry: bytes) -> int:
    """The number of keys in an encoded bucket (its map head)."""
    b = entry[0]
    if 0xA1 <= b <= 0xB7:
        return b - 0xA0
    return read_length(entry, 1, b & 31)[0]


def _bucket(data: bytes, start: int, end: int) -> list[Pair]:
    """The ``(key bytes, raw id)`` pairs of the bucket ``data[start:end]``,
    its shape and key order checked (not the keys' text: callers decode
    them); ``ValueError`` if it is malformed."""
    b = data[start]
    if 0xA1 <= b <= 0xB7:
        n, pos = b - 0xA0, start + 1
    else:
        n, pos = read_length(data, start + 1, b & 31)
    pairs: list[Pair] = []
    prev = b""
    for _ in range(n):
        k = data[pos]
        if 0x60 <= k < 0x78:
            klen = k - 0x60
            pos += 1
        else:
            klen, pos = read_length(data, pos + 1, k & 31)
        key = data[pos : pos + klen]
        pos += klen
        if pairs and (klen < len(prev) or (klen == len(prev) and key <= prev)):
            raise ValueError(f"bucket keys out of canonical order or repeated ({key!r})")
        prev = key
        if data[pos] == 0x58 and data[pos + 1] >= 24:  # a multihash (InMemoryCAS)
            id_end = pos + 2 + data[pos + 1]
        else:
            id_end = _skip_id(data, pos)
        pairs.append((key, data[pos:id_end]))
        pos = id_end
    if pos != end:
        raise ValueError("a bucket does not end where its entry does")
    return pairs


def bucket_pairs(entry: bytes) -> list[Pair]:
    """Decode one bucket into ``(key bytes, raw id)`` pairs, in stored order.

    Raises ``ValueError`` when a key is not UTF-8 text, the keys are not in
    canonical order (or repeat), or the bucket does not end where it should;
    the caller names the node.
    """
    pairs = _bucket(entry, 0, len(entry))
    for key, _ in pairs:
        key.decode("utf-8")  # raises UnicodeDecodeError, a ValueError
    return pairs


def bucket_lookup(entry: bytes, kb: bytes) -> bytes | None:
    """The raw id stored under key bytes ``kb`` in one encoded bucket, or
    ``None`` when the bucket does not hold it.

    The whole bucket is checked as :func:`bucket_pairs` checks it (shape,
    UTF-8 keys, canonical order, so a repeated key is an error, never a
    choice between two ids); ``ValueError`` if it is malformed.

    ``entry`` must come from :func:`scan_node` or the encoder, which checked
    its shape: so a bucket of one short key that is ``kb`` (most lookups in
    a large trie) is answered without parsing it again, since ``kb`` is
    valid UTF-8 and one key has no order to check.
    """
    k = len(kb)
    if k < 24 and entry[0] == 0xA1 and entry[1] == 0x60 + k and entry.startswith(kb, 2):
        return entry[2 + k :]
    found: bytes | None = None
    for key, raw in _bucket(entry, 0, len(entry)):
        if key == kb:  # ``kb`` is valid UTF-8, and so is an equal key
            found = raw
        else:
            key.decode("utf-8")  # raises UnicodeDecodeError, a ValueError
    return found


class Misplaced(ValueError):
    """A bucket key whose hash does not lead to the slot that holds it, so a
    lookup could never find it."""

    def __init__(self, key: str, slot: int, place: bytes, hashed: bytes) -> None:
        depth = len(place) - 1
        super().__init__(
            f"holds key {key!r} in slot {slot} at depth {depth}, "
            f"where its hash does not place it (path {list(place)}, hash "
            f"{list(hashed[: depth + 1])})"
        )


class NodeContents:
    """A node's links and bucket keys, decoded in one pass (for walks)."""

    __slots__ = ("count", "keys", "links")

    def __init__(self) -> None:
        self.links: list[tuple[int, bytes]] = []  # (slot, raw id)
        self.keys: list[str] = []
        self.count = 0  # bucket keys (also when only counted, not decoded)

    def add_entry(
        self,
        slot: int,
        data: bytes,
        start: int,
        end: int,
        path: bytes,
        hash_fn: Callable[[bytes], bytes] | None,
    ) -> None:
        """Decode the entry ``data[start:end]`` (a link or a bucket) in
        ``slot`` of the node reached by ``path`` into this: a link's raw id,
        or a bucket's keys as text. With ``hash_fn``, each key's hash must
        start with ``path`` and ``slot`` (else :class:`Misplaced`)."""
        if data[start] == LINK_HEAD:
            self.links.append((slot, data[start + 1 : end]))
            return
        pairs = _bucket(data, start, end)
        keys = self.keys
        if hash_fn is None:
            for key, _ in pairs:
                keys.append(key.decode("utf-8"))
        else:
            place = path + bytes((slot,))
            for key, _ in pairs:
                text = key.decode("utf-8")
                hashed = hash_fn(key)
                if not hashed.startswith(place):
                    raise Misplaced(text, slot, place, hashed)
                keys.append(text)
        self.count += len(pairs)


def node_contents(
    bitmap: int,
    packed: bytes,
    offsets: bytes,
    path: bytes = b"",
    hash_fn: Callable[[bytes], bytes] | None = None,
) -> NodeContents:
    """Every link and bucket key of a packed node, in slot order.

    With ``hash_fn``, every key is checked against its hash: it must start
    with ``path`` (the slots from the root to this node) and the key's slot,
    else :class:`Misplaced`. ``ValueError`` also for a bucket whose keys are
    not UTF-8 text in canonical order.

    ``packed`` must come from :func:`scan_node` or the encoder (so every
    entry's shape is already checked). One pass over the entries: a bucket
    of one short key (most buckets of a large trie) is read inline, any
    other through :func:`_bucket`; the keys are then decoded, hashed and
    compared in bulk.
    """
    out = NodeContents()
    links = out.links
    found: list[bytes] = []
    places: list[bytes] = []  # each key's expected hash prefix, with hash_fn
    rank = 0
    o = positions(packed, offsets)
    while bitmap:
        low = bitmap & -bitmap
        bitmap ^= low
        slot = low.bit_length() - 1
        start = o[rank]
        end = o[rank + 1]
        rank += 1
        b = packed[start]
        if b == LINK_HEAD:
            links.append((slot, packed[start + 1 : end]))
            continue
        k = packed[start + 1]
        if b == 0xA1 and 0x60 <= k < 0x78:
            # One short key. The scan that packed this node checked that the
            # entry is one key and one id, ending where the next begins.
            found.append(packed[start + 2 : start + 2 + k - 0x60])
            if hash_fn is not None:
                places.append(path + _SLOT_BYTES[slot])
        else:
            pairs = _bucket(packed, start, end)
            found.extend([key for key, _ in pairs])
            if hash_fn is not None:
                places.extend([path + _SLOT_BYTES[slot]] * len(pairs))
    out.keys = [key.decode("utf-8") for key in found]  # UnicodeDecodeError is a ValueError
    out.count = len(found)
    if hash_fn is not None and found:
        hashed = list(map(hash_fn, found))
        if not all(map(bytes.startswith, hashed, places)):
            for text, h, place in zip(out.keys, hashed, places, strict=True):
                if not h.startswith(place):
                    raise Misplaced(text, place[-1], place, h)
    return out


_SLOT_BYTES: Final = [bytes((i,)) for i in range(NODE_WIDTH)]


def node_summary(bitmap: int, packed: bytes, offsets: bytes) -> NodeContents:
    """A packed node's links and its key count, without decoding keys (for
    a walk over a node already checked)."""
    out = NodeContents()
    links = out.links
    count = 0
    rank = 0
    o = positions(packed, offsets)
    while bitmap:
        low = bitmap & -bitmap
        start = o[rank]
        b = packed[start]
        if b == LINK_HEAD:
            links.append((low.bit_length() - 1, packed[start + 1 : o[rank + 1]]))
        elif 0xA1 <= b <= 0xB7:
            count += b - 0xA0
        else:
            count += read_length(packed, start + 1, b & 31)[0]
        bitmap ^= low
        rank += 1
    out.count = count
    return out


def encode_bucket(pairs: list[Pair]) -> bytes:
    """Encode ``(key bytes, raw id)`` pairs as a canonical bucket (keys
    sorted as DAG-CBOR sorts map keys: shorter first, then bytewise)."""
    n = len(pairs)
    if n == 1:
        key, raw = pairs[0]
        k = len(key)
        if k < 24:
            return _ONE_KEY_HEADS[k] + key + raw
    elif n > 1:
        pairs.sort(key=_pair_order)
    parts = [bytes((0xA0 + n,)) if n < 24 else b"\xb8" + bytes((n,))]
    for key, raw in pairs:
        k = len(key)
        if k < 24:
            parts.append(_KEY_HEADS[k])
        elif k < 0x100:
            parts.append(bytes((0x78, k)))
        elif k < 0x10000:
            parts.append(b"\x79" + k.to_bytes(2, "big"))
        else:
            parts.append(b"\x7a" + k.to_bytes(4, "big"))
        parts.append(key)
        parts.append(raw)
    return b"".join(parts)


_KEY_HEADS: Final = [bytes((0x60 + k,)) for k in range(24)]
_ONE_KEY_HEADS: Final = [bytes((0xA1, 0x60 + k)) for k in range(24)]


def _pair_order(pair: Pair) -> tuple[int, bytes]:
    return len(pair[0]), pair[0]


def decode_id(raw: bytes) -> object:
    """The id whose CBOR encoding is ``raw``: ``bytes`` for a byte string, a
    ``CID`` for tag 42, else whatever DAG-CBOR decodes it to.

    Raises ``ValueError`` (or a subclass) when the bytes are not an id.
    """
    b = raw[0]
    if b == 0x58 and raw[1] >= 24 and len(raw) == 2 + raw[1]:
        return raw[2:]
    if b == 0xD8 and raw[1] == 42:
        n, p = read_length(raw, 3, raw[2] & 31)
        if p + n != len(raw) or raw[2] >> 5 != 2 or n < 2 or raw[p] != 0:
            raise ValueError(f"malformed CID under tag 42: {raw.hex()}")
        return cid_from_bytes(raw[p + 1 :])
    try:
        value = dagcbor.decode(raw)
    except dag_cbor.decoding.CBORDecodingError as exc:
        raise ValueError(f"not a CBOR id: {one_line(exc)}") from exc
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{value!r} is not an id")
    return value
