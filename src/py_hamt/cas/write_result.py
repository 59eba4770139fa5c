"""What a write returns: the id, the size, and a digest of the bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from py_hamt.codec.multihash import HASH_FUNCTIONS
from py_hamt.errors import InvalidArgumentError

__all__ = ["ContentDigest", "DigestAlgorithm", "WriteResult"]

DigestAlgorithm: TypeAlias = Literal["blake3", "sha2-256"]
"""The names in :data:`py_hamt.codec.multihash.HASH_FUNCTIONS`."""


@dataclass(frozen=True, slots=True)
class ContentDigest:
    """A digest of some bytes: the algorithm and its value."""

    algorithm: DigestAlgorithm
    value: bytes

    @classmethod
    def of(
        cls, data: bytes | bytearray | memoryview, algorithm: DigestAlgorithm = "blake3"
    ) -> ContentDigest:
        """Hash ``data`` in one go (the algorithm's full digest length).

        Raises:
            InvalidArgumentError: an algorithm not in ``HASH_FUNCTIONS``.
        """
        fn = HASH_FUNCTIONS.get(algorithm) if isinstance(algorithm, str) else None
        if fn is None:
            raise InvalidArgumentError(
                f"digest algorithm must be one of {sorted(HASH_FUNCTIONS)}, got {algorithm!r}"
            )
        return cls(algorithm, fn.digest(data, fn.size))

    @property
    def multihash_code(self) -> int:
        return HASH_FUNCTIONS[self.algorithm].code

    def hex(self) -> str:
        return self.value.hex()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one write.

    Attributes:
        id: the id written (a CID, or a store's own id).
        size: bytes written.
        digest: a digest of those bytes.
        source: ``"client"`` when py_hamt hashed the bytes itself as they
            went out; ``"native"`` when the digest is the one the backend put
            in the id (the bytes were not seen, e.g. a by-pointer copy).
        echoed: what the backend reported, e.g. Kubo's ``Hash``, ``Name``
            and ``Size``. Where it carries a hash of the same algorithm, it
            was compared with ``digest`` before this result was made.
    """

    id: Any
    size: int
    digest: ContentDigest
    source: Literal["client", "native"] = "client"
    echoed: Mapping[str, Any] = field(default_factory=dict)
