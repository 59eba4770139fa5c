"""An async HAMT over a content-addressed store: the public class.

Layout and canonical form are those of ``spec/hamt-format.md``: 256-way
nodes, slot ``h[depth]`` of the key's hash, buckets of at most
``max_bucket_size`` keys, and after a delete every child node that holds no
links and at most ``max_bucket_size`` keys collapses back into a bucket. The
root therefore depends only on the key set, never on the order of operations.

The work is split by concern:

* :mod:`py_hamt.trie.node`: nodes in memory, clean (:class:`Node`, packed
  bytes) or being changed (:class:`Draft`);
* :mod:`py_hamt.trie.passes`: the synchronous find, set and delete passes;
* :mod:`py_hamt.trie.loading`: the node cache, shared in-flight loads and
  the retry loop around a pass;
* :mod:`py_hamt.trie.commit`: the write buffer and the commit;
* :mod:`py_hamt.trie.walk`: walks over every node (``keys``, ``len``, ``stats``).

Concurrency model. Tree changes are made in one synchronous pass with no
``await`` inside, so concurrent coroutines on one event loop never see a
half-made change and no lock is needed. When a pass meets a child that is
not in memory it stops, the child is loaded, and the pass starts over. The
HAMT holds no loop-bound state between calls, so it can be driven from
several event loops in turn (zarr's own loop thread, then ``asyncio.run``),
but not from several threads at once (read-only HAMTs may be: the cache is
locked and clean nodes are immutable).

Hostile or damaged input. Every node's shape is checked as it is loaded
(256 entries, buckets of 1 to ``max_bucket_size`` keys, no child linked
twice); a bucket's keys and a link's id are checked when they are decoded.
A lookup follows one path of at most ``len(hash)`` levels. Walks (``keys``,
``len``, ``stats``) visit each block at most once, stop at ``len(hash)``
levels, and check that every bucket key hashes to the place it is in, so
``keys()`` never lists a key that ``get()`` cannot find; any of these
failing is a :class:`MalformedNodeError` naming the node. A block that is
missing is a :class:`BlockNotFoundError` naming its id and the key (or the
node) that needed it, never a missing key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import dag_cbor

from py_hamt import observability
from py_hamt.cas.base import Codec, ContentAddressedStore, IPLDKind, check_range
from py_hamt.cas.write_result import ContentDigest, WriteResult
from py_hamt.codec import dagcbor
from py_hamt.codec.cids import freeze_id, thaw_id
from py_hamt.codec.node import encode_id
from py_hamt.codec.packed_node import NodeContents, decode_id
from py_hamt.errors import (
    BlockNotFoundError,
    HashExhaustedError,
    InvalidArgumentError,
    InvalidTypeError,
    KeyNotFoundError,
    MalformedNodeError,
    NotCommittedError,
    ReadOnlyError,
    format_id,
    one_line,
)
from py_hamt.trie.commit import WriteBuffer, write_draft, write_slot
from py_hamt.trie.hashing import HashFn, blake3_hashfn
from py_hamt.trie.loading import Loader, missing
from py_hamt.trie.node import Draft, Node
from py_hamt.trie.node_cache import shared_node_cache
from py_hamt.trie.passes import Fetch, NeedsLoad, delete_pass, find_pass, set_pass
from py_hamt.trie.pending import PendingSets, Record
from py_hamt.trie.walk import walk

__all__ = [
    "DEFAULT_MAX_BUCKET_SIZE",
    "DEFAULT_MAX_BUFFER_BYTES",
    "DEFAULT_MAX_CACHE_BYTES",
    "HAMT",
]

DEFAULT_MAX_BUCKET_SIZE = 4
DEFAULT_MAX_CACHE_BYTES = 128 * 2**20
"""Read cache bound: clean nodes kept in memory (exact CPython sizes)."""
DEFAULT_MAX_BUFFER_BYTES = 256 * 2**20
"""Write buffer bound: memory held by changed nodes before a flush."""

_VALUE_CODEC: Codec = "raw"

_REFUSED_SET = (HashExhaustedError, BlockNotFoundError, MalformedNodeError)
"""What a waiting set fails with for good, as it would have at once: the set
is dropped. Anything else (a dead gateway, a cancellation) leaves it waiting."""


class HAMT:
    """A hash array mapped trie mapping ``str`` keys to values.

    Use ``await HAMT.build(...)``, which also writes the empty root of a new
    HAMT. The constructor takes the same arguments and does no I/O.

    Args:
        cas: where nodes and values are stored.
        hash_fn: maps key bytes to a hash; one byte is used per level, so the
            hash length bounds the depth. Defaults to 32-byte blake3.
        root_node_id: an existing root to open; ``None`` starts empty.
        read_only: open for reading only. Reads then run concurrently and
            cache decoded nodes.
        max_bucket_size: keys per bucket before a slot becomes a child node;
            must be at least 1.
        values_are_bytes: store values as given (bytes-like only) instead of
            DAG-CBOR-encoding them.
        max_cache_bytes: bound on clean nodes kept in memory, in either mode
            (least recently used evicted first), counted in exact CPython
            sizes: a node costs about its encoded size. Default 128 MiB.
            HAMTs opened read-only on the same store object, with the same
            ``hash_fn``, ``max_bucket_size`` and ``max_cache_bytes``, share
            one such cache (for as long as the store object lives), so a
            root opened again starts warm; a HAMT opened in write mode has
            its own.
        max_buffer_bytes: bound on the memory held in write mode by changed
            nodes and by sets waiting for their path to be loaded (see
            :meth:`set`). Past it, the HAMT applies the waiting sets and
            writes changed nodes (they become clean, cached nodes), so a long
            ETL job never grows without bound. Default 256 MiB.

    Raises:
        InvalidArgumentError: ``max_bucket_size < 1``, or a read-only HAMT
            without a root (``build`` can make one; the constructor cannot).

    ``max_bucket_size`` is not recorded in the format, so a reader must know
    the writer's: a node whose bucket holds more keys than the reader's
    ``max_bucket_size`` is refused as malformed (smaller buckets are fine;
    py-hamt 3.x leaves them after deletes).
    """

    def __init__(
        self,
        cas: ContentAddressedStore,
        hash_fn: HashFn = blake3_hashfn,
        root_node_id: IPLDKind | None = None,
        read_only: bool = False,
        max_bucket_size: int = DEFAULT_MAX_BUCKET_SIZE,
        values_are_bytes: bool = False,
        *,
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    ) -> None:
        for name, limit in (
            ("max_cache_bytes", max_cache_bytes),
            ("max_buffer_bytes", max_buffer_bytes),
        ):
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise InvalidArgumentError(f"{name} must be an int >= 0, got {limit!r}")
        if not isinstance(cas, ContentAddressedStore):
            raise InvalidArgumentError(
                f"cas must be a ContentAddressedStore, got {type(cas).__name__}"
            )
        if (
            not isinstance(max_bucket_size, int)
            or isinstance(max_bucket_size, bool)
            or max_bucket_size < 1
        ):
            raise InvalidArgumentError(
                f"max_bucket_size must be an int >= 1, got {max_bucket_size!r}"
            )
        if not callable(hash_fn):
            raise InvalidArgumentError(f"hash_fn must be callable, got {hash_fn!r}")
        if read_only and root_node_id is None:
            raise InvalidArgumentError(
                "a read-only HAMT needs root_node_id; use `await HAMT.build(...)` to create one"
            )
        self.cas = cas
        self.hash_fn = hash_fn
        self.max_bucket_size = max_bucket_size
        self.values_are_bytes = bool(values_are_bytes)
        self._read_only = bool(read_only)
        self.max_buffer_bytes = max_buffer_bytes
        # Read-only HAMTs on one store object share their node cache (so a
        # root opened again starts warm); a writer keeps its own.
        shared = (
            shared_node_cache(cas, max_bucket_size, hash_fn, max_cache_bytes)
            if self._read_only
            else None
        )
        self._loader = Loader(cas, max_bucket_size, max_cache_bytes, shared)
        self._buffer = WriteBuffer()
        # The root in memory (a clean Node or a Draft), or None when only its
        # id is known (not loaded yet, or dropped by cache_vacate).
        self._root: Node | Draft | None = None
        self._root_id: IPLDKind | None = root_node_id
        if root_node_id is None:
            self._root = self._buffer.new_draft()
        self._flushing = False
        # Whether the write buffer has passed its bound: from then on a set
        # that would thaw a clean node waits too (see _link_value).
        self._spilled = False
        # Sets waiting for nodes not in memory (see trie/pending.py), the
        # drain applying them (done when it ends), and the root slot whose
        # sets that drain is applying now.
        self._pending = PendingSets()
        self._draining: asyncio.Future[None] | None = None
        self._busy_slot: int | None = None
        #: The root block's WriteResult from the last commit, if any here.
        self.last_commit: WriteResult | None = None
        # Levels the hash allows (its length), found on first use.
        self._levels = 0

    @classmethod
    async def build(
        cls,
        cas: ContentAddressedStore,
        hash_fn: HashFn = blake3_hashfn,
        root_node_id: IPLDKind | None = None,
        read_only: bool = False,
        max_bucket_size: int = DEFAULT_MAX_BUCKET_SIZE,
        values_are_bytes: bool = False,
        *,
        max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    ) -> HAMT:
        """Create a HAMT and load (or, with no ``root_node_id``, write) its root.

        Loading the root here means a bad root id fails now, with the id in
        the error, rather than at the first read.
        """
        hamt = cls(
            cas,
            hash_fn=hash_fn,
            root_node_id=root_node_id,
            read_only=False if root_node_id is None else read_only,
            max_bucket_size=max_bucket_size,
            values_are_bytes=values_are_bytes,
            max_cache_bytes=max_cache_bytes,
            max_buffer_bytes=max_buffer_bytes,
        )
        if root_node_id is None:
            await hamt._flush()
            hamt._read_only = bool(read_only)
        else:
            await hamt._get_root()
        return hamt

    # ------------------------------------------------------------------ state
    @property
    def read_only(self) -> bool:
        """Whether the HAMT is in read-only mode."""
        return self._read_only

    @property
    def root_node_id(self) -> IPLDKind:
        """The id of the committed root.

        Raises:
            NotCommittedError: in write mode with changes not yet written;
                call ``make_read_only()`` (or ``cache_vacate()``) first.
        """
        root_id = self._committed_root_id()
        if root_id is None:
            raise NotCommittedError(
                "root_node_id is not valid while changes are buffered; call make_read_only() first"
            )
        return root_id

    def _committed_root_id(self) -> IPLDKind | None:
        if type(self._root) is Draft or self._pending.count:
            return None
        return self._root_id

    async def make_read_only(self) -> WriteResult:
        """Write all changed nodes, children before parents, and switch to
        read-only mode. Afterwards ``root_node_id`` is the published root.

        Returns the root block's :class:`WriteResult` (also kept as
        :attr:`last_commit`). Already read-only: the last commit's result,
        or one describing the current root, with nothing written.
        """
        if not self._read_only:
            started = time.perf_counter()
            await self._flush()
            # No await between the flush's last check and this switch: no
            # write can slip in after the root was written.
            self._read_only = True
            if observability.ACTIVE and observability.is_enabled():
                observability.record("py_hamt.hamt.commit.duration", time.perf_counter() - started)
        if self.last_commit is None or self.last_commit.id != self._committed_root_id():
            root = await self._get_root()
            data = root.encode() if isinstance(root, Node) else root.encode()[0]
            self.last_commit = WriteResult(
                id=self._root_id, size=len(data), digest=ContentDigest.of(data)
            )
        return self.last_commit

    async def enable_write(self) -> None:
        """Switch to write mode. Cached nodes stay cached: they are immutable,
        and a write changes a copy."""
        if not self._read_only:
            return
        await self._get_root()
        self._read_only = False

    async def cache_size(self) -> int:
        """Bytes of memory held: cached clean nodes, the root, and changed
        nodes (CPython sizes, see :meth:`Node.memory`), and the packed bytes
        of sets waiting to be applied. A node cache shared with other
        read-only HAMTs (see ``max_cache_bytes``) is counted whole."""
        root = self._root
        total = self._loader.cache.nbytes + self._buffer.nbytes + self._pending.nbytes
        if type(root) is Node:
            total += root.memory()
        return total

    async def cache_vacate(self) -> None:
        """Free memory. In write mode, changed nodes are written first; then
        cached nodes are dropped (and reloaded on demand). In read-only mode
        the root is dropped too, keeping only its id, and a node cache
        shared with other read-only HAMTs is emptied for all of them."""
        if self._read_only:
            if type(self._root) is Node:
                self._root = None
        else:
            await self._flush()
        self._loader.clear()

    def _held(self) -> int:
        """Bytes the write buffer holds: changed nodes and waiting sets."""
        return self._buffer.nbytes + self._pending.nbytes

    async def _keep_buffer_bounded(self) -> None:
        """Once the write buffer holds more than ``max_buffer_bytes``, apply
        the waiting sets (writing changed nodes as it goes, see
        :meth:`_apply_pending`), then write the changed nodes if they alone
        are still over."""
        if self._flushing or self._held() <= self.max_buffer_bytes:
            return
        self._flushing = self._spilled = True
        try:
            await self._drain()
            if self._buffer.nbytes > self.max_buffer_bytes:
                await self._write_drafts()
        finally:
            self._flushing = False

    # ---------------------------------------------------------------- hashing
    def _hash(self, key: str) -> tuple[bytes, bytes]:
        """``key``'s hash and its UTF-8 bytes."""
        if type(key) is not str:
            raise InvalidTypeError(f"HAMT keys are str, got {type(key).__name__}: {key!r}")
        kb = key.encode("utf-8")
        return self._hasher()(kb), kb

    def _hasher(self) -> HashFn:
        """What hashes key bytes: the default blake3 itself (it always
        returns bytes), else ``hash_fn`` behind :meth:`_hash_key`'s check."""
        return blake3_hashfn if self.hash_fn is blake3_hashfn else self._hash_key

    def _hash_key(self, kb: bytes) -> bytes:
        h = self.hash_fn(kb)
        if type(h) is not bytes:
            if isinstance(h, (bytearray, memoryview)):
                return bytes(h)
            raise InvalidTypeError(
                f"hash_fn must return bytes, got {type(h).__name__} for key "
                f"{kb.decode('utf-8', 'replace')!r}"
            )
        return h

    def _max_levels(self) -> int:
        """How many levels the hash allows: its length in bytes."""
        if not self._levels:
            self._levels = len(self._hash_key(b""))
        return self._levels

    # ------------------------------------------------------------------ roots
    async def _get_root(self) -> Node | Draft:
        root = self._root
        if root is None:
            if self._root_id is None:
                raise NotCommittedError("the HAMT has no root")
            root = await self._loader.root(self._root_id)
            if self._root is None:
                self._root = root
            root = self._root
        return root

    def _draft_root(self) -> Draft:
        """The root as a draft, thawing it if it is clean (synchronous: call
        it inside a pass, so a concurrent commit cannot swap it meanwhile)."""
        root = self._root
        if type(root) is Draft:
            return root
        if root is None:
            raise NotCommittedError("the root is not loaded")
        draft = self._buffer.thaw(root)  # type: ignore[arg-type]
        self._root = draft
        return draft

    # --------------------------------------------------------------- lookups
    async def _find(self, key: str) -> IPLDKind:
        """The value id stored under ``key``; ``KeyNotFoundError`` if absent,
        ``BlockNotFoundError`` naming ``key`` if a node on its path is gone."""
        h, kb = self._hash(key)
        if self._pending.count or self._draining is not None:
            await self._drain()
        root = self._root
        if root is None:
            try:
                root = await self._get_root()
            except BlockNotFoundError as exc:
                raise missing(exc, f"a node on the path of key {key!r}") from exc
        try:
            raw = find_pass(root, h, kb, key, self._loader.cached)
        except NeedsLoad as need:
            start = root
            raw = await self._loader.run(
                lambda fetch: find_pass(self._root or start, h, kb, key, fetch), key, need
            )
        try:
            return decode_id(raw)
        except (ValueError, IndexError) as exc:
            raise MalformedNodeError(
                f"the value id of key {key!r} is not an id: {raw.hex()}"
            ) from exc

    async def get_pointer(self, key: str) -> IPLDKind:
        """The id of the block holding ``key``'s value.

        Raises:
            KeyNotFoundError: ``key`` is absent (a ``KeyError``).
            BlockNotFoundError: a node on ``key``'s path is not in the store
                (also a ``KeyError``, but never a :class:`KeyNotFoundError`).
        """
        return await self._find(key)

    async def get(
        self,
        key: str,
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> Any:
        """The value stored under ``key``.

        With :mod:`~py_hamt.observability` on, the lookup is a
        ``py_hamt.hamt.lookup`` span, counted and timed.

        A byte range (see :meth:`ContentAddressedStore.load`) applies to the
        stored value bytes and needs ``values_are_bytes=True``: a slice of a
        DAG-CBOR encoding cannot be decoded.

        Raises:
            KeyNotFoundError: ``key`` is absent (a ``KeyError`` naming it).
            BlockNotFoundError: ``key`` is present but its value block, or a
                node on its path, is not in the store; names the key and id.
            InvalidArgumentError: a bad range, or a range on encoded values.
        """
        ranged = offset is not None or length is not None or suffix is not None
        if ranged:
            check_range(offset, length, suffix)
            if not self.values_are_bytes:
                raise InvalidArgumentError(
                    f"byte ranges need values_are_bytes=True (reading key {key!r})"
                )
        if observability.ACTIVE:
            return await observability.timed(
                "py_hamt.hamt.lookup",
                "py_hamt.hamt.lookup.requests",
                "py_hamt.hamt.lookup.duration",
                lambda: self._get(key, ranged, offset, length, suffix),
            )
        return await self._get(key, ranged, offset, length, suffix)

    async def _get(
        self,
        key: str,
        ranged: bool,
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> Any:
        vid = await self._find(key)
        try:
            if ranged:
                return await self.cas.load(vid, offset=offset, length=length, suffix=suffix)
            data = await self.cas.load(vid)
        except KeyError as exc:  # BlockNotFoundError, or a store's plain KeyError
            cause = exc if isinstance(exc, BlockNotFoundError) else BlockNotFoundError(vid)
            raise missing(cause, f"the value of key {key!r}") from exc
        if self.values_are_bytes:
            return data
        try:
            return dagcbor.decode(data)
        except ValueError as exc:
            raise MalformedNodeError(
                f"value block {format_id(vid)} of key {key!r} is not valid DAG-CBOR: {exc}", vid
            ) from exc

    async def has(self, key: str) -> bool:
        """Whether ``key`` is present.

        Raises:
            BlockNotFoundError: a node on ``key``'s path is not in the store,
                so the answer is unknown.
        """
        try:
            await self._find(key)
        except KeyNotFoundError:
            return False
        return True

    async def stats(self) -> dict[str, int]:
        """Shape of the trie: ``keys``, ``nodes``, ``depth`` (levels, the root
        is 1) and ``node_bytes`` (encoded sizes, of changed nodes too).
        Walks every node (see :meth:`keys` for what is checked)."""
        keys = nodes = depth = node_bytes = 0
        async for node, level, contents in self._walk(keys=False):
            nodes += 1
            depth = max(depth, level + 1)
            node_bytes += node.nbytes() if isinstance(node, Node) else _draft_size(node)
            keys += contents.count
        return {"keys": keys, "nodes": nodes, "depth": depth, "node_bytes": node_bytes}

    async def keys(self) -> AsyncIterator[str]:
        """Every key, in a deterministic order (by hash, not by name).

        Raises:
            MalformedNodeError: a key is not where its hash places it (so
                ``get`` could not find it), a block is linked twice, or the
                trie is deeper than the hash allows.
            BlockNotFoundError: a node is not in the store.
        """
        async for _, _, contents in self._walk():
            for k in contents.keys:
                yield k

    async def key_batches(self) -> AsyncIterator[list[str]]:
        """The keys of :meth:`keys`, one node's bucket keys at a time (nodes
        with none are skipped): the same walk, checks and errors, with one
        ``await`` per node rather than per key, for callers that go through
        every key."""
        async for _, _, contents in self._walk():
            if contents.keys:
                yield contents.keys

    async def len(self) -> int:
        """The number of keys (walks every node, checking it as :meth:`keys` does)."""
        n = 0
        async for _, _, contents in self._walk(keys=False):
            n += contents.count
        return n

    async def _walk(
        self, *, keys: bool = True
    ) -> AsyncIterator[tuple[Node | Draft, int, NodeContents]]:
        if self._pending.count or self._draining is not None:
            await self._drain()
        root = await self._get_root()
        levels = self._max_levels()
        async for item in walk(root, self._loader, levels, self._hasher(), keys=keys):
            yield item

    # ---------------------------------------------------------------- writes
    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyError("the HAMT is read-only; call enable_write() to change it")

    async def _save_value(self, key: str, value: Any) -> WriteResult:
        if self.values_are_bytes:
            if type(value) is not bytes:
                if not isinstance(value, (bytearray, memoryview)):
                    raise InvalidTypeError(
                        f"values_are_bytes=True needs bytes for key {key!r}, "
                        f"got {type(value).__name__}"
                    )
                value = bytes(value)
            data = value
        else:
            try:
                data = dag_cbor.encode(value)
            except (dag_cbor.encoding.CBOREncodingError, TypeError, ValueError) as exc:
                raise InvalidTypeError(
                    f"value for key {key!r} is not an IPLD value: {one_line(exc)}"
                ) from exc
        return await self.cas.put(data, _VALUE_CODEC)

    async def set(self, key: str, value: Any) -> WriteResult:
        """Store ``value`` under ``key``, replacing any previous value.

        Returns the :class:`WriteResult` of the value's block (the digest is
        of the stored bytes: the DAG-CBOR encoding unless ``values_are_bytes``).

        The value is stored at once. The key is linked at once when every
        node on its path is in memory; otherwise the set waits, packed, and
        is applied with the other waiting sets of its root slot, in hash
        order, so each node is loaded once for all of them. That happens
        when the write buffer passes ``max_buffer_bytes``, and before any
        read, delete, walk or commit, so every call sees every set made
        before it.

        Raises:
            ReadOnlyError: in read-only mode.
            InvalidTypeError: (a ``TypeError``) ``key`` is not ``str``, or
                ``value`` does not fit ``values_are_bytes``.
            BlockNotFoundError: a node on ``key``'s path is not in the store.
                For a set that waited, the call that applies it raises this
                (naming the key) instead, and that set is dropped; the
                others stay.
            HashExhaustedError: more than ``max_bucket_size`` keys share the
                whole hash; for a set that waited, raised as above.
        """
        self._check_writable()
        h, kb = self._hash(key)
        written = await self._save_value(key, value)
        await self._link_value(h, kb, key, encode_id(written.id))
        return written

    async def set_pointer(self, key: str, value_id: IPLDKind) -> None:
        """Point ``key`` at a value block already in the store, by its id,
        replacing any previous value. Nothing is uploaded or read: this is
        how values written elsewhere (the workers of
        :func:`py_hamt.dask.to_zarr`, another HAMT) join this one.

        The id is stored as given, so it must be an id this HAMT's store
        returns (for :class:`~py_hamt.KuboCAS` and :class:`~py_hamt.LocalCAS`
        a CID, for :class:`~py_hamt.InMemoryCAS` multihash bytes) of a block
        holding the value as :meth:`get` expects it (the bytes themselves with
        ``values_are_bytes``, else their DAG-CBOR encoding). That the block is
        present is not checked; a missing one surfaces at the first ``get``
        as :class:`BlockNotFoundError` naming the key.

        Raises:
            ReadOnlyError: in read-only mode.
            InvalidTypeError: ``key`` is not ``str``, or ``value_id`` is ``None``.
            BlockNotFoundError: a node on ``key``'s path is not in the store.
        """
        self._check_writable()
        if value_id is None:
            raise InvalidTypeError(f"value id for key {key!r} is None; ids are never None")
        h, kb = self._hash(key)
        await self._link_value(h, kb, key, encode_id(value_id))

    async def _link_value(self, h: bytes, kb: bytes, key: str, raw: bytes) -> None:
        """Put ``key -> raw id`` into the tree now if its path is in memory,
        else record it to be applied with the other waiting sets. A set
        waits too while earlier sets under its root slot wait or are being
        applied, so the sets of one key always land in the order made.

        Once the buffer has passed its bound (a write too big to hold), a
        set also waits rather than thaw a clean node that happens to be
        cached: thawing a whole leaf for one key, writing it at the next
        flush and thawing it again for the next key would rewrite each leaf
        many times per flush instead of once."""
        if self._root is None:
            await self._get_root()
        self._check_writable()
        pending = self._pending
        first = h[0]
        if first == self._busy_slot or (pending.count and first in pending.logs):
            pending.add(first, kb, raw)
        else:
            try:  # the usual case: the path is in memory
                fetch = _nothing if self._spilled else self._loader.cached
                self._set_pass(h, kb, raw, fetch)
            except NeedsLoad:
                pending.add(first, kb, raw)
        if self._held() > self.max_buffer_bytes:
            await self._keep_buffer_bounded()

    async def _drain(self) -> None:
        """Apply every waiting set. Returns once none is waiting and no
        drain is running, so a read that calls it first sees every set made
        before it. Errors are those of :meth:`_apply_pending`."""
        while self._pending.count or self._draining is not None:
            running = self._draining
            if running is not None:
                await asyncio.shield(running)
                continue
            done = asyncio.get_running_loop().create_future()
            self._draining = done
            try:
                await self._apply_pending()
            finally:
                self._draining = None
                if not done.done():
                    done.set_result(None)

    async def _apply_pending(self) -> None:
        """Apply the waiting sets one root slot at a time, each slot's in
        hash order, so every node on the way is loaded once for all of them.
        While the write buffer is over ``max_buffer_bytes``, each slot's
        changed nodes are written once it is done, so memory stays bounded
        however many keys wait. Those writes share one
        :meth:`~ContentAddressedStore.write_batch` (one sync at the end); the
        root is not written here.

        Raises what a set would have: :class:`HashExhaustedError`,
        :class:`BlockNotFoundError` (a node on the key's path is gone) or
        :class:`MalformedNodeError`, naming the key; that set is dropped and
        every other one stays waiting. Any other error (a store that cannot
        be reached, a block that fails its hash check) or a cancellation
        drops nothing: the set is tried again by the next call that applies.
        """
        pending = self._pending
        async with self.cas.write_batch():
            while pending.count:
                slot = pending.next_slot()
                await self._apply_slot(slot, pending.take(slot, self._hasher()))
                root = self._root
                if self._held() > self.max_buffer_bytes and type(root) is Draft:
                    await write_slot(self.cas, self._buffer, self._loader.cache, root, slot)

    async def _apply_slot(self, slot: int, records: list[Record]) -> None:
        """Apply ``records``, taken from root ``slot``, in order; on an
        error put back those not applied (see :meth:`_apply_pending`)."""
        cached = self._loader.cached
        self._busy_slot = slot
        applied = 0
        try:
            for h, kb, raw in records:
                try:
                    self._set_pass(h, kb, raw, cached)
                except NeedsLoad as need:
                    run = partial(self._set_loaded, h, kb, raw)
                    await self._loader.run(run, kb.decode("utf-8"), need)
                applied += 1
        except _REFUSED_SET:
            self._pending.put_back(slot, records[applied + 1 :])
            raise
        except BaseException:
            self._pending.put_back(slot, records[applied:])
            raise
        finally:
            self._busy_slot = None

    def _set_pass(self, h: bytes, kb: bytes, raw: bytes, fetch: Fetch) -> None:
        set_pass(
            self._buffer,
            self._draft_root(),
            h,
            kb,
            raw,
            self.max_bucket_size,
            self._hasher(),
            fetch,
        )

    def _set_loaded(self, h: bytes, kb: bytes, raw: bytes, fetch: Fetch) -> None:
        """:meth:`_set_pass` as a retried pass: the HAMT may have been made
        read-only while the pass waited for a load."""
        self._check_writable()
        self._set_pass(h, kb, raw, fetch)

    async def delete(self, key: str) -> None:
        """Remove ``key``, restoring canonical form on the way up.

        Raises:
            KeyNotFoundError: ``key`` is absent (nothing changes).
            ReadOnlyError: in read-only mode.
        """
        self._check_writable()
        h, kb = self._hash(key)
        await self._find(key)  # absent: KeyNotFoundError, with nothing thawed
        buf, max_bucket = self._buffer, self.max_bucket_size

        def run(fetch: Fetch) -> None:
            self._check_writable()
            delete_pass(buf, self._draft_root(), h, kb, key, max_bucket, fetch)

        await self._loader.run(run, key)
        await self._keep_buffer_bounded()

    # ---------------------------------------------------------------- commit
    async def _flush(self) -> IPLDKind:
        """Apply the waiting sets and write every changed node; return the
        root id. Returns only once nothing waits and the tree is clean (the
        last check has no ``await`` after it)."""
        while True:
            await self._drain()
            root_id = await self._write_drafts()
            if not self._pending.count and self._draining is None:
                return root_id

    async def _write_drafts(self) -> IPLDKind:
        """Write every changed node, children before parents; return the
        root id. A node changed by a concurrent write while it was being
        written stays a draft and is written again, so this returns only
        once the whole tree is clean."""
        while True:
            root = await self._get_root()
            if isinstance(root, Node):
                return self._root_id
            node, version, written = await write_draft(
                self.cas, self._buffer, self._loader.cache, root, True
            )
            if self._root is root and root.version == version and written is not None:
                self._root = node
                self._root_id = written.id
                self.last_commit = written
                self._buffer.release(root)

    # ------------------------------------------------------- identity, pickle
    def __eq__(self, other: object) -> bool:
        """Equal when both read the same store with the same settings and
        hold the same content: the same committed root, or in write mode the
        same in-memory tree."""
        if not isinstance(other, HAMT):
            return NotImplemented
        if self is other:
            return True
        same_config = (
            self.cas == other.cas
            and self.hash_fn == other.hash_fn
            and self.max_bucket_size == other.max_bucket_size
            and self.values_are_bytes == other.values_are_bytes
            and self._read_only == other._read_only
        )
        if not same_config:
            return False
        mine, theirs = self._committed_root_id(), other._committed_root_id()
        if mine is not None or theirs is not None:
            return bool(mine == theirs)
        # Uncommitted on both sides: the same tree and the same waiting sets
        # (conservative: the same content reached by other routes may differ).
        return self._root == other._root and self._pending.logs == other._pending.logs

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the committed HAMT: settings and root id, no cached nodes.

        Raises:
            NotCommittedError: changes are buffered; a pickled copy of a write
                buffer would fork it silently. Commit first.
        """
        root = self._committed_root_id()
        if root is None:
            raise NotCommittedError(
                "cannot pickle a HAMT with buffered changes; call make_read_only() "
                "or cache_vacate() first"
            )
        state = self.__dict__.copy()
        state.update(
            _root=None,
            _root_id=freeze_id(root),
            _loader=Loader(self.cas, self.max_bucket_size, self._loader.cache.max_bytes),
            _buffer=WriteBuffer(),
            _flushing=False,
            _spilled=False,
            _pending=PendingSets(),
            _draining=None,
            _busy_slot=None,
            last_commit=None,
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_root_id"] = thaw_id(state["_root_id"])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        mode = "read-only" if self._read_only else "write"
        root = self._committed_root_id()
        shown = format_id(root) if root is not None else "<uncommitted>"
        return f"<HAMT {mode} root={shown} cas={type(self.cas).__name__}>"


def _nothing(raw_id: bytes) -> None:
    """A fetch that has no node: every clean child makes the pass wait."""


def _draft_size(draft: Draft) -> int:
    """The encoded size of a draft, children counted as links (estimated)."""
    empty = 256 - len(draft.slots)
    return 3 + empty + sum(len(e) if type(e) is bytes else 40 for e in draft.slots.values())
