"""A small, strict DAG-CBOR decoder for py_hamt's own blocks.

It decodes every DAG-CBOR kind (maps, arrays, text, bytes, integers,
floats, booleans, null and CIDs under tag 42) without recursion limits of
Python's own stack, building CIDs
through the fast path in :mod:`py_hamt.codec.cids` rather than
``dag_cbor.decode``'s generic one (about 3 µs per CID instead of 170 µs).
Floats are 64-bit only, as DAG-CBOR requires; other simple values, NaN
and infinities are refused.

Hostile input: nesting is limited to :data:`MAX_DEPTH` levels and every
length is checked against the bytes that remain, so no input can recurse
without bound or ask for more memory than its own size.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

from py_hamt.codec.cids import cid_from_bytes

__all__ = ["MAX_DEPTH", "CBORDecodeError", "decode"]

MAX_DEPTH: Final = 64


class CBORDecodeError(ValueError):
    """The bytes are not DAG-CBOR of the kinds this decoder accepts."""


def _length(data: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise CBORDecodeError(f"indefinite or reserved length at byte {pos - 1}")
    if pos + size > len(data):
        raise CBORDecodeError("length runs past the end of the block")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def _item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CBORDecodeError(f"nested deeper than {MAX_DEPTH} levels")
    if pos >= len(data):
        raise CBORDecodeError("unexpected end of block")
    head = data[pos]
    major, info = head >> 5, head & 31
    pos += 1
    if major == 7:
        if head == 0xF6:
            return None, pos
        if head == 0xF5:
            return True, pos
        if head == 0xF4:
            return False, pos
        if head == 0xFB:  # DAG-CBOR floats are always 64-bit
            if pos + 8 > len(data):
                raise CBORDecodeError("float runs past the end of the block")
            value = struct.unpack(">d", data[pos : pos + 8])[0]
            if math.isnan(value) or math.isinf(value):
                raise CBORDecodeError("NaN and infinities are not allowed in DAG-CBOR")
            return value, pos + 8
        raise CBORDecodeError(
            f"simple value or short float 0x{head:02x} is not allowed in DAG-CBOR"
        )
    n, pos = _length(data, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major in (2, 3):
        end = pos + n
        if end > len(data):
            raise CBORDecodeError("string runs past the end of the block")
        chunk = data[pos:end]
        if major == 2:
            return chunk, end
        try:
            return chunk.decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise CBORDecodeError(f"text at byte {pos} is not UTF-8") from exc
    if major == 4:
        if n > len(data) - pos:
            raise CBORDecodeError(f"array of {n} items cannot fit in the block")
        items = []
        for _ in range(n):
            value, pos = _item(data, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        if 2 * n > len(data) - pos:
            raise CBORDecodeError(f"map of {n} entries cannot fit in the block")
        out: dict[str, Any] = {}
        for _ in range(n):
            key, pos = _item(data, pos, depth + 1)
            if type(key) is not str:
                raise CBORDecodeError("DAG-CBOR map keys must be text")
            if key in out:
                raise CBORDecodeError(f"repeated map key {key!r}")
            out[key], pos = _item(data, pos, depth + 1)
        return out, pos
    # major 6: tags; DAG-CBOR allows only 42 (CID)
    if n != 42:
        raise CBORDecodeError(f"tag {n} is not allowed in DAG-CBOR")
    raw, pos = _item(data, pos, depth + 1)
    if type(raw) is not bytes or len(raw) < 2 or raw[0] != 0:
        raise CBORDecodeError("tag 42 must wrap 0x00 followed by a binary CID")
    try:
        return cid_from_bytes(raw[1:]), pos
    except ValueError as exc:
        raise CBORDecodeError(str(exc)) from exc


def decode(data: bytes) -> Any:
    """Decode one DAG-CBOR value; raises :class:`CBORDecodeError` if invalid."""
    data = bytes(data)
    value, pos = _item(data, 0, 0)
    if pos != len(data):
        raise CBORDecodeError(f"{len(data) - pos} trailing bytes after the value")
    return value
