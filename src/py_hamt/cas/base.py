"""The contract every content-addressed store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, TypeAlias

from multiformats import CID

from py_hamt.codec.cids import DAG_CBOR, RAW, make_cid
from py_hamt.codec.multihash import split_multihash
from py_hamt.errors import InvalidArgumentError

__all__ = ["Codec", "ContentAddressedStore", "IPLDKind", "check_range", "slice_range"]

Codec: TypeAlias = Literal["raw", "dag-cbor"]
IPLDKind: TypeAlias = object
"""An id as a store returns it: bytes, a CID, or another hashable IPLD value."""


def check_range(offset: int | None, length: int | None, suffix: int | None) -> None:
    """Reject byte-range arguments that do not describe one range.

    ``offset`` and ``suffix`` are exclusive, and all three are non-negative.
    ``length`` without ``offset`` reads from the start.
    """
    if suffix is not None and (offset is not None or length is not None):
        raise InvalidArgumentError(
            f"suffix={suffix} cannot be combined with offset={offset} or length={length}"
        )
    for name, v in (("offset", offset), ("length", length), ("suffix", suffix)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise InvalidArgumentError(f"{name} must be a non-negative int, got {v!r}")


def slice_range(data: bytes, offset: int | None, length: int | None, suffix: int | None) -> bytes:
    """Apply a validated byte range to ``data``.

    Edges: a range past the end is empty; ``suffix=0`` is empty (not the whole
    value); ``suffix`` larger than the data is the whole value.
    """
    if suffix is not None:
        return data[len(data) - suffix :] if suffix else b""
    if offset is None and length is None:
        return data
    start = offset or 0
    return data[start:] if length is None else data[start : start + length]


class ContentAddressedStore(ABC):
    """Stores blocks by content and returns the id the content hashes to.

    Implementations must be safe for concurrent use from one event loop and
    must not bind themselves to a single loop: zarr drives stores from its own
    loop thread while users call ``asyncio.run`` around them.
    """

    @abstractmethod
    async def save(self, data: bytes, codec: Codec) -> IPLDKind:
        """Store ``data`` and return its id (hashable, immutable, never None)."""

    @abstractmethod
    async def load(
        self,
        id: IPLDKind,  # noqa: A002 - the public name since py-hamt 3.x
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> bytes:
        """Return the block's bytes, or the byte range asked for.

        ``offset`` + ``length`` reads ``data[offset:offset+length]``; ``offset``
        alone reads to the end; ``suffix`` reads the last ``suffix`` bytes, and
        ``suffix=0`` is empty.
        """

    def id_to_cid(self, id: IPLDKind, codec: Codec) -> CID:  # noqa: A002
        """The CID that names block ``id`` saved with ``codec``.

        Structures that must hold CIDs (sharded roots and shards) use this.
        A CID is returned as is; ``bytes`` are taken as a multihash and
        wrapped in a CIDv1 with ``codec``. Anything else is a ``TypeError``.
        """
        if isinstance(id, CID):
            return id
        if isinstance(id, bytes):
            try:
                split_multihash(id)
            except ValueError as exc:
                raise TypeError(f"id {id.hex()} is not a multihash: {exc}") from exc
            return make_cid(DAG_CBOR if codec == "dag-cbor" else RAW, id)
        raise TypeError(f"cannot name id of type {type(id).__name__} with a CID")

    def cid_to_id(self, cid: CID) -> IPLDKind:
        """The id to :meth:`load` the block a CID names (the CID itself by default)."""
        return cid

    async def pin_cid(self, id: IPLDKind, target_rpc: str | None = None) -> None:  # noqa: A002
        """Pin a block and its DAG; a no-op for stores without pinning."""
        return

    async def unpin_cid(self, id: IPLDKind, target_rpc: str | None = None) -> None:  # noqa: A002
        """Unpin a block; a no-op for stores without pinning."""
        return

    async def pin_update(
        self, old_id: IPLDKind, new_id: IPLDKind, target_rpc: str | None = None
    ) -> None:
        """Move a pin from one root to another; a no-op without pinning."""
        return

    async def pin_ls(self, target_rpc: str | None = None) -> list[IPLDKind]:
        """The pinned roots; always empty for stores without pinning."""
        return []
