"""Multihash helpers for the two hash functions py_hamt writes and verifies.

A multihash is ``varint(code) || varint(len(digest)) || digest``. Both codes
used here are below 0x80, so each varint is a single byte.

:data:`HASH_FUNCTIONS` is the one table of hash functions: stores, write
results and verification all look names, codes and digest sizes up here.

Digest lengths: a truncated digest is a weaker promise (one byte leaves 256
guesses to forge a block), so a multihash whose digest is shorter than its
hash function's full output is refused wherever a CID is accepted from
outside (:func:`check_digest_size`). Hash functions py_hamt does not
implement need at least :data:`MIN_DIGEST_SIZE` bytes, as Kubo requires; the
``identity`` "hash" holds its data, not a digest, and has no minimum.

Errors are :class:`~py_hamt.errors.InvalidArgumentError` (a ``ValueError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

import blake3

from py_hamt.codec.varint import read_varint
from py_hamt.errors import InvalidArgumentError

__all__ = [
    "BLAKE3",
    "HASH_FUNCTIONS",
    "IDENTITY",
    "MIN_DIGEST_SIZE",
    "SHA2_256",
    "HashFunction",
    "blake3_digest",
    "blake3_multihash",
    "check_digest_size",
    "digest_for",
    "hash_function",
    "multihash_matches",
    "split_multihash",
]

BLAKE3: Final = 0x1E
SHA2_256: Final = 0x12
IDENTITY: Final = 0x00
MIN_DIGEST_SIZE: Final = 20
"""Fewest digest bytes accepted for a hash function py_hamt does not know
(Kubo's limit)."""


def _blake3(data: bytes | bytearray | memoryview, size: int) -> bytes:
    return blake3.blake3(data).digest(length=size)


def _sha2_256(data: bytes | bytearray | memoryview, size: int) -> bytes:
    return hashlib.sha256(data).digest()


class HashFunction(NamedTuple):
    """A hash function py_hamt can write and verify blocks with."""

    name: str
    """Its multicodec name (``"blake3"``, ``"sha2-256"``)."""
    code: int
    """Its multihash code."""
    size: int
    """Its full digest length in bytes; shorter digests are refused."""
    max_size: int
    """The longest digest it can produce (blake3 is extendable)."""
    digest: Callable[[bytes | bytearray | memoryview, int], bytes]
    """``digest(data, size)``: the first ``size`` bytes of the digest."""


HASH_FUNCTIONS: Final[Mapping[str, HashFunction]] = MappingProxyType(
    {
        "blake3": HashFunction("blake3", BLAKE3, 32, 64, _blake3),
        "sha2-256": HashFunction("sha2-256", SHA2_256, 32, 32, _sha2_256),
    }
)
_BY_CODE: Final[Mapping[int, HashFunction]] = MappingProxyType(
    {f.code: f for f in HASH_FUNCTIONS.values()}
)

_BLAKE3_PREFIX: Final = bytes((BLAKE3, 32))


def hash_function(code: int) -> HashFunction:
    """The :class:`HashFunction` with multihash ``code``.

    Raises ``InvalidArgumentError`` for a hash function py_hamt does not implement.
    """
    try:
        return _BY_CODE[code]
    except KeyError:
        raise InvalidArgumentError(
            f"unsupported multihash code 0x{code:x}: only blake3 and sha2-256 are verified"
        ) from None


def blake3_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte blake3 digest of ``data``."""
    return blake3.blake3(data).digest()


def blake3_multihash(data: bytes | bytearray | memoryview) -> bytes:
    """``0x1e 0x20`` followed by the 32-byte blake3 digest of ``data``."""
    return _BLAKE3_PREFIX + blake3.blake3(data).digest()


def digest_for(code: int, data: bytes | bytearray | memoryview, size: int | None = None) -> bytes:
    """The raw digest of ``data`` under multihash ``code``, ``size`` bytes
    long (the function's full length by default; blake3 can give more).

    Raises ``InvalidArgumentError`` for a hash function py_hamt does not implement or a
    size it cannot produce.
    """
    fn = hash_function(code)
    if size is None:
        size = fn.size
    elif not fn.size <= size <= fn.max_size:
        raise InvalidArgumentError(
            f"{fn.name} digests are {fn.size} to {fn.max_size} bytes, not {size}"
        )
    return fn.digest(data, size)


def check_digest_size(code: int, size: int) -> None:
    """Refuse a digest too short (or, for a known function, too long) to trust.

    blake3 and sha2-256 need their full 32 bytes (blake3 may be longer, up to
    64); other hash functions need :data:`MIN_DIGEST_SIZE` bytes; ``identity``
    has no minimum.

    Raises ``InvalidArgumentError`` saying how long the digest is and what is needed.
    """
    fn = _BY_CODE.get(code)
    if fn is not None:
        if size < fn.size:
            raise InvalidArgumentError(
                f"its {fn.name} digest is truncated to {size} bytes ({fn.size} required)"
            )
        if size > fn.max_size:
            raise InvalidArgumentError(
                f"its {fn.name} digest is {size} bytes (at most {fn.max_size})"
            )
    elif code != IDENTITY and size < MIN_DIGEST_SIZE:
        raise InvalidArgumentError(
            f"its digest (hash 0x{code:x}) is {size} bytes ({MIN_DIGEST_SIZE} required)"
        )


def split_multihash(mh: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(code, digest)``.

    Raises ``InvalidArgumentError`` if the declared length does not match the bytes.
    The digest's length is not checked here: see :func:`check_digest_size`.
    """
    code, pos = read_varint(mh, 0)
    size, pos = read_varint(mh, pos)
    digest = mh[pos:]
    if len(digest) != size:
        raise InvalidArgumentError(
            f"multihash declares {size} digest bytes but carries {len(digest)}"
        )
    return code, digest


def multihash_matches(mh: bytes, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` hashes to the multihash ``mh`` (blake3 or sha2-256).

    A truncated digest never matches.

    Raises ``InvalidArgumentError`` when ``mh`` is malformed or names another hash.
    """
    code, digest = split_multihash(mh)
    fn = hash_function(code)
    if not fn.size <= len(digest) <= fn.max_size:
        return False
    return fn.digest(data, len(digest)) == digest
