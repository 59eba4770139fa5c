"""A zarr v3 store whose keys live in a HAMT."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, Store

from py_hamt import observability
from py_hamt.caching import LRUCache, count_one
from py_hamt.cas.base import slice_range
from py_hamt.cas.write_result import WriteResult
from py_hamt.errors import (
    BlockNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    KeyNotFoundError,
    MissingBlockError,
    NotCommittedError,
    ReadOnlyError,
    format_id,
)
from py_hamt.stores.byte_ranges import to_hamt_range
from py_hamt.stores.document_cache import DocumentCache
from py_hamt.stores.key_index import KeyIndex
from py_hamt.stores.prefetch import Prefetcher
from py_hamt.stores.store_mixin import StoreMixin
from py_hamt.trie.hamt import HAMT

__all__ = ["OnWrite", "UnshippedStore", "ZarrHAMTStore", "distributed_client_active"]

OnWrite = Callable[[str, WriteResult], None]

_METADATA_SUFFIX = "zarr.json"

_SCALE_OUT_HINT = (
    "cannot send a ZarrHAMTStore whose HAMT has uncommitted changes to other "
    "processes (plain ds.to_zarr(store) under a dask.distributed Client does): "
    "their writes would be lost. Use py_hamt.dask.to_zarr(ds, store, ...) to write "
    "from distributed workers, or commit first with `await hamt.make_read_only()`"
)


class _UnshippedHAMT:
    """What a store whose HAMT had uncommitted changes holds once pickled
    under ``distributed``: any use raises the error that explains why."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotCommittedError(_SCALE_OUT_HINT)


