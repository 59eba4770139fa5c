"""The state behind a ShardedZarrStore: its root, chunk indexes, shard I/O
and commit. The Zarr adapter (``store.py``) hands every call to one of these;
views made by ``with_read_only`` share it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from multiformats import CID

from py_hamt import observability
from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.codec.cids import cid_from_bytes
from py_hamt.codec.shard import decode_shard, decode_shard_entry, encode_shard
from py_hamt.errors import AmbiguousLayoutError, InvalidArgumentError, MalformedNodeError
from py_hamt.stores.document_cache import DocumentCache
from py_hamt.stores.prefetch import Prefetcher
from py_hamt.stores.sharded import legacy, relayout
from py_hamt.stores.sharded.grid import grid_from_zarr_json
from py_hamt.stores.sharded.layout import ArrayIndex, Manifest
from py_hamt.stores.sharded.routing import Route, array_path_of, route
from py_hamt.stores.sharded.shard_cache import Shard, ShardCache

__all__ = ["SPARSE_PROMOTE_THRESHOLD", "Session", "ShardReadMode"]

ShardReadMode = Literal["full", "sparse", "auto"]
SPARSE_PROMOTE_THRESHOLD: Final = 256
"""In ``auto`` mode, sparse reads of any one shard before the store switches
to decoding and caching whole shards (a caller reading that much is scanning):
py-hamt 3.6's 256, or a quarter of a shard's entries if that is fewer (at
least 8), since a shard of 64 entries is never read 256 times."""


def _shard_loaded(entries: list[bytes | None], seconds: float) -> None:
    """Record one whole shard read from the store and decoded."""
    observability.add("py_hamt.sharded_store.shard_load.requests")
    observability.add("py_hamt.sharded_store.shard_cache.misses")
    observability.record("py_hamt.sharded_store.shard_load.duration", seconds)
    observability.record(
        "py_hamt.sharded_store.shard_entries", sum(1 for e in entries if e is not None)
    )


@dataclass
class Session:
    """One sharded dataset being read or written."""

    cas: ContentAddressedStore
    cache: ShardCache
    read_mode: ShardReadMode = "auto"
    manifest: Manifest | None = None
    root_cid: CID | None = None
    dirty_root: bool = False
    last_commit: WriteResult | None = None
    on_write: Callable[[str, WriteResult], None] | None = None
    documents: DocumentCache = field(default_factory=DocumentCache)
    prefetcher: Prefetcher | None = None
    _loading: dict[CID, asyncio.Future[bytes]] = field(default_factory=dict)
    _sparse_reads: dict[tuple[str, int], int] = field(default_factory=dict)
    _latched: bool = False

    # ------------------------------------------------------------ the root
    @property
    def committed(self) -> bool:
        return not self.dirty_root and self.root_cid is not None and not self.cache.dirty()

    async def load_manifest(self) -> Manifest:
        """The root in memory, loaded (and, for an older v1 root, its primary
        array inferred) on first use."""
        if self.manifest is not None:
            return self.manifest
        root = self.root_cid
        if root is None:  # pragma: no cover - a new store always has a manifest
            raise InvalidArgumentError("the store has no root")
        manifest = Manifest.decode(await self.cas.load(self.cas.cid_to_id(root)), root)
        await legacy.infer_primary(self, manifest)
        if self.manifest is None:
            self.manifest = manifest
        return self.manifest

    def route(self, manifest: Manifest, key: str) -> Route | None:
        return route(manifest, key, self.root_cid)

    # ------------------------------------------------------------- lookups
    async def lookup(self, key: str, *, sparse_ok: bool = False) -> CID | None:
        """The CID under ``key``, or ``None``.

        A chunk whose index slot is empty falls back to ``metadata`` (py-hamt
        3.6 keeps some chunks there); a slot and a ``metadata`` entry that
        disagree are :class:`AmbiguousLayoutError`.
        """
        manifest = await self.load_manifest()
        routed = self.route(manifest, key)
        in_map = manifest.metadata.get(key)
        if routed is None:
            return in_map
        raw = await self.read_slot(routed, sparse_ok=sparse_ok)
        if raw is None:
            return in_map
        cid = cid_from_bytes(raw)
        if in_map is not None and in_map != cid:
            raise AmbiguousLayoutError(
                f"sharded root {self.root_cid} holds two CIDs for {key!r}: "
                f"{cid} in its chunk index and {in_map} in its metadata",
                self.root_cid,
            )
        return cid

    # ---------------------------------------------------------------- shards
    async def shard(self, path: str, index: ArrayIndex, shard_no: int) -> Shard:
        """Shard ``shard_no`` of an index, from the cache or loaded into it.
        Concurrent callers on one event loop share a single block load."""
        key = (path, shard_no)
        while True:
            cached = self.cache.get(key)
            if cached is not None:
                if observability.ACTIVE:
                    observability.add("py_hamt.sharded_store.shard_cache.hits")
                return cached
            cid = index.shard_cids[shard_no] if shard_no < len(index.shard_cids) else None
            if cid is None:
                return self.cache.put(key, Shard([None] * index.grid.chunks_per_shard))
            entries = await self._fetch(cid, index.grid.chunks_per_shard)
            current = index.shard_cids[shard_no] if shard_no < len(index.shard_cids) else None
            if current == cid:
                # Another task may have changed a cached copy meanwhile: it wins.
                return self.cache.put(key, Shard(entries))

    async def entries(self, key: str, index: ArrayIndex) -> AsyncIterator[tuple[int, bytes]]:
        """``(linear index, binary CID)`` of every chunk an index points at,
        shard by shard; shards never written are skipped unloaded."""
        per_shard = index.grid.chunks_per_shard
        for shard_no in range(index.grid.num_shards):
            if index.shard_cids[shard_no] is None and self.cache.get((key, shard_no)) is None:
                continue
            shard = await self.shard(key, index, shard_no)
            for slot, raw in enumerate(list(shard.entries)):
                linear = shard_no * per_shard + slot
                if raw is not None and linear < index.grid.total_chunks:
                    yield linear, raw

    async def _fetch(self, cid: CID, per_shard: int) -> list[bytes | None]:
        start = time.perf_counter() if observability.ACTIVE else 0.0
        data = await self._shard_bytes(cid)
        try:
            entries = decode_shard(data, per_shard)
        except ValueError as exc:
            raise _not_a_shard(cid, per_shard, exc) from exc
        if observability.ACTIVE:
            _shard_loaded(entries, time.perf_counter() - start)
        return entries

    async def _fetch_entry(self, cid: CID, per_shard: int, slot: int) -> bytes | None:
        data = await self._shard_bytes(cid)
        try:
            return decode_shard_entry(data, per_shard, slot)
        except ValueError as exc:
            raise _not_a_shard(cid, per_shard, exc) from exc

    async def _shard_bytes(self, cid: CID) -> bytes:
        """A shard block, verified whole; concurrent reads of one shard on one
        loop share the fetch (nothing is kept after it: caching is the
        shard cache's, in full mode)."""
        loop = asyncio.get_running_loop()
        pending = self._loading.get(cid)
        if pending is not None and pending.get_loop() is loop:
            return await asyncio.shield(pending)
        done: asyncio.Future[bytes] = loop.create_future()
        self._loading[cid] = done
        try:
            data = await self.cas.load(self.cas.cid_to_id(cid))
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: waiters see it, nothing is logged
            raise
        else:
            done.set_result(data)
            return data
        finally:
            if self._loading.get(cid) is done:
                del self._loading[cid]

    def _wants_sparse(self, routed: Route) -> bool:
        key = (routed.path, routed.linear // routed.array.grid.chunks_per_shard)
        if self.read_mode == "full" or self.cache.get(key) is not None:
            return False
        if self.read_mode == "sparse":
            return True
        if self._latched:
            return False
        count = self._sparse_reads.get(key, 0) + 1
        per_shard = routed.array.grid.chunks_per_shard
        if count >= min(SPARSE_PROMOTE_THRESHOLD, max(8, per_shard // 4)):
            self._latched = True
            self._sparse_reads.clear()
            return False
        self._sparse_reads[key] = count
        return True

    async def read_slot(self, routed: Route, *, sparse_ok: bool = False) -> bytes | None:
        """One index entry. ``sparse_ok`` (read-only stores) lets the read
        mode fetch the shard for this entry alone, without caching it; the
        shard block is verified against its CID either way."""
        path, index, linear = routed
        shard_no, slot = divmod(linear, index.grid.chunks_per_shard)
        cid = index.shard_cids[shard_no]
        if sparse_ok and cid is not None and self._wants_sparse(routed):
            return await self._fetch_entry(cid, index.grid.chunks_per_shard, slot)
        raw = (await self.shard(path, index, shard_no)).entries[slot]
        self.cache.evict()
        return raw

    async def write_slot(self, routed: Route, raw: bytes | None) -> None:
        path, index, linear = routed
        shard_no, slot = divmod(linear, index.grid.chunks_per_shard)
        shard = await self.shard(path, index, shard_no)
        if shard.entries[slot] != raw:
            self.cache.grew(shard.put(slot, raw))
        self.cache.evict()
        if self.cache.over_budget() and self.cache.dirty():
            await self.write_dirty_shards()
            self.cache.evict()

    # ---------------------------------------------------------------- writes
    async def put(self, key: str, cid: CID, document: bytes | None) -> None:
        """Point ``key`` at ``cid``. ``document`` is the value of a metadata
        key (``zarr.json``): an array's document sets its chunk index."""
        manifest = await self.load_manifest()
        if document is not None:
            manifest.metadata[key] = cid
            self.dirty_root = True
            self.documents.pop(key)
            path = array_path_of(key)
            if path is not None and key.endswith("zarr.json"):
                grid = grid_from_zarr_json(document, manifest.chunks_per_shard)
                if manifest.is_v1:
                    await legacy.claim_grid(self, manifest, path, grid, document)
                else:
                    await relayout.adopt_grid(self, manifest, path, grid)
            return
        routed = self.route(manifest, key)
        if routed is None:
            manifest.metadata[key] = cid
            self.dirty_root = True
            return
        if manifest.is_v1 and manifest.primary is None:
            legacy.record_primary(manifest, key)
        await self.write_slot(routed, bytes(cid))
        if manifest.metadata.pop(key, None) is not None:
            self.dirty_root = True

    async def delete(self, key: str) -> None:
        manifest = await self.load_manifest()
        routed = self.route(manifest, key)
        if routed is not None:
            await self.write_slot(routed, None)
        if manifest.metadata.pop(key, None) is not None:
            self.dirty_root = True
            self.documents.pop(key)

    # ---------------------------------------------------------------- commit
    async def write_dirty_shards(self) -> None:
        manifest = await self.load_manifest()

        async def write(key: tuple[str, int], shard: Shard) -> None:
            version = shard.version
            cid = self.cas.id_to_cid(
                await self.cas.save(encode_shard(shard.entries), "dag-cbor"), "dag-cbor"
            )
            index = manifest.arrays.get(key[0])
            if shard.version != version or index is None or key[1] >= len(index.shard_cids):
                return  # changed meanwhile, or its array was re-laid out
            index.shard_cids[key[1]] = None if all(e is None for e in shard.entries) else cid
            shard.dirty = False
            self.dirty_root = True

        await asyncio.gather(*(write(k, s) for k, s in self.cache.dirty()))

    async def commit(self) -> CID:
        """Write changed shards, then the root; the root's CID. Nothing
        changed: the current root, with nothing written."""
        manifest = await self.load_manifest()
        started = time.perf_counter()
        while True:
            while self.cache.dirty():
                await self.write_dirty_shards()
            if not self.dirty_root and self.root_cid is not None:
                if observability.ACTIVE and observability.is_enabled():
                    observability.record(
                        "py_hamt.sharded_store.commit.duration", time.perf_counter() - started
                    )
                return self.root_cid
            written = await self.cas.put(manifest.encode(), "dag-cbor")
            if not self.cache.dirty():  # else a write raced the root: go again
                self.root_cid = self.cas.id_to_cid(written.id, "dag-cbor")
                self.last_commit = written
                self.dirty_root = False
                self.documents.clear()


def _not_a_shard(cid: CID, per_shard: int, exc: ValueError) -> MalformedNodeError:
    return MalformedNodeError(f"block {cid} is not a shard of {per_shard} entries: {exc}", cid)
