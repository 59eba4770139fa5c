"""Alias of :class:`py_hamt.stores.encrypted_store.SimpleEncryptedZarrHAMTStore`
under py-hamt 3.x's module path: the same object, nothing else."""

from py_hamt.stores.encrypted_store import SimpleEncryptedZarrHAMTStore

__all__ = ["SimpleEncryptedZarrHAMTStore"]
