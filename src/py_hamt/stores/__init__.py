"""Zarr v3 stores over py_hamt's content-addressed structures."""

from py_hamt.stores.hamt_store import ZarrHAMTStore

__all__ = ["ZarrHAMTStore"]
