"""Alias of :class:`py_hamt.stores.hamt_store.ZarrHAMTStore` under py-hamt
3.x's module path: the same object, nothing else."""

from py_hamt.stores.hamt_store import ZarrHAMTStore

__all__ = ["ZarrHAMTStore"]
