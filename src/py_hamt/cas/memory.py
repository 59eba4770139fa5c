"""A content-addressed store held in a dict, for tests, demos and caches."""

from __future__ import annotations

from multiformats import CID

from py_hamt.cas.base import Codec, ContentAddressedStore, IPLDKind, check_range, slice_range
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.multihash import blake3_multihash
from py_hamt.errors import BlockNotFoundError

__all__ = ["InMemoryCAS"]

_BLAKE3_PREFIX = b"\x1e\x20"


class InMemoryCAS(ContentAddressedStore):
    """Blocks in a dict, keyed by their blake3 multihash bytes.

    Ids are ``0x1e 0x20`` followed by the 32-byte blake3 digest of the block,
    whatever the codec: the codec is not part of a multihash. Loading an
    unknown id raises :class:`~py_hamt.errors.BlockNotFoundError` (a
    ``KeyError``); an id that is not ``bytes`` raises ``TypeError``.

    The blocks are in :attr:`store`. Nothing is ever evicted.
    """

    def __init__(self) -> None:
        self.store: dict[bytes, bytes] = {}

    async def save(self, data: bytes, codec: Codec) -> bytes:
        """Store ``data`` and return its blake3 multihash (through :meth:`put`,
        so a subclass that overrides ``put`` sees every write)."""
        result = await self.put(data, codec)
        return result.id  # type: ignore[no-any-return]

    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Store ``data``; with blake3 the digest is the id's, hashed once."""
        data = bytes(data)
        client = ContentDigest.of(data, digest)
        key = _BLAKE3_PREFIX + client.value if digest == "blake3" else blake3_multihash(data)
        self.store[key] = data
        return WriteResult(id=key, size=len(data), digest=client)

    async def load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> bytes:
        """Return the block or a byte range of it; see the base class for ranges."""
        if type(id) is not bytes:
            raise TypeError(f"InMemoryCAS ids are bytes, got {type(id).__name__}: {id!r}")
        try:
            data = self.store[id]
        except KeyError:
            raise BlockNotFoundError(id) from None
        if offset is None and length is None and suffix is None:
            return data
        check_range(offset, length, suffix)
        return slice_range(data, offset, length, suffix)

    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        return isinstance(id, bytes) and id in self.store

    def cid_to_id(self, cid: CID) -> bytes:
        """Blocks here are keyed by multihash: the CID's multihash bytes."""
        return bytes(cid.digest)

    def __eq__(self, other: object) -> bool:
        # Two stores holding the same blocks answer every load the same way,
        # which is what equality of (un)pickled stores must mean.
        if not isinstance(other, InMemoryCAS):
            return NotImplemented
        return self is other or self.store == other.store

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InMemoryCAS(<{len(self.store)} blocks>)"
