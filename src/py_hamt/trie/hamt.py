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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import dag_cbor

from py_hamt.cas.base import Codec, ContentAddressedStore, IPLDKind, check_range
from py_hamt.cas.write_result import ContentDigest, WriteResult
from py_hamt.codec import dagcbor
from py_hamt.codec.cids import freeze_id, thaw_id
from py_hamt.codec.node import Link
from py_hamt.errors import (
    HashExhaustedError,
    InvalidArgumentError,
    KeyNotFoundError,
    MalformedNodeError,
    NotCommittedError,
    ReadOnlyError,
    format_id,
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
            await self._flush()
            # No await between the flush's last check and this switch: no
            # write can slip in after the root was written.
            self._read_only = True
            self._tree_to_cache()
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
            raise TypeError(f"HAMT keys are str, got {type(key).__name__}: {key!r}")
        h = self.hash_fn(key.encode("utf-8"))
        if type(h) is not bytes:
            if isinstance(h, (bytearray, memoryview)):
                return bytes(h)
            raise TypeError(f"hash_fn must return bytes, got {type(h).__name__}")
        return h

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
            data = await self.cas.load(block_id)
            node = Node.decode(data, block_id)
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
        """
        if self._read_only:
            node = self._cache.get(link.id)
            if node is None:
                node = await self._load_node(link.id)
                self._cache.put(link.id, node)
            return node
        node = await self._load_node(link.id)
        if parent.slots[index] is link:
            parent.slots[index] = node
            self._in_memory += 1
        return node

    # --------------------------------------------------------------- lookups
    async def _find(self, key: str) -> IPLDKind:
        """The value id stored under ``key``; ``KeyNotFoundError`` if absent."""
        h = self._hash(key)
        node = self._root if self._root is not None else await self._get_root()
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
                try:
                    return e[key]  # type: ignore[index]
                except KeyError:
                    raise KeyNotFoundError(key) from None
            if t is Node:
                node = e  # type: ignore[assignment]
            else:
                child = cache.get(e.id) if cache is not None else None  # type: ignore[union-attr]
                node = child if child is not None else await self._resolve(node, index, e)  # type: ignore[arg-type]
            depth += 1

    async def get_pointer(self, key: str) -> IPLDKind:
        """The id of the block holding ``key``'s value.

        Raises:
            KeyNotFoundError: ``key`` is absent (a ``KeyError``).
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

        A byte range (see :meth:`ContentAddressedStore.load`) applies to the
        stored value bytes and needs ``values_are_bytes=True``: a slice of a
        DAG-CBOR encoding cannot be decoded.

        Raises:
            KeyNotFoundError: ``key`` is absent (a ``KeyError`` naming it).
            InvalidArgumentError: a bad range, or a range on encoded values.
        """
        ranged = offset is not None or length is not None or suffix is not None
        if ranged:
            check_range(offset, length, suffix)
            if not self.values_are_bytes:
                raise InvalidArgumentError(
                    f"byte ranges need values_are_bytes=True (reading key {key!r})"
                )
        vid = await self._find(key)
        if ranged:
            return await self.cas.load(vid, offset=offset, length=length, suffix=suffix)
        data = await self.cas.load(vid)
        if self.values_are_bytes:
            return data
        try:
            return dagcbor.decode(data)
        except ValueError as exc:
            raise MalformedNodeError(
                f"value block {format_id(vid)} of key {key!r} is not valid DAG-CBOR: {exc}", vid
            ) from exc

    async def has(self, key: str) -> bool:
        """Whether ``key`` is present."""
        try:
            await self._find(key)
        except KeyNotFoundError:
            return False
        return True

    async def _iter_nodes(self) -> AsyncIterator[Node]:
        """Every node, depth first in slot order, loading as needed."""
        stack = [await self._get_root()]
        while stack:
            node = stack.pop()
            yield node
            children: list[Node] = []
            for i, e in enumerate(node.slots):
                if type(e) is Node:
                    children.append(e)
                elif type(e) is Link:
                    cached = self._cache.get(e.id) if self._read_only else None
                    children.append(cached or await self._resolve(node, i, e))
            stack.extend(reversed(children))

    async def stats(self) -> dict[str, int]:
        """Shape of the trie: ``keys``, ``nodes``, ``depth`` (levels, the root
        is 1) and ``node_bytes`` (encoded sizes; estimated for unwritten nodes).
        Walks every node."""
        keys = nodes = depth = node_bytes = 0
        stack = [(await self._get_root(), 1)]
        while stack:
            node, level = stack.pop()
            nodes += 1
            depth = max(depth, level)
            node_bytes += node.estimated_bytes()
            for i, e in enumerate(node.slots):
                if type(e) is dict:
                    keys += len(e)
                elif type(e) is Node:
                    stack.append((e, level + 1))
                elif type(e) is Link:
                    cached = self._cache.get(e.id) if self._read_only else None
                    stack.append((cached or await self._resolve(node, i, e), level + 1))
        return {"keys": keys, "nodes": nodes, "depth": depth, "node_bytes": node_bytes}

    async def keys(self) -> AsyncIterator[str]:
        """Every key, in a deterministic order (by hash, not by name)."""
        async for node in self._iter_nodes():
            for e in node.slots:
                if type(e) is dict:
                    for k in list(e):
                        yield k

    async def len(self) -> int:
        """The number of keys (walks every node)."""
        n = 0
        async for node in self._iter_nodes():
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
                    raise TypeError(
                        f"values_are_bytes=True needs bytes for key {key!r}, "
                        f"got {type(value).__name__}"
                    )
                value = bytes(value)
            data = value
        else:
            try:
                data = dag_cbor.encode(value)
            except (dag_cbor.encoding.CBOREncodingError, TypeError, ValueError) as exc:
                raise TypeError(f"value for key {key!r} is not an IPLD value: {exc}") from exc
        return await self.cas.put(data, _VALUE_CODEC)

    async def set(self, key: str, value: Any) -> WriteResult:
        """Store ``value`` under ``key``, replacing any previous value.

        Returns the :class:`WriteResult` of the value's block (the digest is
        of the stored bytes: the DAG-CBOR encoding unless ``values_are_bytes``).

        Raises:
            ReadOnlyError: in read-only mode.
            TypeError: ``key`` is not ``str``, or ``value`` does not fit
                ``values_are_bytes``.
        """
        self._check_writable()
        h = self._hash(key)
        written = await self._save_value(key, value)
        vid = written.id
        # The value's save was awaited: re-check the mode before changing.
        self._check_writable()
        root = await self._get_root()
        while True:
            try:
                self._set_pass(root, h, key, vid)
                break
            except _NeedsLoad as need:
                await self._resolve(need.parent, need.index, need.link)
                self._check_writable()
        if self._in_memory * _BUFFERED_NODE_BYTES > self.max_buffer_bytes:
            await self._keep_buffer_bounded()
        return written

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
                await self._resolve(need.parent, need.index, need.link)
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
