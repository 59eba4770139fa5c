"""Key hashing for HAMT placement."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import blake3

__all__ = ["HashFn", "blake3_hashfn"]

HashFn: TypeAlias = Callable[[bytes], bytes]


def blake3_hashfn(data: bytes) -> bytes:
    """The 32-byte blake3 digest of ``data``: the default ``hash_fn``.

    At depth ``d`` a key's slot is byte ``d`` of this digest, so a HAMT can be
    at most 32 levels deep.
    """
    return blake3.blake3(data).digest()
