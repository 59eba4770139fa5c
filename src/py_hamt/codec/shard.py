"""Shards of a sharded Zarr store: DAG-CBOR arrays of CIDs or nulls.

In memory a shard is a list of *binary* CIDs (``bytes``, without tag 42's
0x00 prefix) or ``None``. Decoding only slices bytes; turning an entry into a
``CID`` object is left to the one read that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from py_hamt.codec.node import _head

__all__ = ["decode_shard", "decode_shard_entry", "encode_shard"]


def encode_shard(entries: Sequence[bytes | None]) -> bytes:
    """Canonical DAG-CBOR for a list of binary CIDs and nulls."""
    parts = [_head(4, len(entries))]
    for raw in entries:
        if raw is None:
            parts.append(b"\xf6")
        else:
            parts.append(b"\xd8\x2a")
            parts.append(_head(2, len(raw) + 1))
            parts.append(b"\x00")
            parts.append(raw)
    return b"".join(parts)


# tag(42), bytes(37), 0x00: the prefix of every 36-byte CIDv1 (one-byte codec
# and a 32-byte blake3 or sha2-256 multihash), which is nearly every CID here.
_CID36: Final = b"\xd8\x2a\x58\x25\x00"
_CID36_LEN: Final = 36


def _decode_cid36(data: bytes, pos: int, n: int) -> list[bytes | None] | None:
    """Split on the CID prefix in C, then check every piece's shape.

    Exact: a CID that happened to contain the prefix would leave a piece
    shorter than a CID, and any piece that is not "CID then nulls" makes
    this return ``None`` for the general decoder to handle.
    """
    pieces = data[pos:].split(_CID36)
    lead = pieces[0]
    if lead.count(b"\xf6") != len(lead):
        return None
    out: list[bytes | None] = [None] * len(lead)
    append, extend = out.append, out.extend
    for piece in pieces[1:]:
        rest = len(piece) - _CID36_LEN
        if rest < 0 or (rest and piece.count(b"\xf6", _CID36_LEN) != rest):
            return None
        append(piece[:_CID36_LEN])
        if rest:
            extend([None] * rest)
    return out if len(out) == n else None


def _header(data: bytes, expected: int | None) -> tuple[int, int]:
    """``(entries, offset of the first)``; ``ValueError`` unless a CBOR array
    of ``expected`` entries that can fit in the block."""
    if not data:
        raise ValueError("empty block")
    head = data[0]
    if head >> 5 != 4:
        raise ValueError("a shard is a CBOR array")
    info, pos = head & 31, 1
    if info < 24:
        n = info
    elif info in (24, 25, 26):
        size = 1 << (info - 24)
        n, pos = int.from_bytes(data[1 : 1 + size], "big"), 1 + size
    else:
        raise ValueError("unsupported array length encoding")
    if expected is not None and n != expected:
        raise ValueError(f"shard holds {n} entries, expected {expected}")
    if n > len(data):
        raise ValueError(f"shard of {n} entries cannot fit in {len(data)} bytes")
    return n, pos


def decode_shard_entry(data: bytes, expected: int, slot: int) -> bytes | None:
    """Entry ``slot`` of a shard of ``expected`` entries, without decoding the
    others when the shard is all 36-byte CIDs (a full shard) or all nulls;
    otherwise through :func:`decode_shard`. ``ValueError`` as there."""
    data = bytes(data)
    n, pos = _header(data, expected)
    if not 0 <= slot < n:
        raise ValueError(f"entry {slot} of a shard of {n}")
    step = len(_CID36) + _CID36_LEN
    if len(data) == pos + step * n:
        start = pos + step * slot
        if data[start : start + len(_CID36)] == _CID36:
            return data[start + len(_CID36) : start + step]
    elif len(data) == pos + n and data.count(b"\xf6", pos) == n:
        return None
    return decode_shard(data, expected)[slot]


def decode_shard(data: bytes, expected: int | None = None) -> list[bytes | None]:
    """Entries of a shard; ``ValueError`` for anything else (wrong length included)."""
    data = bytes(data)
    n, pos = _header(data, expected)
    fast = _decode_cid36(data, pos, n)
    if fast is not None:
        return fast
    out: list[bytes | None] = []
    append = out.append
    for _ in range(n):
        b = data[pos] if pos < len(data) else -1
        if b == 0xF6:
            append(None)
            pos += 1
            continue
        if b != 0xD8 or data[pos + 1] != 42:
            raise ValueError(f"shard entry at byte {pos} is neither null nor a CID")
        lb = data[pos + 2]
        if lb == 0x58:
            length, start = data[pos + 3], pos + 4
        elif 0x40 <= lb < 0x58:
            length, start = lb - 0x40, pos + 3
        else:
            raise ValueError(f"shard entry at byte {pos} has an oversized CID")
        end = start + length
        if end > len(data) or length < 2 or data[start] != 0:
            raise ValueError(f"malformed CID in shard at byte {pos}")
        append(data[start + 1 : end])
        pos = end
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes after the shard")
    return out
