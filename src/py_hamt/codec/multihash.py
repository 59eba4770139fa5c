"""Multihash helpers for the two hash functions py_hamt writes and verifies.

A multihash is ``varint(code) || varint(len(digest)) || digest``. Both codes
used here are below 0x80, so each varint is a single byte.
"""

from __future__ import annotations

import hashlib
from typing import Final

import blake3

from py_hamt.codec.varint import read_varint

__all__ = [
    "BLAKE3",
    "SHA2_256",
    "blake3_digest",
    "blake3_multihash",
    "digest_for",
    "multihash_matches",
    "split_multihash",
]

BLAKE3: Final = 0x1E
SHA2_256: Final = 0x12

_BLAKE3_PREFIX: Final = bytes((BLAKE3, 32))


def blake3_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte blake3 digest of ``data``."""
    return blake3.blake3(data).digest()


def blake3_multihash(data: bytes | bytearray | memoryview) -> bytes:
    """``0x1e 0x20`` followed by the 32-byte blake3 digest of ``data``."""
    return _BLAKE3_PREFIX + blake3.blake3(data).digest()


def digest_for(code: int, data: bytes | bytearray | memoryview) -> bytes:
    """The raw digest of ``data`` under multihash ``code``.

    Raises ``ValueError`` for a hash function py_hamt does not implement.
    """
    if code == BLAKE3:
        return blake3.blake3(data).digest()
    if code == SHA2_256:
        return hashlib.sha256(data).digest()
    raise ValueError(
        f"unsupported multihash code 0x{code:x}: only blake3 and sha2-256 are verified"
    )


def split_multihash(mh: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(code, digest)``.

    Raises ``ValueError`` if the declared length does not match the bytes.
    """
    code, pos = read_varint(mh, 0)
    size, pos = read_varint(mh, pos)
    digest = mh[pos:]
    if len(digest) != size:
        raise ValueError(f"multihash declares {size} digest bytes but carries {len(digest)}")
    return code, digest


def multihash_matches(mh: bytes, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` hashes to the multihash ``mh`` (blake3 or sha2-256).

    Raises ``ValueError`` when ``mh`` is malformed or names another hash.
    """
    code, digest = split_multihash(mh)
    return digest_for(code, data)[: len(digest)] == digest and len(digest) > 0
