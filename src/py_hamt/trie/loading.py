"""Loading nodes: the bounded cache, shared in-flight loads, and the retry
loop that runs a synchronous pass until every node it needs is in memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from py_hamt import observability
from py_hamt.cas.base import ContentAddressedStore
from py_hamt.codec.node import encode_id
from py_hamt.codec.packed_node import decode_id
from py_hamt.errors import (
    BlockNotFoundError,
    IntegrityError,
    MalformedNodeError,
    format_id,
    one_line,
)
from py_hamt.trie.node import Draft, Node, node_id, node_name, raw_name
from py_hamt.trie.node_cache import NodeCache
from py_hamt.trie.passes import NeedsLoad

__all__ = ["Loader", "missing"]

T = TypeVar("T")


def missing(exc: BlockNotFoundError, needed_by: str) -> BlockNotFoundError:
    """``exc`` again, saying what needed the missing block."""
    detail = f"{needed_by} ({exc.detail})" if exc.detail else needed_by
    return BlockNotFoundError(exc.block_id, detail)


class Loader:
    """Nodes by raw id: from the bounded :class:`NodeCache`, or from the
    store (verified by the store, checked by :meth:`Node.decode`), with
    concurrent loads of one block shared.

    Clean nodes are immutable, so the cache serves readers and writers
    alike; a writer thaws a copy before changing anything.
    """

    def __init__(
        self,
        cas: ContentAddressedStore,
        max_bucket_size: int,
        max_cache_bytes: int,
        cache: NodeCache | None = None,
    ):
        """``cache``: a cache to use (one shared with other loaders on the
        same store, see :func:`~py_hamt.trie.node_cache.shared_node_cache`);
        by default a new one of ``max_cache_bytes``."""
        self.cas = cas
        self.max_bucket_size = max_bucket_size
        self.cache = cache if cache is not None else NodeCache(max_cache_bytes)
        # Keyed by (loop, id): a loop runs on one thread, so threads sharing a
        # read-only HAMT never touch one another's entries.
        self._inflight: dict[tuple[asyncio.AbstractEventLoop, bytes], asyncio.Future[Node]] = {}

    def cached(self, raw_id: bytes) -> Node | None:
        """The cached node, or ``None``; counts a hit when observed."""
        node = self.cache.get(raw_id)
        if node is not None and observability.ACTIVE:
            observability.add("py_hamt.hamt.node_load.requests", 1, {"py_hamt.cache_hit": True})
            observability.add("py_hamt.hamt.node_cache.hits")
        return node

    async def root(self, block_id: Any) -> Node:
        """Load a root by its id (not cached: the HAMT holds its root)."""
        try:
            raw = encode_id(block_id)
        except (TypeError, ValueError) as exc:
            raise MalformedNodeError(
                f"{format_id(block_id)} cannot be a HAMT root id: {one_line(exc)}", block_id
            ) from exc
        return await self._load(raw, block_id)

    async def child(self, raw_id: bytes, parent: Node | Draft, slot: int) -> Node:
        """The node behind the link in ``parent``'s ``slot``: cached, or
        loaded and cached.

        Raises:
            BlockNotFoundError: the block is not in the store.
            MalformedNodeError: the block is not a node, or the link is not
                an id the store can load (naming the parent and slot).
        """
        node = self.cached(raw_id)
        if node is not None:
            return node
        if observability.ACTIVE:
            observability.add("py_hamt.hamt.node_cache.misses")
        try:
            block_id = decode_id(raw_id)
            node = await self._load(raw_id, block_id)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            # The store refused the id itself (an int where it wants a CID):
            # the link cannot point at a node.
            raise MalformedNodeError(
                f"node {node_name(parent)} links {raw_name(raw_id)} in slot {slot}, "
                f"which the store cannot load as a node: {one_line(exc)}",
                node_id(parent),
            ) from exc
        self.cache.put(raw_id, node)
        return node

    async def _load(self, raw_id: bytes, block_id: Any) -> Node:
        loop = asyncio.get_running_loop()
        slot = (loop, raw_id)
        pending = self._inflight.get(slot)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                # The loader was cancelled, not us: load it ourselves.
        fut: asyncio.Future[Node] = loop.create_future()
        self._inflight[slot] = fut
        try:
            start = time.perf_counter() if observability.ACTIVE else 0.0
            try:
                data = await self.cas.load(block_id)
            except BlockNotFoundError:
                raise
            except KeyError as exc:  # a store that raises a plain KeyError
                raise BlockNotFoundError(block_id, "a HAMT node") from exc
            node = Node.decode(data, block_id, raw_id, self.max_bucket_size)
            if observability.ACTIVE:
                attrs = {"py_hamt.cache_hit": False}
                observability.add("py_hamt.hamt.node_load.requests", 1, attrs)
                observability.add("py_hamt.hamt.node_load.bytes", len(data), attrs)
                observability.record(
                    "py_hamt.hamt.node_load.duration", time.perf_counter() - start, attrs
                )
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(slot) is fut:
                del self._inflight[slot]
        fut.set_result(node)
        return node

    async def run(
        self,
        run_pass: Callable[[Callable[[bytes], Node | None]], T],
        key: str,
        first: NeedsLoad | None = None,
    ) -> T:
        """Run ``run_pass(fetch)`` until it no longer raises :class:`NeedsLoad`,
        loading what it asked for in between; a missing block names ``key``.

        Nodes loaded for the pass are held here until it finishes, so it
        makes progress even when the cache keeps nothing. ``first`` is the
        :class:`NeedsLoad` of a first run the caller made itself.
        """
        cached = self.cached
        wanted = first
        if wanted is None:
            try:  # the usual case: everything the pass needs is cached
                return run_pass(cached)
            except NeedsLoad as need:
                wanted = need
        loaded: dict[bytes, Node] = {}

        def fetch(raw_id: bytes) -> Node | None:
            node = loaded.get(raw_id)
            return node if node is not None else cached(raw_id)

        while True:
            try:
                loaded[wanted.raw_id] = await self.child(wanted.raw_id, wanted.parent, wanted.slot)
            except BlockNotFoundError as exc:
                raise missing(exc, f"a node on the path of key {key!r}") from exc
            try:
                return run_pass(fetch)
            except NeedsLoad as need:
                wanted = need

    def clear(self) -> None:
        self.cache.clear()
