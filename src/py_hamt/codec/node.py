"""The HAMT node's DAG-CBOR encoding (py-hamt v3 layout).

A node is a CBOR array of exactly 256 entries; each entry is ``{}`` (empty),
a map ``{key: id, ...}`` (a bucket), or ``[id]`` (a link to a child node).
The encoder writes canonical DAG-CBOR directly, and the decoder parses that
fixed shape in one pass. Both are byte-for-byte what a general DAG-CBOR codec
produces for the same structure (the tests check this against ``dag_cbor``);
ids of kinds other than bytes and CIDs go through ``dag_cbor`` itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, TypeAlias, cast

import dag_cbor
from multiformats import CID

from py_hamt.codec import dagcbor
from py_hamt.codec.cids import cid_bytes, cid_from_bytes
from py_hamt.errors import (
    InvalidArgumentError,
    InvalidTypeError,
    MalformedNodeError,
    format_id,
    one_line,
)

__all__ = [
    "NODE_WIDTH",
    "Bucket",
    "Entry",
    "Link",
    "decode_node",
    "encode_id",
    "encode_node",
    "oversized_bucket",
    "read_length",
]

NODE_WIDTH: Final = 256

Id: TypeAlias = object
"""Whatever a content-addressed store returns: bytes, a CID, ..."""

Bucket: TypeAlias = dict[str, Id]


class Link:
    """A slot that points at a child node by id."""

    __slots__ = ("id",)

    def __init__(self, block_id: Id) -> None:
        self.id = block_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Link", self.id))

    def __repr__(self) -> str:
        return f"Link({format_id(self.id)})"


Entry: TypeAlias = Bucket | Link | None

_NODE_HEAD: Final = b"\x99\x01\x00"  # array(256)
_CID_TAG: Final = b"\xd8\x2a"  # tag(42)


def _head(major: int, n: int) -> bytes:
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((m | 26,)) + n.to_bytes(4, "big")
    return bytes((m | 27,)) + n.to_bytes(8, "big")


def encode_id(block_id: Id) -> bytes:
    """An id's DAG-CBOR encoding, as it appears in a node."""
    if type(block_id) is bytes:
        return _head(2, len(block_id)) + block_id
    if isinstance(block_id, CID):
        raw = cid_bytes(block_id)
        return _CID_TAG + _head(2, len(raw) + 1) + b"\x00" + raw
    try:
        return dag_cbor.encode(cast(dag_cbor.IPLDKind, block_id))
    except (TypeError, ValueError, dag_cbor.encoding.CBOREncodingError) as exc:
        raise InvalidTypeError(
            f"cannot store id {block_id!r} of type {type(block_id).__name__} in a HAMT node: "
            f"{one_line(exc)}"
        ) from exc


def _encode_bucket(bucket: Bucket) -> bytes:
    items = [(k.encode("utf-8"), v) for k, v in bucket.items()]
    # DAG-CBOR map order: shorter encoded keys first, then bytewise.
    items.sort(key=lambda kv: (len(kv[0]), kv[0]))
    parts = [_head(5, len(items))]
    for kb, v in items:
        parts.append(_head(3, len(kb)))
        parts.append(kb)
        parts.append(encode_id(v))
    return b"".join(parts)


def encode_node(entries: Sequence[Entry]) -> bytes:
    """Encode 256 entries as a canonical DAG-CBOR node."""
    if len(entries) != NODE_WIDTH:
        raise InvalidArgumentError(f"a node has {NODE_WIDTH} entries, got {len(entries)}")
    parts = [_NODE_HEAD]
    for e in entries:
        if e is None:
            parts.append(b"\xa0")
        elif type(e) is dict:
            parts.append(_encode_bucket(e) if e else b"\xa0")
        else:
            parts.append(b"\x81")
            parts.append(encode_id(e.id))  # type: ignore[union-attr]
    return b"".join(parts)


class _Fallback(Exception):
    """The fast decoder met a valid-looking shape it does not handle."""


