"""Unsigned LEB128 varints, as multiformats and CAR files use them."""

from __future__ import annotations

__all__ = ["encode_varint", "read_varint"]


def encode_varint(n: int) -> bytes:
    """The varint encoding of ``n >= 0``."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """``(value, position after it)``; ``ValueError`` if truncated or over 9 bytes."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
