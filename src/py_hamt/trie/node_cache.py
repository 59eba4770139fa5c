"""A byte-bounded LRU of decoded HAMT nodes, for read-only mode."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from py_hamt.trie.node import Node

__all__ = ["NodeCache"]


class NodeCache:
    """Decoded nodes by id, least recently used evicted first.

    ``nbytes`` is the sum of the nodes' :meth:`Node.memory` estimates and
    never exceeds ``max_bytes`` after a :meth:`put` returns (a single node
    larger than the bound is not kept).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._nodes: OrderedDict[Any, Node] = OrderedDict()
        # Read-only HAMTs may be shared by threads (dask's threaded scheduler);
        # the LRU's compound updates must not interleave.
        self._lock = threading.Lock()

    def get(self, block_id: Any) -> Node | None:
        with self._lock:
            node = self._nodes.get(block_id)
            if node is not None:
                self._nodes.move_to_end(block_id)
            return node

    def put(self, block_id: Any, node: Node) -> None:
        size = node.memory()
        if size > self.max_bytes:
            return
        with self._lock:
            if block_id in self._nodes:
                return
            self._nodes[block_id] = node
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, old = self._nodes.popitem(last=False)
                self.nbytes -= old.memory()

    def clear(self) -> None:
        with self._lock:
            self._nodes.clear()
            self.nbytes = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._nodes