class UnshippedStore:
    """What a store with changes not yet committed becomes when pickled under
    ``distributed``: any use raises :class:`NotCommittedError` naming
    :func:`py_hamt.dask.to_zarr`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotCommittedError(
            f"cannot send a {self.kind} with changes not yet committed to other processes "
            "(plain ds.to_zarr(store) under a dask.distributed Client does): their writes "
            "would be lost. Use py_hamt.dask.to_zarr(ds, store, ...) to write from workers"
        )


def distributed_client_active() -> bool:
    """Whether dask would run a computation on a ``distributed.Client`` now."""
    if "distributed" not in sys.modules:
        return False
    from dask.base import get_scheduler

    owner = getattr(get_scheduler(), "__self__", None)  # type: ignore[no-untyped-call]
    return type(owner).__module__.split(".", 1)[0] == "distributed"


class ZarrHAMTStore(StoreMixin, Store):
    """Zarr keys stored verbatim in a :class:`~py_hamt.HAMT`, values as raw bytes.

    Args:
        hamt: a HAMT with ``values_are_bytes=True``.
        read_only: whether this store refuses writes. A writable store needs
            the HAMT in write mode. A read-only store may sit on a HAMT in
            either mode: on one in write mode it is a read-only *view* of the
            data being written, which is what zarr itself asks for when a
            writable store is opened with ``mode="r"``.

    Raises:
        InvalidArgumentError: (a ``ValueError``) ``values_are_bytes`` is
            false, or a writable store over a read-only HAMT.

    ``on_write(key, result)`` is called with the :class:`WriteResult` of
    every value written (the stored bytes' digest).

    Edges: a missing key reads as ``None``; deleting a missing key is not an
    error; byte ranges past the end read as empty. ``zarr.json`` documents
    are cached after their first read while the HAMT is read-only (the cache
    is dropped whenever the HAMT's committed root changes).

    A key the HAMT holds whose block is gone from the store (its value, or a
    node on its path) is never read as missing: any method that needs that
    block raises :class:`~py_hamt.errors.MissingBlockError` naming the key
    and the block (``exists`` needs only the nodes, so a key whose value
    block alone is gone still exists; reading it raises).
    It is deliberately not a ``KeyError``: zarr takes a ``KeyError`` from a
    store to mean "not there" and would open the dataset without that
    variable.
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    #: Whether a byte range can be read from the stored bytes directly. When
    #: false, the whole value is read, decoded, and then sliced.
    ranges_on_stored_bytes: bool = True

    def __init__(
        self, hamt: HAMT, read_only: bool = False, *, on_write: OnWrite | None = None
    ) -> None:
        if not isinstance(hamt, HAMT):
            raise InvalidArgumentError(f"hamt must be a HAMT, got {type(hamt).__name__}")
        if not hamt.values_are_bytes:
            raise InvalidArgumentError(
                "ZarrHAMTStore needs a HAMT built with values_are_bytes=True"
            )
        if not read_only and hamt.read_only:
            raise InvalidArgumentError(
                "a writable ZarrHAMTStore needs the HAMT in write mode: pass read_only=True, "
                "or call `await hamt.enable_write()` first"
            )
        super().__init__(read_only=read_only)
        self._hamt = hamt
        self.on_write = on_write
        self._metadata = DocumentCache()
        self._metadata_root: object = None
        self._prefetch: tuple[object, Prefetcher] | None = None
        self._token = uuid.uuid4().hex

    @property
    def hamt(self) -> HAMT:
        """The HAMT behind this store."""
        return self._hamt

    def with_read_only(self, read_only: bool = False) -> ZarrHAMTStore:
        """A new store over the same HAMT with another ``read_only`` flag."""
        return type(self)(self._hamt, read_only=read_only, on_write=self.on_write)

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("store was opened in read-only mode and does not support writing")

    # --------------------------------------------------------------- identity
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ZarrHAMTStore)
            and type(other) is type(self)
            and self.read_only == other.read_only
            and self._hamt == other._hamt
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._hamt!r}, read_only={self.read_only})"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        """A cheap token, so dask never pickles the HAMT or its store.

        A read-only HAMT's committed root names its content exactly; a HAMT
        being written gets a random token fixed for this store object.
        """
        name = type(self).__name__
        if self.__dict__.get("_hamt") is None:  # a ``_codec_only`` copy
            return (name, "codec-only", self._token)
        root = self._committed_root()
        if root is None:
            return (name, "uncommitted", self._token)
        return (name, format_id(root), str(self.read_only))

    def _codec_only(self) -> ZarrHAMTStore:
        """A copy of this store without its HAMT, which only encodes values
        (``_encode``/``_decode``): what the workers of
        :func:`py_hamt.dask.to_zarr` need to store chunks exactly as this
        store would (for the encrypted store: with its key and header). It
        pickles whatever state the HAMT is in; any other method fails on it.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(_hamt=None, on_write=None, _metadata=DocumentCache())
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the store and its committed HAMT (see ``HAMT.__getstate__``).

        A HAMT with changes not yet committed cannot travel: a copy would
        write into a fork of the buffer that is then lost, which is what
        plain ``ds.to_zarr(store)`` under a ``distributed.Client`` would do.
        With a ``distributed.Client`` active (which wraps any pickling error
        into "Could not serialize ..."), such a store pickles as a stand-in
        whose every use raises :class:`NotCommittedError` naming
        :func:`py_hamt.dask.to_zarr`, so that error is what the caller of
        the computation sees.

        Raises:
            NotCommittedError: the HAMT has changes not yet committed (and
                no ``distributed.Client`` is active); the message names
                :func:`py_hamt.dask.to_zarr`, which writes from workers.
        """
        state = self.__dict__.copy()
        hamt: HAMT | _UnshippedHAMT | None = state.get("_hamt")
        if isinstance(hamt, HAMT) and hamt._committed_root_id() is None:
            if not distributed_client_active():
                raise NotCommittedError(_SCALE_OUT_HINT)
            state["_hamt"] = _UnshippedHAMT()
        state["_metadata"] = DocumentCache(self._metadata.max_bytes)
        state["_metadata_root"] = None
        state["_prefetch"] = None  # tasks of this process's event loop
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _committed_root(self) -> object:
        """The committed root if the HAMT is read-only, else ``None``."""
        if not self._hamt.read_only:
            return None
        return self._hamt._committed_root_id()

    # ----------------------------------------------------- value encoding hooks
    def _encode(self, key: str, data: bytes) -> bytes:
        """The bytes stored for ``data`` under ``key`` (as is, here)."""
        return data

    def _decode(self, key: str, stored: bytes) -> bytes:
        """The value behind the stored bytes of ``key`` (as is, here)."""
        return stored

    # ------------------------------------------------------------------ reads
    def _cached_metadata(self, key: str) -> bytes | None:
        root = self._committed_root()
        if root is None:
            return None
        if root != self._metadata_root:
            self._metadata.clear()
            self._metadata_root = root
            return None
        return self._metadata.get(key)

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """The value under ``key`` (or a byte range of it), ``None`` if absent.

        With :mod:`~py_hamt.observability` on, a ``py_hamt.hamt_store.get``
        span, counted in ``py_hamt.zarr.get.requests`` and timed."""
        if observability.ACTIVE:
            return await observability.timed(
                "py_hamt.hamt_store.get",
                "py_hamt.zarr.get.requests",
                "py_hamt.zarr.get.duration",
                lambda: self._get(key, prototype, byte_range),
                {"py_hamt.store": "hamt"},
            )
        return await self._get(key, prototype, byte_range)

    async def _get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None
    ) -> Buffer | None:
        offset, length, suffix = to_hamt_range(byte_range)
        is_metadata = byte_range is None and key.endswith(_METADATA_SUFFIX)
        if is_metadata:
            cached = self._cached_metadata(key)
            if cached is not None:
                return prototype.buffer.from_bytes(cached)
        elif byte_range is None and self.read_only:
            prefetcher = self._prefetcher()
            if prefetcher is not None:
                hit, value = await prefetcher.take(key)
                if hit:
                    return None if value is None else prototype.buffer.from_bytes(value)
        try:
            if byte_range is not None and self.ranges_on_stored_bytes:
                data = await self._hamt.get(key, offset=offset, length=length, suffix=suffix)
            else:
                data = self._decode(key, await self._hamt.get(key))
                if byte_range is not None:
                    data = slice_range(data, offset, length, suffix)
        except KeyNotFoundError:
            return None
        except BlockNotFoundError as exc:
            raise _missing(exc, key) from exc
        if is_metadata and self._committed_root() is not None:
            self._metadata.put(key, data)
            prefetcher = self._prefetcher() if self.read_only else None
            if prefetcher is not None:
                prefetcher.saw_document(key, data)
        return prototype.buffer.from_bytes(data)

    def _prefetcher(self) -> Prefetcher | None:
        """The prefetcher of the committed root (``None`` in write mode)."""
        root = self._committed_root()
        if root is None:
            return None
        if self._prefetch is None or self._prefetch[0] != root:
            self._prefetch = (root, Prefetcher(self._read_whole))
        return self._prefetch[1]

    async def _read_whole(self, key: str) -> bytes | None:
        """An uncached read for the prefetcher: the value, ``None`` if absent."""
        try:
            return self._decode(key, await self._hamt.get(key))
        except KeyNotFoundError:
            return None

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is present."""
        try:
            return await self._hamt.has(key)
        except BlockNotFoundError as exc:
            raise _missing(exc, key) from exc

    # ----------------------------------------------------------------- writes
    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key``; raises ``ReadOnlyError`` if read-only."""
        self._check_writable()
        if not isinstance(value, Buffer):
            raise InvalidTypeError(
                f"ZarrHAMTStore.set expects a zarr Buffer for key {key!r}, "
                f"got {type(value).__name__}"
            )
        try:
            written = await self._hamt.set(key, self._encode(key, value.to_bytes()))
        except BlockNotFoundError as exc:
            raise _missing(exc, key) from exc
        if self.on_write is not None:
            self.on_write(key, written)

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        self._check_writable()
        try:
            with contextlib.suppress(KeyNotFoundError):
                await self._hamt.delete(key)
        except BlockNotFoundError as exc:
            raise _missing(exc, key) from exc

    # ---------------------------------------------------------------- listing
    async def _listing(
        self, kind: str, prefix: str, names: Callable[[list[str]], Iterable[str]]
    ) -> AsyncIterator[str]:
        """Names from one walk over the keys (``names(batch)`` are the names
        a node's worth of keys give in the listing, repeats allowed), each
        once, streamed as found.

        On a committed root the walk also keeps what makes the next listing
        free: the whole key set as a :class:`KeyIndex` while it has at most
        ``MAX_INDEXED_KEYS`` keys, else this listing's names (both in
        bounded, process-wide caches). So memory never grows with the key
        count past that bound: a larger key set streams each new listing
        from a walk.
        """
        root = self._committed_root()
        if root is not None:
            index = _KEY_INDEXES.get(root)
            cached: Sequence[str] | None = (
                index.listing(kind, prefix) if index is not None else None
            )
            if cached is None:
                cached = _LISTINGS.get((root, kind, prefix))
            if cached is not None:
                for listed in cached:
                    yield listed
                return
        seen: dict[str, None] = {}
        every: list[str] | None = [] if root is not None else None
        async for batch in self._key_batches():
            if every is not None:
                every.extend(batch)
                if len(every) > MAX_INDEXED_KEYS:
                    every = None
            for name in names(batch):
                if name not in seen:
                    seen[name] = None
                    yield name
        if root is not None:
            if every is not None:
                _KEY_INDEXES.put(root, KeyIndex(every))
            else:
                _LISTINGS.put((root, kind, prefix), tuple(seen))

    async def _key_batches(self) -> AsyncIterator[list[str]]:
        """The HAMT's keys, a node's worth at a time; a missing node is a
        ``MissingBlockError``."""
        try:
            async for batch in self._hamt.key_batches():
                yield batch
        except BlockNotFoundError as exc:
            raise _missing(exc, None) from exc

    async def list(self) -> AsyncIterator[str]:
        """Every key, in HAMT order (not sorted)."""
        async for batch in self._key_batches():
            for key in batch:
                yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (``""`` lists all), streamed
        from one walk; on a committed root, a repeat is served from memory
        (listings are kept up to a bound on the names held)."""

        def matching(batch: list[str]) -> list[str]:
            return [key for key in batch if key.startswith(prefix)]

        async for key in self._listing("prefix", prefix, matching):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """The names directly under ``prefix``, each once, streamed from one
        walk over the keys (never holding more than the names found).

        ``"a"`` and ``"a/"`` are the same directory; ``""`` is the root. On
        a committed root, a repeat is served from memory.
        """
        folder = prefix.rstrip("/")
        if folder:
            folder += "/"
        cut = len(folder)

        def names_in(batch: list[str]) -> dict[str, None]:
            if folder:
                batch = [key for key in batch if key.startswith(folder)]
            return dict.fromkeys([key[cut:].partition("/")[0] for key in batch])

        async for name in self._listing("dir", folder, names_in):
            yield name


def _missing(exc: BlockNotFoundError, key: str | None) -> MissingBlockError:
    """The HAMT's ``BlockNotFoundError`` (a ``KeyError``) as an error zarr
    cannot mistake for a missing key."""
    message = str(exc)  # the HAMT's message names the id and the key that needed it
    if key is None:
        message = f"cannot list the keys: {message}"
    elif repr(key) not in message:
        message = f"key {key!r}: {message}"
    return MissingBlockError(message, exc.block_id, key)


MAX_INDEXED_KEYS = 2**18
"""Key sets up to this size are indexed whole on their first listing."""

# Key indexes by root id, for the 8 most recent roots (count-bounded;
# process-wide and locked: a root's key set never changes).
_KEY_INDEXES: LRUCache[object, KeyIndex] = LRUCache(8, count_one)


# Completed listings of larger committed roots, by (root, kind, prefix): a root's
# key set never changes. Bounded by the number of names held in all of
# them (about 100 bytes each); process-wide and locked.
def _names_held(names: tuple[str, ...]) -> int:
    return len(names) + 1


_LISTINGS: LRUCache[tuple[object, str, str], tuple[str, ...]] = LRUCache(2**18, _names_held)
