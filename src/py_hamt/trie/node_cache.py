"""A byte-bounded LRU of decoded HAMT nodes, for read-only mode."""

from __future__ import annotations

from typing import Any

from py_hamt.caching import LRUCache
from py_hamt.trie.node import Node

__all__ = ["NodeCache"]


class NodeCache(LRUCache[Any, Node]):
    """Decoded nodes by id, least recently used evicted first.

    ``nbytes`` is the sum of the nodes' :meth:`Node.memory` estimates and
    never exceeds ``max_bytes`` after a :meth:`put` returns (a single node
    larger than the bound is not kept). Locked: read-only HAMTs may be shared
    by threads (dask's threaded scheduler). A pickled cache arrives empty.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, Node.memory)
