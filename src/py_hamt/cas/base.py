"""The contract every content-addressed store implements.

A store implements two methods: :meth:`~ContentAddressedStore.put` (the one
write) and :meth:`~ContentAddressedStore._load` (the one read). The public
:meth:`~ContentAddressedStore.save` and :meth:`~ContentAddressedStore.load`
are fixed wrappers here: ``save`` is ``put`` returning only the id, and
``load`` checks its byte-range arguments once, for every store, before the
store's ``_load`` sees them.

Stores written for py-hamt 3.x implement ``save`` and ``load`` instead; such
a class is adapted when it is defined (``put`` is built over its ``save``,
``_load`` over its ``load``), so it keeps working unchanged.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeAlias

from multiformats import CID

from py_hamt import observability
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.cids import DAG_CBOR, RAW, coerce_cid, make_cid
from py_hamt.codec.multihash import check_digest_size, hash_function, split_multihash
from py_hamt.errors import (
    IntegrityError,
    InvalidArgumentError,
    InvalidTypeError,
    format_id,
)

__all__ = [
    "Codec",
    "ContentAddressedStore",
    "IPLDKind",
    "check_echo",
    "check_range",
    "slice_range",
    "verify_block",
]

Codec: TypeAlias = Literal["raw", "dag-cbor"]
IPLDKind: TypeAlias = object
"""An id as a store returns it: bytes, a CID, or another hashable IPLD value."""


def check_range(offset: int | None, length: int | None, suffix: int | None) -> None:
    """Reject byte-range arguments that do not describe one range.

    ``offset`` and ``suffix`` are exclusive, and all three are non-negative
    ints (``bool`` is refused). ``length`` without ``offset`` reads from the
    start. :meth:`ContentAddressedStore.load` calls this for every store.

    Raises:
        InvalidArgumentError: naming the argument at fault.
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


def _multihash_of(block_id: object) -> bytes | None:
    if isinstance(block_id, CID):
        return bytes(block_id.digest)
    if isinstance(block_id, bytes):
        return block_id
    return None


def check_echo(block_id: object, client: ContentDigest) -> None:
    """Compare a client digest with the multihash a backend put in the id.

    Nothing to compare (another algorithm, a multi-block dag-pb root, an id
    without a multihash) passes; a different value raises IntegrityError.
    """
    if isinstance(block_id, CID) and block_id.codec.name == "dag-pb":
        return
    mh = _multihash_of(block_id)
    if mh is None:
        return
    try:
        code, echoed = split_multihash(mh)
    except ValueError:
        return
    if code == client.multihash_code and echoed != client.value[: len(echoed)]:
        raise IntegrityError(
            f"the store named the block {format_id(block_id)}, but the bytes sent hash "
            f"to {client}: it did not store what was sent",
            block_id,
        )


def verify_block(cid: CID, data: bytes) -> ContentDigest:
    """Check ``data`` against ``cid``'s multihash; return that digest (the
    hash function's standard length).

    Raises:
        IntegrityError: a mismatch, a truncated digest (which would prove
            little), or a hash function py_hamt cannot check; the message
            names the CID.
    """
    try:
        code, expected = split_multihash(bytes(cid.digest))
        check_digest_size(code, len(expected))
        fn = hash_function(code)
    except ValueError as exc:
        raise IntegrityError(f"cannot verify block {cid}: {exc}", cid) from exc
    actual = fn.digest(data, len(expected))
    if actual != expected:
        if observability.ACTIVE:
            observability.add(
                "py_hamt.integrity.failures", 1, {"py_hamt.cid.codec": cid.codec.name}
            )
        raise IntegrityError(f"{len(data)} bytes do not hash to {cid}", cid)
    algorithm: DigestAlgorithm = "blake3" if fn.name == "blake3" else "sha2-256"
    return ContentDigest(algorithm, actual[: fn.size])


@contextlib.asynccontextmanager
async def _no_batch() -> AsyncIterator[None]:
    """:meth:`ContentAddressedStore.write_batch` for stores with nothing to defer."""
    yield


