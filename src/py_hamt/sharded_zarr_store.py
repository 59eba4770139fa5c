"""Alias of :mod:`py_hamt.stores.sharded` under py-hamt 3.x's module path
(``from py_hamt.sharded_zarr_store import ShardedZarrStore``): the same
objects, nothing else."""

from py_hamt.stores.sharded import ShardedZarrStore, ShardedZarrV1DeprecationWarning, ShardReadMode

__all__ = ["ShardReadMode", "ShardedZarrStore", "ShardedZarrV1DeprecationWarning"]