def read_length(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """The argument of a CBOR head whose additional info is ``info``, read
    from ``pos`` (just past the head byte), and the position after it."""
    if info < 24:
        return info, pos
    if info == 24:
        n, end = data[pos], pos + 1
    elif 25 <= info <= 27:
        end = pos + (2, 4, 8)[info - 25]
        n = int.from_bytes(data[pos:end], "big")
    else:
        raise ValueError(f"unsupported CBOR length encoding {info} at byte {pos - 1}")
    if n < _SMALLEST[info - 24] or end > len(data):
        raise ValueError(
            f"the CBOR length {n} at byte {pos - 1} is not minimally encoded"
            if end <= len(data)
            else f"a CBOR length runs past the end of the block (byte {pos - 1})"
        )
    return n, end


# DAG-CBOR encodes every length in its shortest form: the smallest value
# each of the 1, 2, 4 and 8-byte forms may carry.
_SMALLEST: Final = (24, 1 << 8, 1 << 16, 1 << 32)


def _read_id(data: bytes, pos: int) -> tuple[Id, int]:
    b = data[pos]
    if b == 0x58 and data[pos + 1] >= 24:  # a byte string of 24-255 bytes: every multihash id
        end = pos + 2 + data[pos + 1]
        if end > len(data):
            raise ValueError("byte string runs past the end of the block")
        return data[pos + 2 : end], end
    if b >> 5 == 2:  # byte string
        n, pos = read_length(data, pos + 1, b & 31)
        end = pos + n
        if end > len(data):
            raise ValueError("byte string runs past the end of the block")
        return data[pos:end], end
    if b == 0xD8 and data[pos + 1] == 42:
        b = data[pos + 2]
        if b >> 5 != 2:
            raise ValueError(f"tag 42 must wrap a byte string (byte {pos + 2})")
        n, p = read_length(data, pos + 3, b & 31)
        end = p + n
        if end > len(data) or n < 2 or data[p] != 0:
            raise ValueError(f"malformed CID under tag 42 at byte {pos}")
        return cid_from_bytes(data[p + 1 : end]), end
    raise _Fallback


_EMPTY_RUN: Final = re.compile(rb"\xa0*")
_NONES: Final = (None,) * NODE_WIDTH


def _duplicate_link(slot: int, block_id: Id, first: int) -> ValueError:
    # The same child in two slots cannot be valid: each child's keys hash to
    # the one slot that links it. Refusing it also stops a few blocks from
    # fanning out into exponentially many paths for a walk.
    return ValueError(
        f"slot {slot} links child {format_id(block_id)} already linked from slot {first}"
    )


def oversized_bucket(slot: int, n: int, max_bucket_size: int) -> ValueError:
    return ValueError(
        f"the bucket in slot {slot} holds {n} keys, more than max_bucket_size="
        f"{max_bucket_size} (a HAMT written with a larger max_bucket_size must be "
        "opened with it)"
    )


def _decode_fast(data: bytes, max_bucket_size: int | None) -> list[Entry]:
    if not data.startswith(_NODE_HEAD):
        raise _Fallback
    pos = 3
    i = 0
    links: dict[Id, int] = {}
    entries: list[Entry] = []
    append = entries.append
    empty_run = _EMPTY_RUN.match
    size = len(data)
    while i < NODE_WIDTH:
        b = data[pos]
        if b == 0xA0:
            # Sparse nodes are mostly empty slots: take the whole run at once.
            n = empty_run(data, pos).end() - pos  # type: ignore[union-attr]
            if n > NODE_WIDTH - i:
                n = NODE_WIDTH - i
            entries += _NONES[:n]
            pos += n
            i += n
            continue
        pos += 1
        i += 1
        if b == 0x81:
            block_id, pos = _read_id(data, pos)
            if max_bucket_size is not None:
                if block_id in links:
                    raise _duplicate_link(i - 1, block_id, links[block_id])
                links[block_id] = i - 1
            append(Link(block_id))
            continue
        if 0xA1 <= b <= 0xB7:
            n = b - 0xA0
        elif b >> 5 == 5:
            n, pos = read_length(data, pos, b & 31)
        else:
            raise ValueError(f"entry {i - 1} is neither a map nor a one-element array")
        if max_bucket_size is not None and n > max_bucket_size:
            raise oversized_bucket(i - 1, n, max_bucket_size)
        bucket: Bucket = {}
        prev: bytes = b""
        for _ in range(n):
            kb = data[pos]
            if 0x60 <= kb < 0x78:  # text string, length in the head byte
                klen = kb - 0x60
                pos += 1
            elif kb >> 5 == 3:
                klen, pos = read_length(data, pos + 1, kb & 31)
            else:
                raise ValueError(f"bucket key at byte {pos} is not a text string")
            end = pos + klen
            if end > size:
                raise ValueError("bucket key runs past the end of the block")
            key_bytes = data[pos:end]
            pos = end
            if bucket and (klen < len(prev) or (klen == len(prev) and key_bytes <= prev)):
                raise ValueError(f"bucket keys out of canonical order or repeated at byte {pos}")
            prev = key_bytes
            if data[pos] == 0x58 and data[pos + 1] >= 24:  # the usual id: 24-255 bytes
                end = pos + 2 + data[pos + 1]
                if end > size:
                    raise ValueError("byte string runs past the end of the block")
                bucket[key_bytes.decode("utf-8")] = data[pos + 2 : end]
                pos = end
            else:
                bucket[key_bytes.decode("utf-8")], pos = _read_id(data, pos)
        append(bucket)
    if pos != size:
        raise ValueError(f"{size - pos} trailing bytes after the node")
    return entries


def _decode_generic(data: bytes, max_bucket_size: int | None) -> list[Entry]:
    obj = dagcbor.decode(data)
    if not isinstance(obj, list) or len(obj) != NODE_WIDTH:
        raise ValueError(f"a node is an array of {NODE_WIDTH} entries")
    links: dict[Id, int] = {}
    entries: list[Entry] = []
    for i, e in enumerate(obj):
        if isinstance(e, dict):
            if any(v is None or isinstance(v, (dict, list)) for v in e.values()):
                raise ValueError(f"bucket in entry {i} holds a value that is not an id")
            if max_bucket_size is not None and len(e) > max_bucket_size:
                raise oversized_bucket(i, len(e), max_bucket_size)
            entries.append(dict(e) if e else None)
        elif (
            isinstance(e, list)
            and len(e) == 1
            and not isinstance(e[0], (dict, list))
            and e[0] is not None
        ):
            if max_bucket_size is not None:
                if e[0] in links:
                    raise _duplicate_link(i, e[0], links[e[0]])
                links[e[0]] = i
            entries.append(Link(e[0]))
        else:
            raise ValueError(f"entry {i} is neither a map nor a one-element array")
    return entries


def decode_node(
    data: bytes, block_id: Id = None, *, max_bucket_size: int | None = None
) -> list[Entry]:
    """Decode a node's 256 entries.

    Raises :class:`MalformedNodeError`, naming ``block_id``, for anything that
    is not a node in this layout: bad CBOR, the wrong shape, trailing bytes,
    keys that are not UTF-8 text or repeat.

    With ``max_bucket_size`` (as the HAMT decodes its nodes) the HAMT's rules
    are checked too: no bucket holds more keys than that, and no child is
    linked from two slots. The format does not record the writer's
    ``max_bucket_size``; a reader passes its own, so a node with larger
    buckets is malformed for it. Without it, this is the plain codec.
    """
    try:
        try:
            return _decode_fast(bytes(data), max_bucket_size)
        except _Fallback:
            return _decode_generic(bytes(data), max_bucket_size)
    except (ValueError, IndexError, TypeError, dag_cbor.decoding.CBORDecodingError) as exc:
        raise MalformedNodeError(
            f"block {format_id(block_id)} is not a valid HAMT node: {one_line(exc)}", block_id
        ) from exc
