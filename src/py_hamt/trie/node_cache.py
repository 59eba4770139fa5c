"""A byte-bounded LRU of decoded HAMT nodes, and the caches that read-only
HAMTs on one store object share."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from py_hamt.caching import LRUCache
from py_hamt.trie.node import Node

__all__ = ["NodeCache", "shared_node_cache"]


class NodeCache(LRUCache[Any, Node]):
    """Decoded nodes by id, least recently used evicted first.

    ``nbytes`` is the sum of the nodes' :meth:`Node.memory` estimates and
    never exceeds ``max_bytes`` after a :meth:`put` returns (a single node
    larger than the bound is not kept). Locked: read-only HAMTs may be shared
    by threads (dask's threaded scheduler). A pickled cache arrives empty.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, Node.memory)


_Settings = tuple[int, int, int]
"""``(max_bucket_size, id(hash_fn), max_bytes)``: what a cached node depends
on besides its id (the bucket bound it was checked against, the hash its
``checked`` path was found with), and the cache's bound. The hash function
is told apart by identity, never by ``==``, and each entry holds it, so its
id cannot be reused while the entry lives."""

# Per live store object (by id): a weak reference to it, and its shared
# caches, each with the hash function it was made for.
_SHARED: dict[
    int, tuple[weakref.ref[Any], dict[_Settings, tuple[Callable[[bytes], bytes], NodeCache]]]
] = {}
# Reentrant: a store object collected while the lock is held calls _forget.
_LOCK = threading.RLock()


def shared_node_cache(
    cas: object, max_bucket_size: int, hash_fn: Callable[[bytes], bytes], max_bytes: int
) -> NodeCache | None:
    """The node cache that read-only HAMTs opened on this very store object
    with these settings share, created on first use; ``None`` when the store
    object cannot be weakly referenced (the HAMT then keeps a cache of its
    own).

    Sharing is by object identity: a node is the block its id names as this
    store returned it, so HAMTs on another store object (another folder,
    another gateway, or the same one opened again) never see it. The cache
    lives as long as the store object: re-opening a root on the same store
    finds the nodes an earlier reader loaded, up to ``max_bytes`` in all.
    """
    key = id(cas)
    settings: _Settings = (max_bucket_size, id(hash_fn), max_bytes)
    with _LOCK:
        entry = _SHARED.get(key)
        if entry is None or entry[0]() is not cas:
            try:
                ref = weakref.ref(cas, lambda _: _forget(key))
            except TypeError:
                return None
            entry = (ref, {})
            _SHARED[key] = entry
        held = entry[1].get(settings)
        if held is None:
            held = entry[1][settings] = (hash_fn, NodeCache(max_bytes))
        return held[1]


def _forget(key: int) -> None:
    """A store object is gone: drop its caches (unless the id was reused)."""
    with _LOCK:
        entry = _SHARED.get(key)
        if entry is not None and entry[0]() is None:
            del _SHARED[key]
