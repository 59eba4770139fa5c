"""Zarr v3 stores over py_hamt's content-addressed structures."""

from py_hamt.stores.encrypted_store import SimpleEncryptedZarrHAMTStore
from py_hamt.stores.hamt_store import ZarrHAMTStore
from py_hamt.stores.sharded import ShardedZarrStore

__all__ = ["ShardedZarrStore", "SimpleEncryptedZarrHAMTStore", "ZarrHAMTStore"]
