"""An async HAMT over a content-addressed store.

Layout and canonical form are those of ``spec/hamt-format.md``: 256-way
nodes, slot ``h[depth]`` of the key's hash, buckets of at most
``max_bucket_size`` keys, and after a delete every child node that holds no
links and at most ``max_bucket_size`` keys collapses back into a bucket. The
root therefore depends only on the key set, never on the order of operations.

Concurrency model. Tree changes are made in one synchronous pass with no
``await`` inside, so concurrent coroutines on one event loop never see a
half-made change and no lock is needed. When a pass meets a child that is
not in memory it stops, the child is loaded, and the pass starts over. The
HAMT holds no loop-bound state between calls, so it can be driven from
several event loops in turn (zarr's own loop thread, then ``asyncio.run``),
but not from several threads at once.

Hostile or damaged input. Every node is checked as it is decoded: 256
entries, buckets of 1 to ``max_bucket_size`` keys, no child linked twice. A
lookup follows one path of at most ``len(hash)`` levels. Walks (``keys``,
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
from typing import Any

import dag_cbor

from py_hamt import observability
from py_hamt.cas.base import Codec, ContentAddressedStore, IPLDKind, check_range
from py_hamt.cas.write_result import ContentDigest, WriteResult
from py_hamt.codec import dagcbor
from py_hamt.codec.cids import freeze_id, thaw_id
from py_hamt.codec.node import Link
from py_hamt.errors import (
    BlockNotFoundError,
    HashExhaustedError,
    IntegrityError,
    InvalidArgumentError,
    InvalidTypeError,
    KeyNotFoundError,
    MalformedNodeError,
    NotCommittedError,
    ReadOnlyError,
    format_id,
    one_line,
)
from py_hamt.trie.hashing import HashFn, blake3_hashfn
from py_hamt.trie.node import Node
from py_hamt.trie.node_cache import NodeCache

__all__ = [
    "DEFAULT_MAX_BUCKET_SIZE",
    "DEFAULT_MAX_BUFFER_BYTES",
    "DEFAULT_MAX_CACHE_BYTES",
    "HAMT",
]

DEFAULT_MAX_BUCKET_SIZE = 4
DEFAULT_MAX_CACHE_BYTES = 128 * 2**20
"""Read cache bound: decoded nodes kept in read-only mode."""
DEFAULT_MAX_BUFFER_BYTES = 256 * 2**20
"""Write buffer bound: nodes held in memory in write mode before a flush."""
_BUFFERED_NODE_BYTES = 3 * 1024  # estimate per in-memory node in write mode

_NODE_CODEC: Codec = "dag-cbor"
_VALUE_CODEC: Codec = "raw"


class _NeedsLoad(Exception):
    """Internal: a synchronous pass met a child that is not in memory."""

    def __init__(self, parent: Node, index: int, link: Link) -> None:
        self.parent, self.index, self.link = parent, index, link


def _node_loaded(size: int, seconds: float) -> None:
    """Record one node read from the store (a cache miss)."""
    attrs = {"py_hamt.cache_hit": False}
    observability.add("py_hamt.hamt.node_load.requests", 1, attrs)
    observability.add("py_hamt.hamt.node_load.bytes", size, attrs)
    observability.record("py_hamt.hamt.node_load.duration", seconds, attrs)


def _node_cache_hit() -> None:
    """Record one node found in the read cache."""
    observability.add("py_hamt.hamt.node_load.requests", 1, {"py_hamt.cache_hit": True})
    observability.add("py_hamt.hamt.node_cache.hits")


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
        max_cache_bytes: bound on decoded nodes cached in read-only mode
            (least recently used evicted first). Default 128 MiB.
        max_buffer_bytes: bound on nodes held in memory in write mode,
            estimated at 3 KiB a node. Past it, the HAMT writes its buffered
            nodes and drops what it holds on its own, so a long ETL job never
            grows without bound. Default 256 MiB.

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
        # The root in memory, or None when only its id is known (not loaded).
        self._root: Node | None = Node.empty() if root_node_id is None else None
        self._root_id: IPLDKind | None = root_node_id
        self.max_buffer_bytes = max_buffer_bytes
        # Read-only mode: nodes reached through Links, by id (bounded LRU).
        self._cache = NodeCache(max_cache_bytes)
        # Write mode: nodes below the root held in memory, and whether an
        # automatic flush is under way.
        self._in_memory = 0
        self._flushing = False
        #: The root block's WriteResult from the last commit, if any here.
        self.last_commit: WriteResult | None = None
        # In-flight node loads, so concurrent readers share one request.
        self._inflight: dict[Any, tuple[asyncio.AbstractEventLoop, asyncio.Future[Node]]] = {}
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
        if self._root is not None and self._root.saved_id is not None:
            return self._root.saved_id
        if self._root is None and self._root_id is not None:
            return self._root_id
        raise NotCommittedError(
            "root_node_id is not valid while changes are buffered; call make_read_only() first"
        )

    async def make_read_only(self) -> WriteResult:
        """Write all buffered nodes, children before parents, and switch to
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
            self._tree_to_cache()
            if observability.ACTIVE and observability.is_enabled():
                observability.record("py_hamt.hamt.commit.duration", time.perf_counter() - started)
        if self.last_commit is None or self.last_commit.id != self._committed_root_id():
            root = await self._get_root()
            data = root.encode()
            self.last_commit = WriteResult(
                id=root.saved_id, size=len(data), digest=ContentDigest.of(data)
            )
        return self.last_commit

    def _tree_to_cache(self) -> None:
        """Hand the written tree to the bounded read cache: in-memory children
        become links, and the nodes go to the cache (which may evict them)."""
        root = self._root
        if root is None:
            return
        stack = [root]
        while stack:
            node = stack.pop()
            for i, e in enumerate(node.slots):
                if type(e) is Node and e.saved_id is not None:
                    node.slots[i] = Link(e.saved_id)
                    stack.append(e)
                    self._cache.put(e.saved_id, e)
        self._in_memory = 0

    async def enable_write(self) -> None:
        """Switch to write mode. Cached nodes become the write buffer's base."""
        if not self._read_only:
            return
        await self._get_root()
        # Cached read-only nodes may be shared by id; never mutate them.
        self._cache.clear()
        self._in_memory = 0
        self._read_only = False

    async def cache_size(self) -> int:
        """Estimated bytes of memory held: cached and buffered nodes (CPython
        object sizes, see :meth:`Node.memory`)."""
        total = self._cache.nbytes
        stack = [self._root] if self._root is not None else []
        while stack:
            node = stack.pop()
            total += node.memory()
            stack.extend(e for e in node.slots if type(e) is Node)
        return total

    async def cache_vacate(self) -> None:
        """Free memory. In write mode, buffered nodes are written first and
        then dropped (only their ids are kept); in read-only mode cached
        nodes are dropped and reloaded on demand."""
        if self._read_only:
            if self._root is not None and self._root.saved_id is not None:
                self._root_id = self._root.saved_id
                self._root = None
            self._cache.clear()
            return
        await self._flush()
        root = self._root
        if root is None:
            return
        # Clean children have clean subtrees; replace them by their ids.
        # Nodes changed meanwhile (concurrent writes) stay, and are counted.
        kept = 0
        stack = [root]
        while stack:
            node = stack.pop()
            for i, e in enumerate(node.slots):
                if type(e) is Node:
                    if e.saved_id is not None:
                        node.slots[i] = Link(e.saved_id)
                    else:
                        kept += 1
                        stack.append(e)
        self._in_memory = kept

    async def _keep_buffer_bounded(self) -> None:
        """Write and drop the buffer once it passes ``max_buffer_bytes``."""
        if self._flushing or self._in_memory * _BUFFERED_NODE_BYTES <= self.max_buffer_bytes:
            return
        self._flushing = True
        try:
            await self.cache_vacate()
        finally:
            self._flushing = False

    # ---------------------------------------------------------------- hashing
    def _hash(self, key: str) -> bytes:
        if type(key) is not str:
            raise InvalidTypeError(f"HAMT keys are str, got {type(key).__name__}: {key!r}")
        h = self.hash_fn(key.encode("utf-8"))
        if type(h) is not bytes:
            if isinstance(h, (bytearray, memoryview)):
                return bytes(h)
            raise InvalidTypeError(
                f"hash_fn must return bytes, got {type(h).__name__} for key {key!r}"
            )
        return h

    def _max_levels(self) -> int:
        """How many levels the hash allows: its length in bytes."""
        if not self._levels:
            self._levels = len(self._hash(""))
        return self._levels

    def _exhausted(self, key: str, h: bytes) -> HashExhaustedError:
        return HashExhaustedError(
            f"key {key!r} needs more than {len(h)} levels, but hash_fn gives only "
            f"{len(h)} bytes: too many keys share a hash prefix for max_bucket_size="
            f"{self.max_bucket_size}"
        )

    # ------------------------------------------------------------ node loading
    async def _get_root(self) -> Node:
        root = self._root
        if root is None:
            root = await self._load_node(self._root_id)
            if self._root is None:
                self._root = root
            root = self._root
        return root

    async def _load_node(self, block_id: IPLDKind) -> Node:
        loop = asyncio.get_running_loop()
        pending = self._inflight.get(block_id)
        if pending is not None and pending[0] is loop:
            try:
                return await asyncio.shield(pending[1])
            except asyncio.CancelledError:
                if not pending[1].cancelled():
                    raise
                # The loader was cancelled, not us: load it ourselves.
        fut: asyncio.Future[Node] = loop.create_future()
        self._inflight[block_id] = (loop, fut)
        try:
            start = time.perf_counter() if observability.ACTIVE else 0.0
            try:
                data = await self.cas.load(block_id)
            except BlockNotFoundError:
                raise
            except KeyError as exc:  # a store that raises a plain KeyError
                raise BlockNotFoundError(block_id, "a HAMT node") from exc
            node = Node.decode(data, block_id, self.max_bucket_size)
            if observability.ACTIVE:
                _node_loaded(len(data), time.perf_counter() - start)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(block_id, (None, None))[1] is fut:
                del self._inflight[block_id]
        fut.set_result(node)
        return node

    async def _resolve(self, parent: Node, index: int, link: Link) -> Node:
        """Load the child behind ``link``.

        Read-only: through the node cache. Write mode: the child is put into
        the parent's slot, so later passes find it in memory.

        Raises:
            BlockNotFoundError: the child's block is not in the store.
            MalformedNodeError: the child is not a node, or its id is not one
                the store can load.
        """
        if self._read_only:
            node = self._cache.get(link.id)
            if node is None:
                if observability.ACTIVE:
                    observability.add("py_hamt.hamt.node_cache.misses")
                node = await self._load_child(parent, index, link)
                self._cache.put(link.id, node)
            elif observability.ACTIVE:
                _node_cache_hit()
            return node
        node = await self._load_child(parent, index, link)
        if parent.slots[index] is link:
            parent.slots[index] = node
            self._in_memory += 1
        return node

    async def _load_child(self, parent: Node, index: int, link: Link) -> Node:
        try:
            return await self._load_node(link.id)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            # The store refused the id itself (an int where it wants a CID):
            # the link cannot point at a node.
            raise MalformedNodeError(
                f"node {_name(parent)} links {format_id(link.id)} in slot {index}, "
                f"which the store cannot load as a node: {one_line(exc)}",
                parent.saved_id,
            ) from exc

    @staticmethod
    def _missing(exc: BlockNotFoundError, needed_by: str) -> BlockNotFoundError:
        """``exc`` again, saying what needed the missing block."""
        detail = f"{needed_by} ({exc.detail})" if exc.detail else needed_by
        return BlockNotFoundError(exc.block_id, detail)

    # --------------------------------------------------------------- lookups
    async def _find(self, key: str) -> IPLDKind:
        """The value id stored under ``key``; ``KeyNotFoundError`` if absent,
        ``BlockNotFoundError`` naming ``key`` if a node on its path is gone."""
        h = self._hash(key)
        node = self._root
        if node is None:
            node = await self._load_for(key)
        depth = 0
        cache = self._cache if self._read_only else None
        while True:
            if depth >= len(h):
                raise MalformedNodeError(
                    f"the HAMT under {format_id(self._root_id)} is deeper than the "
                    f"{len(h)}-byte hash allows (looking up {key!r})"
                )
            index = h[depth]
            e = node.slots[index]
            if e is None:
                raise KeyNotFoundError(key)
            t = type(e)
            if t is dict:
                if observability.ACTIVE:
                    observability.record("py_hamt.hamt.lookup.depth", depth + 1)
                try:
                    return e[key]  # type: ignore[index]
                except KeyError:
                    raise KeyNotFoundError(key) from None
            if t is Node:
                node = e  # type: ignore[assignment]
            else:
                child = cache.get(e.id) if cache is not None else None  # type: ignore[union-attr]
                if child is None:
                    child = await self._load_for(key, node, index, e)  # type: ignore[arg-type]
                elif observability.ACTIVE:
                    _node_cache_hit()
                node = child
            depth += 1

    async def _load_for(
        self, key: str, parent: Node | None = None, index: int = 0, link: Link | None = None
    ) -> Node:
        """The root (no ``link``) or the child behind ``link``, for an
        operation on ``key``; a missing block names that key."""
        try:
            if link is None or parent is None:
                return await self._get_root()
            return await self._resolve(parent, index, link)
        except BlockNotFoundError as exc:
            raise self._missing(exc, f"a node on the path of key {key!r}") from exc

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
            raise self._missing(cause, f"the value of key {key!r}") from exc
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

    async def _walk(self) -> AsyncIterator[tuple[Node, int]]:
        """Every node with its depth (the root is 0), depth first in slot
        order, loading as needed.

        Bounded on any input: each block is visited at most once (in a HAMT
        every node has one parent, so a second link to a block is malformed),
        no deeper than the hash allows, and each node's bucket keys are
        checked against their hashes before the node is yielded.
        """
        root = await self._get_root()
        levels = self._max_levels()
        cache = self._cache if self._read_only else None
        seen: set[Any] = set()
        if root.saved_id is not None:
            seen.add(root.saved_id)
        stack: list[tuple[Node, bytes]] = [(root, b"")]
        while stack:
            node, path = stack.pop()
            if node.checked != path:
                self._check_placement(node, path)
            depth = len(path)
            yield node, depth
            children: list[tuple[Node, bytes]] = []
            for i, e in enumerate(node.slots):
                t = type(e)
                if t is Link:
                    child_id = e.id  # type: ignore[union-attr]
                elif t is Node:
                    child_id = e.saved_id  # type: ignore[union-attr]
                else:
                    continue
                if depth + 1 >= levels:
                    raise MalformedNodeError(
                        f"node {_name(node)} links a child in slot {i} at depth {depth + 1}, "
                        f"deeper than the {levels}-byte hash allows",
                        node.saved_id,
                    )
                if child_id is not None:
                    if child_id in seen:
                        raise MalformedNodeError(
                            f"node {format_id(child_id)} is linked again from slot {i} of node "
                            f"{_name(node)}: a HAMT node has one parent",
                            child_id,
                        )
                    seen.add(child_id)
                if t is Node:
                    child = e
                else:
                    child = cache.get(child_id) if cache is not None else None
                    if child is None:
                        try:
                            child = await self._resolve(node, i, e)  # type: ignore[arg-type]
                        except BlockNotFoundError as exc:
                            raise self._missing(
                                exc, f"the child in slot {i} of node {_name(node)}"
                            ) from exc
                children.append((child, path + bytes((i,))))  # type: ignore[arg-type]
            stack.extend(reversed(children))

    def _check_placement(self, node: Node, path: bytes) -> None:
        """Check that every bucket key in ``node``, reached by ``path``, hashes
        to that path and its slot; remember the path once it holds.

        One hash per key, once per node: walks pay it, lookups never do.
        """
        depth = len(path)
        hash_fn = self.hash_fn
        for i, e in enumerate(node.slots):
            if type(e) is not dict:
                continue
            place = path + bytes((i,))
            for key in e:
                h = hash_fn(key.encode("utf-8"))
                if type(h) is not bytes:
                    h = self._hash(key)
                if not h.startswith(place):
                    raise MalformedNodeError(
                        f"node {_name(node)} holds key {key!r} in slot {i} at depth {depth}, "
                        f"where its hash does not place it (path {list(place)}, hash "
                        f"{list(h[: depth + 1])})",
                        node.saved_id,
                    )
        node.checked = path

    async def stats(self) -> dict[str, int]:
        """Shape of the trie: ``keys``, ``nodes``, ``depth`` (levels, the root
        is 1) and ``node_bytes`` (encoded sizes; estimated for unwritten nodes).
        Walks every node (see :meth:`keys` for what is checked)."""
        keys = nodes = depth = node_bytes = 0
        async for node, level in self._walk():
            nodes += 1
            depth = max(depth, level + 1)
            node_bytes += node.estimated_bytes()
            for e in node.slots:
                if type(e) is dict:
                    keys += len(e)
        return {"keys": keys, "nodes": nodes, "depth": depth, "node_bytes": node_bytes}

    async def keys(self) -> AsyncIterator[str]:
        """Every key, in a deterministic order (by hash, not by name).

        Raises:
            MalformedNodeError: a key is not where its hash places it (so
                ``get`` could not find it), a block is linked twice, or the
                trie is deeper than the hash allows.
            BlockNotFoundError: a node is not in the store.
        """
        async for node, _ in self._walk():
            for e in node.slots:
                if type(e) is dict:
                    for k in list(e):
                        yield k

    async def len(self) -> int:
        """The number of keys (walks every node, checking it as :meth:`keys` does)."""
        n = 0
        async for node, _ in self._walk():
            for e in node.slots:
                if type(e) is dict:
                    n += len(e)
        return n

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

        Raises:
            ReadOnlyError: in read-only mode.
            InvalidTypeError: (a ``TypeError``) ``key`` is not ``str``, or
                ``value`` does not fit ``values_are_bytes``.
            BlockNotFoundError: a node on ``key``'s path is not in the store.
        """
        self._check_writable()
        h = self._hash(key)
        written = await self._save_value(key, value)
        # The value's save was awaited: re-check the mode before changing.
        self._check_writable()
        await self._link_value(h, key, written.id)
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
        await self._link_value(self._hash(key), key, value_id)

    async def _link_value(self, h: bytes, key: str, vid: IPLDKind) -> None:
        """Put ``key -> vid`` into the tree (the mode was just checked)."""
        root = await self._get_root()
        while True:
            try:
                self._set_pass(root, h, key, vid)
                break
            except _NeedsLoad as need:
                await self._load_for(key, need.parent, need.index, need.link)
                self._check_writable()
        if self._in_memory * _BUFFERED_NODE_BYTES > self.max_buffer_bytes:
            await self._keep_buffer_bounded()

    def _set_pass(self, root: Node, h: bytes, key: str, vid: IPLDKind) -> None:
        node = root
        path = [root]
        depth = 0
        max_bucket = self.max_bucket_size
        while True:
            if depth >= len(h):
                raise self._exhausted(key, h)
            index = h[depth]
            e = node.slots[index]
            if e is None:
                node.slots[index] = {key: vid}
                break
            t = type(e)
            if t is dict:
                if key in e or len(e) < max_bucket:  # type: ignore[operator,arg-type]
                    e[key] = vid  # type: ignore[index]
                else:
                    child = Node.empty()
                    self._in_memory += 1
                    for k, v in e.items():  # type: ignore[union-attr]
                        self._insert_fresh(child, self._hash(k), k, v, depth + 1)
                    self._insert_fresh(child, h, key, vid, depth + 1)
                    node.slots[index] = child
                break
            if t is Link:
                raise _NeedsLoad(node, index, e)  # type: ignore[arg-type]
            node = e  # type: ignore[assignment]
            path.append(node)
            depth += 1
        for n in path:
            n.mark_dirty()

    def _insert_fresh(self, node: Node, h: bytes, key: str, vid: IPLDKind, depth: int) -> None:
        """Insert into a node built during a split (all in memory, no Links)."""
        while True:
            if depth >= len(h):
                raise self._exhausted(key, h)
            index = h[depth]
            e = node.slots[index]
            if e is None:
                node.slots[index] = {key: vid}
                return
            if type(e) is dict:
                if len(e) < self.max_bucket_size:
                    e[key] = vid
                    return
                child = Node.empty()
                self._in_memory += 1
                for k, v in e.items():
                    self._insert_fresh(child, self._hash(k), k, v, depth + 1)
                node.slots[index] = child
                e = child
            node = e  # type: ignore[assignment]
            depth += 1

    async def delete(self, key: str) -> None:
        """Remove ``key``, restoring canonical form on the way up.

        Raises:
            KeyNotFoundError: ``key`` is absent (nothing changes).
            ReadOnlyError: in read-only mode.
        """
        self._check_writable()
        h = self._hash(key)
        root = await self._get_root()
        while True:
            try:
                self._delete_pass(root, h, key)
                break
            except _NeedsLoad as need:
                await self._load_for(key, need.parent, need.index, need.link)
                self._check_writable()
        await self._keep_buffer_bounded()

    def _delete_pass(self, root: Node, h: bytes, key: str) -> None:
        node = root
        path: list[tuple[Node, int]] = []  # (node, slot taken in it)
        depth = 0
        while True:
            if depth >= len(h):
                raise KeyNotFoundError(key)
            index = h[depth]
            e = node.slots[index]
            path.append((node, index))
            if e is None:
                raise KeyNotFoundError(key)
            t = type(e)
            if t is dict:
                if key not in e:  # type: ignore[operator]
                    raise KeyNotFoundError(key)
                del e[key]  # type: ignore[union-attr]
                if not e:
                    node.slots[index] = None
                break
            if t is Link:
                raise _NeedsLoad(node, index, e)  # type: ignore[arg-type]
            node = e  # type: ignore[assignment]
            depth += 1
        for n, _ in path:
            n.mark_dirty()
        # Collapse: a non-root node with no links and few enough keys becomes
        # a bucket in its parent's slot (or an empty slot), level by level up.
        for level in range(len(path) - 1, 0, -1):
            child = path[level][0]
            if child.has_links():
                break
            entries = child.bucket_entries()
            if len(entries) > self.max_bucket_size:
                break
            parent, index = path[level - 1]
            parent.slots[index] = dict(entries) if entries else None
            if child.checked is None:
                parent.checked = None  # unchecked keys moved up: check again
            self._in_memory -= 1

    # ---------------------------------------------------------------- commit
    async def _flush(self) -> IPLDKind:
        """Write every dirty node, children before parents; return the root id.

        Independent subtrees are written concurrently. A node changed by a
        concurrent write while it was being saved stays dirty and is written
        again, so the loop ends only once the whole tree is clean.
        """
        root = await self._get_root()
        while root.saved_id is None:
            await self._save_subtree(root)
        self._root_id = root.saved_id
        return root.saved_id

    async def _save_subtree(self, node: Node) -> None:
        while node.saved_id is None:
            dirty = [e for e in node.slots if type(e) is Node and e.saved_id is None]
            if len(dirty) == 1:
                await self._save_subtree(dirty[0])
            elif dirty:
                await asyncio.gather(*(self._save_subtree(c) for c in dirty))
            if any(type(e) is Node and e.saved_id is None for e in node.slots):
                continue  # a child changed while we waited
            version = node.version
            data = node.encode()
            if node is self._root:
                written = await self.cas.put(data, _NODE_CODEC)
                block_id = written.id
            else:
                block_id = await self.cas.save(data, _NODE_CODEC)
            if node.version == version:
                node.saved_id = block_id
                node.nbytes = len(data)
                if node is self._root:
                    self.last_commit = written

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
        return self._root == other._root

    __hash__ = None  # type: ignore[assignment]

    def _committed_root_id(self) -> IPLDKind | None:
        if self._root is None:
            return self._root_id
        return self._root.saved_id

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
            _inflight={},
            _cache=NodeCache(self._cache.max_bytes),
            _in_memory=0,
            _flushing=False,
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


def _name(node: Node) -> str:
    """A node's id for a message (a node changed in memory has none yet)."""
    return format_id(node.saved_id) if node.saved_id is not None else "<unsaved node>"
