"""A small byte-bounded LRU for metadata documents (``zarr.json``)."""

from __future__ import annotations

from typing import Final

from py_hamt import observability
from py_hamt.caching import LRUCache

__all__ = ["DEFAULT_DOCUMENT_CACHE_BYTES", "DocumentCache"]

DEFAULT_DOCUMENT_CACHE_BYTES: Final = 8 * 2**20


class DocumentCache(LRUCache[str, bytes]):
    """Documents by key, least recently used evicted first; ``nbytes`` (the
    documents' lengths) never exceeds ``max_bytes`` after a ``put``. A
    document longer than ``max_bytes`` is not kept (and replaces, i.e. drops,
    an older copy under its key). Locked, like every :class:`LRUCache`."""

    def __init__(self, max_bytes: int = DEFAULT_DOCUMENT_CACHE_BYTES) -> None:
        super().__init__(max_bytes, len)

    def get(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        """The document, counting ``py_hamt.document_cache.hits``/``.misses``."""
        found = super().get(key)
        if observability.ACTIVE and observability.is_enabled():
            hit = "hits" if found is not None else "misses"
            observability.add(f"py_hamt.document_cache.{hit}")
        return default if found is None else found
