"""ShardedZarrStore: the zarr v3 ``Store`` over a sharded dataset. A thin
adapter: every call is handed to the :class:`Session` it holds."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from multiformats import CID
from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, Store

from py_hamt import observability
from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.codec.cids import coerce_cid, freeze_id, thaw_id
from py_hamt.errors import (
    BlockNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    MissingBlockError,
    NotCommittedError,
    ReadOnlyError,
)
from py_hamt.stores.byte_ranges import to_hamt_range
from py_hamt.stores.hamt_store import UnshippedStore, distributed_client_active
from py_hamt.stores.prefetch import Prefetcher
from py_hamt.stores.sharded import listing
from py_hamt.stores.sharded.editing import EditingMixin
from py_hamt.stores.sharded.layout import Manifest
from py_hamt.stores.sharded.opening import (
    DEFAULT_MAX_CACHE_MEMORY_BYTES,
    READ_MODES,
    ShardedZarrV1DeprecationWarning,
    new_manifest,
)
from py_hamt.stores.sharded.routing import METADATA_SUFFIXES
from py_hamt.stores.sharded.session import Session, ShardReadMode
from py_hamt.stores.sharded.shard_cache import ShardCache
from py_hamt.stores.store_mixin import StoreMixin

__all__ = ["DEFAULT_MAX_CACHE_MEMORY_BYTES", "ShardedZarrStore", "ShardedZarrV1DeprecationWarning"]


def _missing(exc: KeyError, key: str) -> MissingBlockError:
    block = (
        exc.block_id if isinstance(exc, BlockNotFoundError) else exc.args[0] if exc.args else None
    )
    return MissingBlockError(f"key {key!r}: no block {block} in the store", block, key)


def _unpickle(
    cas: ContentAddressedStore, read_only: bool, root: object, max_bytes: int, mode: str
) -> ShardedZarrStore:
    return ShardedZarrStore(
        cas,
        read_only,
        coerce_cid(thaw_id(root), "root_cid"),
        max_cache_memory_bytes=max_bytes,
        shard_read_mode=mode,  # type: ignore[arg-type]
    )


class ShardedZarrStore(EditingMixin, StoreMixin, Store):
    """Zarr v3 keys over a CAS, with chunk CIDs packed into shards.

    Create with ``await ShardedZarrStore.open(...)``; commit with
    ``await store.flush()``, which writes changed shards, then the root, and
    returns the root CID.

    New stores write ``sharded_zarr_v2``, py-hamt 3.6's layout with one chunk
    index per array, learned from each array's ``zarr.json``; every other key
    lives in the root's key map, so the store answers every key as a plain
    key-value store would. Existing roots keep their layout when written.

    Args (of :meth:`open`):
        cas: where chunks, shards and roots are stored.
        read_only: refuse writes. A read-only open needs ``root_cid``.
        root_cid: an existing root (a CID or its text).
        array_shape, chunk_shape: seed an index for ``primary_array_path``
            (v2), or the grid of a v1 store (required there).
        chunks_per_shard: shard size of every new index (> 0; a new store needs it).
        max_cache_memory_bytes: bound on shards held in memory. Clean shards
            are evicted least recently used first; changed shards are written
            out early when they alone pass the bound.
        manifest_version: ``None`` or ``"sharded_zarr_v2"`` for v2;
            ``"sharded_zarr_v1"`` for readers older than py-hamt 3.6: one
            gridded data array (a second raises), with a
            :class:`ShardedZarrV1DeprecationWarning`.
        primary_array_path: the array that owns a v1 grid (else the first
            data array written), or the path a v2 seed index is for.
        shard_read_mode: how a read-only store resolves a chunk whose shard
            is not cached: ``"full"`` decodes and caches the shard;
            ``"sparse"`` fetches it for that chunk alone and caches nothing;
            ``"auto"`` is sparse until any one shard has been read 256 times
            (or a quarter of its entries, if fewer, at least 8), then full for
            good. Every mode verifies whole shard blocks.

    Raises:
        InvalidArgumentError: missing or inconsistent arguments.
        MalformedNodeError: ``root_cid`` is not a sharded root.
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(
        self,
        cas: ContentAddressedStore,
        read_only: bool,
        root_cid: CID | str | None = None,
        *,
        array_shape: Sequence[int] | None = None,
        chunk_shape: Sequence[int] | None = None,
        chunks_per_shard: int | None = None,
        max_cache_memory_bytes: int = DEFAULT_MAX_CACHE_MEMORY_BYTES,
        manifest_version: str | None = None,
        primary_array_path: str = "",
        shard_read_mode: ShardReadMode = "auto",
        session: Session | None = None,
    ) -> None:
        super().__init__(read_only=read_only)
        if session is not None:
            self._session = session
            return
        if not isinstance(cas, ContentAddressedStore):
            raise InvalidTypeError(f"cas must be a ContentAddressedStore, got {type(cas).__name__}")
        if not isinstance(max_cache_memory_bytes, int) or max_cache_memory_bytes < 0:
            raise InvalidArgumentError(
                f"max_cache_memory_bytes must be an int >= 0, got {max_cache_memory_bytes!r}"
            )
        if shard_read_mode not in READ_MODES:
            raise InvalidArgumentError(
                f"shard_read_mode must be one of {READ_MODES}, got {shard_read_mode!r}"
            )
        self._session = Session(cas, ShardCache(max_cache_memory_bytes), shard_read_mode)
        if root_cid is not None:
            self._session.root_cid = coerce_cid(root_cid, "root_cid")
            return
        if read_only:
            raise InvalidArgumentError("a read-only ShardedZarrStore needs root_cid")
        self._session.manifest = new_manifest(
            manifest_version, array_shape, chunk_shape, chunks_per_shard, primary_array_path
        )
        self._session.dirty_root = True

    @classmethod
    async def open(
        cls,
        cas: ContentAddressedStore,
        read_only: bool,
        root_cid: CID | str | None = None,
        *,
        array_shape: Sequence[int] | None = None,
        chunk_shape: Sequence[int] | None = None,
        chunks_per_shard: int | None = None,
        max_cache_memory_bytes: int = DEFAULT_MAX_CACHE_MEMORY_BYTES,
        manifest_version: str | None = None,
        primary_array_path: str = "",
        shard_read_mode: ShardReadMode = "auto",
    ) -> ShardedZarrStore:
        """Open an existing root or start a new store; loads the root now."""
        store = cls(
            cas,
            read_only,
            root_cid,
            array_shape=array_shape,
            chunk_shape=chunk_shape,
            chunks_per_shard=chunks_per_shard,
            max_cache_memory_bytes=max_cache_memory_bytes,
            manifest_version=manifest_version,
            primary_array_path=primary_array_path,
            shard_read_mode=shard_read_mode,
        )
        await store._open()
        manifest = await store._session.load_manifest()
        if manifest.is_v1 and not read_only and root_cid is not None:
            warnings.warn(
                f"root {root_cid} is sharded_zarr_v1 and stays v1 when written; "
                "migrate_v1_to_v2() converts it",
                ShardedZarrV1DeprecationWarning,
                stacklevel=2,
            )
        return store

    def with_read_only(self, read_only: bool = False) -> ShardedZarrStore:
        """A view of the same store (shared shards and changes) with another flag."""
        return type(self)(self._session.cas, read_only, session=self._session)

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("store was opened in read-only mode and does not support writing")

    # --------------------------------------------------------------- identity
    @property
    def cas(self) -> ContentAddressedStore:
        return self._session.cas

    async def _manifest(self) -> Manifest:
        """The root in memory (for tools in this package: ``py-hamt info``, tests)."""
        return await self._session.load_manifest()

    @property
    def root_cid(self) -> CID | None:
        """The root written by the last :meth:`flush` (or opened), if any."""
        return self._session.root_cid

    @property
    def manifest_version(self) -> str | None:
        """``"sharded_zarr_v1"`` or ``"sharded_zarr_v2"`` once the root is loaded."""
        manifest = self._session.manifest
        return None if manifest is None else manifest.version

    @property
    def shard_read_mode(self) -> ShardReadMode:
        return self._session.read_mode

    @property
    def last_commit(self) -> WriteResult | None:
        """The root block's :class:`WriteResult` from the last :meth:`flush`."""
        return self._session.last_commit

    @property
    def on_write(self) -> Callable[[str, WriteResult], None] | None:
        """Called as ``on_write(key, result)`` for every value :meth:`set` writes."""
        return self._session.on_write

    @on_write.setter
    def on_write(self, callback: Callable[[str, WriteResult], None] | None) -> None:
        self._session.on_write = callback

    @property
    def max_cache_memory_bytes(self) -> int:
        return self._session.cache.max_bytes

    @property
    def cache_bytes(self) -> int:
        """Bytes of shards held in memory now."""
        return self._session.cache.nbytes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardedZarrStore) or type(other) is not type(self):
            return False
        mine, theirs = self._session, other._session
        if mine is theirs:
            return self.read_only == other.read_only
        return (
            self.read_only == other.read_only
            and mine.committed
            and theirs.committed
            and mine.root_cid == theirs.root_cid
            and mine.cas == theirs.cas
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        root = self._session.root_cid
        shown = str(root) if root is not None else "<new>"
        return f"ShardedZarrStore(root={shown}, read_only={self.read_only})"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        session = self._session
        if not session.committed:
            return ("ShardedZarrStore", "uncommitted", str(id(session)))
        return ("ShardedZarrStore", str(session.root_cid), str(self.read_only))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the committed root: (cas, read_only, root CID, cache bound, read mode).

        Raises:
            NotCommittedError: there are changes not yet flushed.
        """
        session = self._session
        if not session.committed:
            if distributed_client_active():
                # distributed would bury any pickling error under "Could not
                # serialize": ship a stand-in whose use names the way out.
                return (UnshippedStore, ("ShardedZarrStore",))
            raise NotCommittedError(
                "cannot pickle a ShardedZarrStore with unflushed changes: call flush() "
                "first, or write with py_hamt.dask.to_zarr(ds, store)"
            )
        return (
            _unpickle,
            (
                session.cas,
                self.read_only,
                freeze_id(session.root_cid),
                session.cache.max_bytes,
                session.read_mode,
            ),
        )

    # ------------------------------------------------------------------ reads
    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """The value under ``key`` (or a byte range), ``None`` if absent.

        Raises:
            AmbiguousLayoutError: the root cannot say whose chunk ``key`` is.
            MissingBlockError: ``key`` is there but a block it needs (root,
                shard or value) is not; never read as a missing key, which
                zarr would take as "no such variable".
            IntegrityError: a block does not match its CID.
        """
        try:
            if observability.ACTIVE:
                return await observability.timed(
                    "py_hamt.sharded_store.get",
                    "py_hamt.zarr.get.requests",
                    "py_hamt.zarr.get.duration",
                    lambda: self._get(key, prototype, byte_range),
                    {"py_hamt.store": "sharded"},
                )
            return await self._get(key, prototype, byte_range)
        except KeyError as exc:  # BlockNotFoundError, or a plain one from a CAS
            raise _missing(exc, key) from exc

    async def _get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None
    ) -> Buffer | None:
        offset, length, suffix = to_hamt_range(byte_range)
        session = self._session
        is_document = byte_range is None and key.endswith(METADATA_SUFFIXES)
        committed = self.read_only and not session.dirty_root
        if committed and byte_range is None and not is_document:
            hit, value = await self._prefetcher().take(key)
            if hit:
                return None if value is None else prototype.buffer.from_bytes(value)
        if is_document and committed:
            cached = session.documents.get(key)
            if cached is not None:
                return prototype.buffer.from_bytes(cached)
        cid = await session.lookup(key, sparse_ok=self.read_only)
        if cid is None:
            return None
        data = await session.cas.load(
            session.cas.cid_to_id(cid), offset=offset, length=length, suffix=suffix
        )
        if is_document and committed:
            session.documents.put(key, data)
            self._prefetcher().saw_document(key, data)
        return prototype.buffer.from_bytes(data)

    def _prefetcher(self) -> Prefetcher:
        session = self._session
        if session.prefetcher is None:
            session.prefetcher = Prefetcher(self._read_for_prefetch)
        return session.prefetcher

    async def _read_for_prefetch(self, key: str) -> bytes | None:
        session = self._session
        cid = await session.lookup(key, sparse_ok=True)
        return None if cid is None else await session.cas.load(session.cas.cid_to_id(cid))

    async def exists(self, key: str) -> bool:
        try:
            return await self._session.lookup(key) is not None
        except KeyError as exc:  # BlockNotFoundError, or a plain one from a CAS
            raise _missing(exc, key) from exc

    # ----------------------------------------------------------------- writes
    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key`` (the bytes as a raw block)."""
        self._check_writable()
        if not isinstance(value, Buffer):
            raise InvalidTypeError(
                f"ShardedZarrStore.set expects a zarr Buffer for {key!r}, "
                f"got {type(value).__name__}"
            )
        data = value.to_bytes()
        cas = self._session.cas
        written = await cas.put(data, "raw")
        self._check_writable()
        cid = cas.id_to_cid(written.id, "raw")
        await self._session.put(key, cid, data if key.endswith(METADATA_SUFFIXES) else None)
        if self._session.on_write is not None:
            self._session.on_write(key, written)

    async def set_pointer(self, key: str, pointer: CID | str) -> None:
        """Point ``key`` at an existing block without copying it.

        For a metadata key the document is read, to learn the array's grid.
        """
        self._check_writable()
        cid = coerce_cid(pointer, "pointer")
        document = None
        if key.endswith(METADATA_SUFFIXES):
            document = await self._session.cas.load(self._session.cas.cid_to_id(cid))
        await self._session.put(key, cid, document)

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        self._check_writable()
        await self._session.delete(key)

    async def flush(self) -> str:
        """Write changed shards, then the root; return the root CID as text.

        Nothing changed: the current root is returned without writing.
        """
        return str(await self._session.commit())

    # ---------------------------------------------------------------- listing
    async def list(self) -> AsyncIterator[str]:
        """Every key: the key map, then each array's chunks."""
        async for key in listing.list_keys(self._session):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        async for key in listing.list_prefix(self._session, prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        async for key in listing.list_dir(self._session, prefix):
            yield key