async def _put_via_save(
    self: ContentAddressedStore,
    data: bytes,
    codec: Codec,
    *,
    digest: DigestAlgorithm = "blake3",
) -> WriteResult:
    """``put`` for a py-hamt 3.x store that implements ``save``.

    The digest is computed here, over the bytes handed to ``save``. Where the
    id carries a multihash of the same algorithm and the block is a single
    block, the two must agree, or :class:`~py_hamt.errors.IntegrityError` is
    raised.
    """
    data = bytes(data)
    client = ContentDigest.of(data, digest)
    block_id = await self.save(data, codec)
    check_echo(block_id, client)
    return WriteResult(id=block_id, size=len(data), digest=client)


async def _load_via_load(
    self: ContentAddressedStore,
    id: IPLDKind,  # noqa: A002
    offset: int | None,
    length: int | None,
    suffix: int | None,
) -> bytes:
    """``_load`` for a py-hamt 3.x store that implements ``load``."""
    return await self.load(id, offset, length, suffix)


class ContentAddressedStore(ABC):
    """Stores blocks by content and returns the id the content hashes to.

    Subclasses implement :meth:`put` and :meth:`_load` (see the module
    docstring); :meth:`save` and :meth:`load` are not meant to be overridden.

    Implementations must be safe for concurrent use from one event loop and
    must not bind themselves to a single loop: zarr drives stores from its own
    loop thread while users call ``asyncio.run`` around them.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A py-hamt 3.x store defines save/load; build the new hooks over them
        # (before ABCMeta decides which methods are still abstract).
        base = ContentAddressedStore
        if "save" in cls.__dict__ and cls.put is base.put:
            cls.put = _put_via_save  # type: ignore[method-assign]
        if "load" in cls.__dict__ and cls._load is base._load:
            cls._load = _load_via_load  # type: ignore[method-assign]

    @abstractmethod
    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Store ``data`` and return a :class:`WriteResult`: its id (hashable,
        immutable, never None), its size and a client ``digest`` of the bytes
        handed to the backend.

        The one write every other write goes through. Where a backend's id
        carries a multihash of the ``digest`` algorithm, the two must agree,
        or :class:`~py_hamt.errors.IntegrityError` is raised and nothing is
        returned.
        """

    async def save(self, data: bytes, codec: Codec) -> IPLDKind:
        """Store ``data`` and return its id: :meth:`put`, without the result."""
        result = await self.put(data, codec)
        return result.id

    async def load(
        self,
        id: IPLDKind,  # noqa: A002 - the public name since py-hamt 3.x
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> bytes:
        """Return the block's bytes, or the byte range asked for.

        ``offset`` + ``length`` reads ``data[offset:offset+length]``; ``offset``
        alone reads to the end; ``length`` alone reads from the start;
        ``suffix`` reads the last ``suffix`` bytes, and ``suffix=0`` is empty.
        A range past the end is empty.

        Raises:
            InvalidArgumentError: a range that is not one range (checked here,
                once, for every store: see :func:`check_range`).
            BlockNotFoundError: the store has no such block (a ``KeyError``).
        """
        if offset is not None or length is not None or suffix is not None:
            check_range(offset, length, suffix)
        if observability.ACTIVE:
            return await self._observed_load(id, offset, length, suffix)
        return await self._load(id, offset, length, suffix)

    async def _observed_load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> bytes:
        """:meth:`_load` inside a ``py_hamt.cas.load`` span, counted and
        timed; a failure sets ``py_hamt.cas.status`` (``not_found``, the HTTP
        status code, or the exception type) and is re-raised."""
        if not observability.is_enabled():
            return await self._load(id, offset, length, suffix)
        cid = observability.cid_text(id)
        attrs = {
            "py_hamt.cas.has_range": offset is not None or length is not None or suffix is not None
        }
        observability.add("py_hamt.cas.load.requests", 1, attrs)
        observability.cid_loaded(cid)
        status = "ok"
        start = time.perf_counter()
        with observability.span("py_hamt.cas.load", {"py_hamt.cid": cid, **attrs}) as span:
            try:
                data = await self._load(id, offset, length, suffix)
            except BaseException as exc:
                code = getattr(exc, "status_code", None)
                status = (
                    "not_found"
                    if isinstance(exc, KeyError)
                    else str(code)
                    if isinstance(code, int)
                    else type(exc).__name__
                )
                observability.set_attribute(span, "py_hamt.cas.status", status)
                raise
            finally:
                seconds = time.perf_counter() - start
                observability.record(
                    "py_hamt.cas.load.duration", seconds, {**attrs, "py_hamt.cas.status": status}
                )
            observability.set_attribute(span, "py_hamt.cas.status", status)
        observability.add("py_hamt.cas.load.response_bytes", len(data), attrs)
        return data

    @abstractmethod
    async def _load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> bytes:
        """:meth:`load`'s work, with a range already checked by
        :func:`check_range` (all three ``None`` for the whole block)."""

    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        """Whether the store holds the block (without fetching it elsewhere)."""
        try:
            await self.load(id, offset=0, length=0)
        except KeyError:
            return False
        return True

    async def put_block(self, cid: CID, data: bytes) -> WriteResult:
        """Store ``data`` as the block ``cid`` names, after checking that it
        hashes to the CID's multihash. Used by copies and CAR imports.

        Raises:
            InvalidArgumentError: ``cid`` is not a CID or its digest is
                truncated (shorter than its hash function's output).
            IntegrityError: the bytes do not match ``cid``, or the store
                cannot keep a block under its own CID.
        """
        cid = coerce_cid(cid, "cid")
        data = bytes(data)
        client = verify_block(cid, data)
        codec: Codec = "dag-cbor" if cid.codec.name == "dag-cbor" else "raw"
        block_id = (await self.put(data, codec)).id
        if self.id_to_cid(block_id, codec).digest != cid.digest:
            raise IntegrityError(
                f"{type(self).__name__} stored {cid} under {format_id(block_id)}: "
                "it cannot hold blocks under their own CID",
                cid,
            )
        return WriteResult(id=cid, size=len(data), digest=client)

    def write_batch(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A batch of writes whose durability may be deferred to its end.

        ``async with cas.write_batch(): ...``: blocks put inside the batch may
        be made durable only when the batch exits; the batch's exit returns
        only once every block put inside it is durable. Use it for a set of
        blocks that become reachable only through a block written after the
        batch (a HAMT commit writes its nodes in a batch, then the root).

        Blocks put inside a batch are stored, and readable, as soon as their
        ``put`` returns; only their durability (against power loss or an OS
        crash) may wait. This default does nothing special: every ``put`` is
        as durable as the store makes it. :class:`~py_hamt.cas.local.LocalCAS`
        defers its fsyncs to the batch's exit.
        """
        return _no_batch()

    def id_to_cid(self, id: IPLDKind, codec: Codec) -> CID:  # noqa: A002
        """The CID that names block ``id`` saved with ``codec``.

        Structures that must hold CIDs (sharded roots and shards) use this.
        A CID is returned as is; ``bytes`` are taken as a multihash and
        wrapped in a CIDv1 with ``codec``.

        Raises:
            InvalidTypeError: ``id`` is neither (or bytes that are not a
                multihash); also a ``TypeError``.
            InvalidArgumentError: the multihash's digest is truncated.
        """
        if isinstance(id, CID):
            return id
        if isinstance(id, bytes):
            try:
                split_multihash(id)
            except ValueError as exc:
                raise InvalidTypeError(f"id {id.hex()} is not a multihash: {exc}") from exc
            try:
                return make_cid(DAG_CBOR if codec == "dag-cbor" else RAW, id)
            except ValueError as exc:
                raise InvalidArgumentError(f"id {id.hex()}: {exc}") from exc
        raise InvalidTypeError(f"cannot name id of type {type(id).__name__} with a CID")

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
