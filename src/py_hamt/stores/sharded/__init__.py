"""ShardedZarrStore: chunk CIDs in flat shards, one chunk index per array."""

from py_hamt.stores.sharded.store import ShardedZarrStore

__all__ = ["ShardedZarrStore"]
