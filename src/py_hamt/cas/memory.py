"""A content-addressed store held in a dict, for tests, demos and caches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from multiformats import CID

from py_hamt import observability
from py_hamt.cas.base import Codec, ContentAddressedStore, IPLDKind, slice_range
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.cids import coerce_cid
from py_hamt.codec.multihash import blake3_multihash
from py_hamt.errors import BlockNotFoundError, InvalidArgumentError, InvalidTypeError

__all__ = ["InMemoryCAS"]

_BLAKE3_PREFIX = b"\x1e\x20"


class InMemoryCAS(ContentAddressedStore):
    """Blocks in a dict, keyed by their blake3 multihash bytes.

    Ids are ``0x1e 0x20`` followed by the 32-byte blake3 digest of the block,
    whatever the codec: the codec is not part of a multihash. Loading an
    unknown id raises :class:`~py_hamt.errors.BlockNotFoundError` (a
    ``KeyError``); an id that is not ``bytes`` raises
    :class:`~py_hamt.errors.InvalidTypeError` (a ``TypeError``).

    The blocks are in :attr:`store`. Nothing is ever evicted.
    """

    def __init__(self) -> None:
        self.store: dict[bytes, bytes] = {}

    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Store ``data``; the id is its blake3 multihash. With a blake3
        ``digest`` the digest is the id's, hashed once.

        Raises:
            InvalidArgumentError: ``codec`` is not ``raw`` or ``dag-cbor``.
        """
        if codec not in ("raw", "dag-cbor"):
            raise InvalidArgumentError(f"codec must be 'raw' or 'dag-cbor', got {codec!r}")
        data = bytes(data)
        client = ContentDigest.of(data, digest)
        key = _BLAKE3_PREFIX + client.value if digest == "blake3" else blake3_multihash(data)
        self.store[key] = data
        if observability.ACTIVE:
            observability.wrote(codec, len(data))
        return WriteResult(id=key, size=len(data), digest=client)

    if TYPE_CHECKING:  # ``save`` is the base class's; only its id type is narrowed here

        async def save(self, data: bytes, codec: Codec) -> bytes: ...

    async def _load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> bytes:
        """The block or a byte range of it (the range checked by ``load``)."""
        if type(id) is not bytes:
            raise InvalidTypeError(f"InMemoryCAS ids are bytes, got {type(id).__name__}: {id!r}")
        try:
            data = self.store[id]
        except KeyError:
            raise BlockNotFoundError(id) from None
        if offset is None and length is None and suffix is None:
            return data
        return slice_range(data, offset, length, suffix)

    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        """Whether a block is held under ``id`` (anything not ``bytes``: no)."""
        return isinstance(id, bytes) and id in self.store

    def cid_to_id(self, cid: CID) -> bytes:
        """Blocks here are keyed by multihash: the CID's multihash bytes.

        Raises:
            InvalidArgumentError: ``cid`` has a truncated digest.
        """
        return bytes(coerce_cid(cid, "cid").digest)

    def __eq__(self, other: object) -> bool:
        # Two stores holding the same blocks answer every load the same way,
        # which is what equality of (un)pickled stores must mean.
        if not isinstance(other, InMemoryCAS):
            return NotImplemented
        return self is other or self.store == other.store

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InMemoryCAS(<{len(self.store)} blocks>)"
