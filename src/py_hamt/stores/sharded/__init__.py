"""ShardedZarrStore: chunk CIDs in flat shards, one chunk index per array.

Layers: ``layout`` (the root formats), ``routing`` (which key lives where),
``session`` (root, shard I/O, commit), ``relayout`` (indexes following their
arrays' grids), ``legacy`` (sharded_zarr_v1), ``edits`` (graft, resize,
clear), ``listing``, and ``store`` (the thin zarr adapter).
"""

from py_hamt.stores.sharded.session import ShardReadMode
from py_hamt.stores.sharded.store import ShardedZarrStore, ShardedZarrV1DeprecationWarning

__all__ = ["ShardReadMode", "ShardedZarrStore", "ShardedZarrV1DeprecationWarning"]
