"""A small byte-bounded LRU for metadata documents (``zarr.json``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["DEFAULT_DOCUMENT_CACHE_BYTES", "DocumentCache"]

DEFAULT_DOCUMENT_CACHE_BYTES: Final = 8 * 2**20


class DocumentCache:
    """Documents by key, least recently used evicted first; ``nbytes`` (the
    documents' lengths) never exceeds ``max_bytes`` after a ``put``."""

    def __init__(self, max_bytes: int = DEFAULT_DOCUMENT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._docs: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
        return doc

    def put(self, key: str, doc: bytes) -> None:
        if len(doc) > self.max_bytes:
            return
        self.pop(key)
        self._docs[key] = doc
        self.nbytes += len(doc)
        while self.nbytes > self.max_bytes:
            _, old = self._docs.popitem(last=False)
            self.nbytes -= len(old)

    def pop(self, key: str) -> None:
        old = self._docs.pop(key, None)
        if old is not None:
            self.nbytes -= len(old)

    def clear(self) -> None:
        self._docs.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._docs)
