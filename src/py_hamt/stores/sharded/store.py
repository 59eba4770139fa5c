"""ShardedZarrStore: a zarr v3 store whose chunk CIDs live in flat shards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from multiformats import CID
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.codec.cids import cid_from_bytes, coerce_cid, freeze_id, thaw_id
from py_hamt.codec.shard import decode_shard, encode_shard
from py_hamt.errors import (
    InvalidArgumentError,
    MalformedNodeError,
    NotCommittedError,
    ReadOnlyError,
)
from py_hamt.stores.byte_ranges import to_hamt_range
from py_hamt.stores.document_cache import DocumentCache
from py_hamt.stores.sharded.grid import ChunkGrid, grid_from_zarr_json
from py_hamt.stores.sharded.manifest import (
    LEGACY,
    MANIFEST_V1,
    MANIFEST_V2,
    ArrayIndex,
    Manifest,
    v1_chunk_coords,
)
from py_hamt.stores.sharded.shard_cache import Shard, ShardCache
from py_hamt.stores.store_mixin import StoreMixin

__all__ = ["DEFAULT_MAX_CACHE_MEMORY_BYTES", "ShardedZarrStore"]

DEFAULT_MAX_CACHE_MEMORY_BYTES: Final = 100 * 2**20
_METADATA_SUFFIX: Final = "zarr.json"


@dataclass
class _State:
    """What views of one store (``with_read_only``) share."""

    cas: ContentAddressedStore
    cache: ShardCache
    manifest: Manifest | None = None
    root_cid: CID | None = None
    dirty_root: bool = False
    last_commit: WriteResult | None = None
    on_write: Callable[[str, WriteResult], None] | None = None
    documents: DocumentCache = field(default_factory=DocumentCache)


def _unpickle(
    cas: ContentAddressedStore, read_only: bool, root: object, max_bytes: int
) -> ShardedZarrStore:
    return ShardedZarrStore(
        cas,
        read_only,
        coerce_cid(thaw_id(root), "root_cid"),
        max_cache_memory_bytes=max_bytes,
    )


def _array_path(metadata_key: str) -> str:
    return metadata_key[: -len(_METADATA_SUFFIX)].rstrip("/")


class ShardedZarrStore(StoreMixin, Store):
    """Zarr v3 keys over a CAS, with chunk CIDs packed into shards.

    Create with ``await ShardedZarrStore.open(...)``; commit with
    ``await store.flush()``, which writes changed shards and then the root
    and returns the root CID.

    Each array gets its own chunk index, learned from its ``zarr.json``
    (regular grid, default key encoding); every other key, and any chunk
    outside its array's grid, is kept in the root's key map. The store thus
    answers every key exactly as a plain key-value store would, whatever the
    arrays are called. ``sharded_zarr_v1`` roots (py-hamt 3.x) read as 3.x
    read them; opened for writing they are upgraded, and ``flush`` writes v2.

    Args (of :meth:`open`):
        cas: where chunks, shards and roots are stored.
        read_only: refuse writes. A read-only open needs ``root_cid``.
        root_cid: an existing root (a CID or its text).
        array_shape, chunk_shape, chunks_per_shard: the store-level grid a
            new store needs (``chunks_per_shard > 0`` also sets the shard
            size of every array's index). ``resize_store`` and
            ``graft_store`` work in its terms.
        max_cache_memory_bytes: bound on shards held in memory. Clean shards
            are evicted least recently used first; changed shards are written
            out early when they alone pass the bound.

    Raises:
        InvalidArgumentError: missing or inconsistent arguments.
        MalformedNodeError: ``root_cid`` is not a sharded root.
    """

    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(
        self,
        cas: ContentAddressedStore,
        read_only: bool,
        root_cid: CID | str | None = None,
        *,
        array_shape: Sequence[int] | None = None,
        chunk_shape: Sequence[int] | None = None,
        chunks_per_shard: int | None = None,
        max_cache_memory_bytes: int = DEFAULT_MAX_CACHE_MEMORY_BYTES,
        state: _State | None = None,
    ) -> None:
        super().__init__(read_only=read_only)
        if state is not None:
            self._state = state
            return
        if not isinstance(cas, ContentAddressedStore):
            raise InvalidArgumentError(
                f"cas must be a ContentAddressedStore, got {type(cas).__name__}"
            )
        if not isinstance(max_cache_memory_bytes, int) or max_cache_memory_bytes < 0:
            raise InvalidArgumentError(
                f"max_cache_memory_bytes must be an int >= 0, got {max_cache_memory_bytes!r}"
            )
        self._state = _State(cas=cas, cache=ShardCache(max_cache_memory_bytes))
        if root_cid is not None:
            self._state.root_cid = coerce_cid(root_cid, "root_cid")
            return
        if read_only:
            raise InvalidArgumentError("a read-only ShardedZarrStore needs root_cid")
        if array_shape is None or chunk_shape is None:
            raise InvalidArgumentError("a new ShardedZarrStore needs array_shape and chunk_shape")
        if (
            not isinstance(chunks_per_shard, int)
            or isinstance(chunks_per_shard, bool)
            or chunks_per_shard <= 0
        ):
            raise InvalidArgumentError(
                f"chunks_per_shard must be an int > 0, got {chunks_per_shard!r}"
            )
        grid = ChunkGrid(tuple(array_shape), tuple(chunk_shape), chunks_per_shard)
        self._state.manifest = Manifest(MANIFEST_V2, grid)
        self._state.dirty_root = True

    @classmethod
    async def open(
        cls,
        cas: ContentAddressedStore,
        read_only: bool,
        root_cid: CID | str | None = None,
        *,
        array_shape: Sequence[int] | None = None,
        chunk_shape: Sequence[int] | None = None,
        chunks_per_shard: int | None = None,
        max_cache_memory_bytes: int = DEFAULT_MAX_CACHE_MEMORY_BYTES,
    ) -> ShardedZarrStore:
        """Open an existing root or start a new store; loads the root now."""
        store = cls(
            cas,
            read_only,
            root_cid,
            array_shape=array_shape,
            chunk_shape=chunk_shape,
            chunks_per_shard=chunks_per_shard,
            max_cache_memory_bytes=max_cache_memory_bytes,
        )
        await store._open()
        await store._manifest()
        return store

    def with_read_only(self, read_only: bool = False) -> ShardedZarrStore:
        """A view of the same store (shared shards and changes) with another flag."""
        return type(self)(self._state.cas, read_only, state=self._state)

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("store was opened in read-only mode and does not support writing")

    # --------------------------------------------------------------- identity
    @property
    def cas(self) -> ContentAddressedStore:
        return self._state.cas

    @property
    def root_cid(self) -> CID | None:
        """The root written by the last :meth:`flush` (or opened), if any."""
        return self._state.root_cid

    @property
    def last_commit(self) -> WriteResult | None:
        """The root block's :class:`WriteResult` from the last :meth:`flush`."""
        return self._state.last_commit

    @property
    def on_write(self) -> Callable[[str, WriteResult], None] | None:
        """Called as ``on_write(key, result)`` for every value :meth:`set` writes."""
        return self._state.on_write

    @on_write.setter
    def on_write(self, callback: Callable[[str, WriteResult], None] | None) -> None:
        self._state.on_write = callback

    @property
    def max_cache_memory_bytes(self) -> int:
        return self._state.cache.max_bytes

    @property
    def cache_bytes(self) -> int:
        """Bytes of shards held in memory now."""
        return self._state.cache.nbytes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardedZarrStore) or type(other) is not type(self):
            return False
        if self._state is other._state:
            return self.read_only == other.read_only
        return (
            self.read_only == other.read_only
            and not self._state.dirty_root
            and not other._state.dirty_root
            and self._state.root_cid == other._state.root_cid
            and self._state.cas == other._state.cas
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        root = self._state.root_cid
        shown = str(root) if root is not None else "<new>"
        return f"ShardedZarrStore(root={shown}, read_only={self.read_only})"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        state = self._state
        if state.dirty_root or state.root_cid is None or state.cache.dirty():
            return ("ShardedZarrStore", "uncommitted", str(id(state)))
        return ("ShardedZarrStore", str(state.root_cid), str(self.read_only))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the committed root: (cas, read_only, root CID, cache bound).

        Raises:
            NotCommittedError: there are changes not yet flushed.
        """
        state = self._state
        if state.dirty_root or state.root_cid is None or state.cache.dirty():
            raise NotCommittedError(
                "cannot pickle a ShardedZarrStore with unflushed changes; call flush() first"
            )
        return (
            _unpickle,
            (state.cas, self.read_only, freeze_id(state.root_cid), state.cache.max_bytes),
        )

    # ------------------------------------------------------------ the root
    async def _manifest(self) -> Manifest:
        state = self._state
        if state.manifest is not None:
            return state.manifest
        root = state.root_cid
        if root is None:
            raise InvalidArgumentError("the store has no root")  # pragma: no cover
        data = await state.cas.load(state.cas.cid_to_id(root))
        manifest = Manifest.decode(data, root)
        if state.manifest is None:
            state.manifest = manifest
            if manifest.version == MANIFEST_V1 and not self.read_only:
                await self._upgrade_v1()
        return state.manifest

    # ---------------------------------------------------------------- routing
    def _route(self, manifest: Manifest, key: str) -> tuple[str, ArrayIndex, int] | None:
        """(array path, index, linear chunk index) if ``key`` is an indexed
        chunk; ``None`` if it lives in the key map."""
        if key.endswith(_METADATA_SUFFIX):
            return None
        if manifest.version == MANIFEST_V1:
            legacy = manifest.arrays[LEGACY]
            coords = v1_chunk_coords(key, legacy.grid)
            if coords is None:
                return None
            linear = legacy.grid.linear(coords)
            return None if linear is None else (LEGACY, legacy, linear)
        for path in self._candidate_paths(key):
            index = manifest.arrays.get(path)
            if index is None:
                continue
            coords = index.grid.parse_coords(path, key)
            if coords is None:
                continue
            linear = index.grid.linear(coords)
            if linear is not None:
                return path, index, linear
        return None

    @staticmethod
    def _candidate_paths(key: str) -> list[str]:
        paths = []
        marker = key.rfind("/c/")
        if marker >= 0:
            paths.append(key[:marker])
        elif key.startswith("c/"):
            paths.append("")
        head, _, last = key.rpartition("/")
        if last == "c" or last.startswith("c."):
            paths.append(head)
        return paths

    # ----------------------------------------------------------------- shards
    async def _shard(self, path: str, index: ArrayIndex, shard_no: int) -> Shard:
        cache = self._state.cache
        key = (path, shard_no)
        per_shard = index.grid.chunks_per_shard
        while True:
            shard = cache.get(key)
            if shard is not None:
                return shard
            cid = index.shard_cids[shard_no] if shard_no < len(index.shard_cids) else None
            if cid is None:
                return cache.put(key, Shard([None] * per_shard))
            data = await self._state.cas.load(self._state.cas.cid_to_id(cid))
            current = index.shard_cids[shard_no] if shard_no < len(index.shard_cids) else None
            if current != cid:
                continue  # written anew while we loaded: what we hold is stale
            try:
                fresh = Shard(decode_shard(data, per_shard))
            except ValueError as exc:
                raise MalformedNodeError(
                    f"block {cid} is not a shard of {per_shard} entries: {exc}", cid
                ) from exc
            # Another task may have loaded (and changed) it while we waited.
            return cache.put(key, fresh)

    async def _read_slot(self, path: str, index: ArrayIndex, linear: int) -> bytes | None:
        shard_no, slot = divmod(linear, index.grid.chunks_per_shard)
        raw = (await self._shard(path, index, shard_no)).entries[slot]
        self._state.cache.evict()
        return raw

    async def _write_slot(
        self, path: str, index: ArrayIndex, linear: int, raw: bytes | None
    ) -> None:
        shard_no, slot = divmod(linear, index.grid.chunks_per_shard)
        shard = await self._shard(path, index, shard_no)
        if shard.entries[slot] != raw:
            self._state.cache.grew(shard.put(slot, raw))
        await self._keep_within_budget()

    async def _keep_within_budget(self) -> None:
        cache = self._state.cache
        cache.evict()
        if cache.over_budget() and cache.dirty():
            await self._write_dirty_shards()
            cache.evict()

    # ------------------------------------------------------------------ reads
    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """The value under ``key`` (or a byte range), ``None`` if absent."""
        offset, length, suffix = to_hamt_range(byte_range)
        manifest = await self._manifest()
        cid = await self._lookup(manifest, key)
        if cid is None:
            return None
        state = self._state
        is_document = byte_range is None and key.endswith(_METADATA_SUFFIX)
        if is_document and self.read_only and not state.dirty_root:
            cached = state.documents.get(key)
            if cached is not None:
                return prototype.buffer.from_bytes(cached)
        data = await state.cas.load(
            state.cas.cid_to_id(cid), offset=offset, length=length, suffix=suffix
        )
        if is_document and self.read_only and not state.dirty_root:
            state.documents.put(key, data)
        return prototype.buffer.from_bytes(data)

    async def _lookup(self, manifest: Manifest, key: str) -> CID | None:
        routed = self._route(manifest, key)
        if routed is None:
            return manifest.metadata.get(key)
        raw = await self._read_slot(*routed)
        return None if raw is None else cid_from_bytes(raw)

    async def exists(self, key: str) -> bool:
        return await self._lookup(await self._manifest(), key) is not None

    # ----------------------------------------------------------------- writes
    async def set(self, key: str, value: Buffer) -> None:
        """Store ``value`` under ``key`` (the bytes as a raw block)."""
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(
                f"ShardedZarrStore.set expects a zarr Buffer, got {type(value).__name__}"
            )
        data = value.to_bytes()
        cas = self._state.cas
        written = await cas.put(data, "raw")
        cid = cas.id_to_cid(written.id, "raw")
        self._check_writable()
        await self._put(key, cid, data if key.endswith(_METADATA_SUFFIX) else None)
        if self._state.on_write is not None:
            self._state.on_write(key, written)

    async def set_pointer(self, key: str, pointer: CID | str) -> None:
        """Point ``key`` at an existing block without copying it.

        For a ``zarr.json`` key the document is read, to learn the array's grid.
        """
        self._check_writable()
        cid = coerce_cid(pointer, "pointer")
        document = None
        if key.endswith(_METADATA_SUFFIX):
            document = await self._state.cas.load(self._state.cas.cid_to_id(cid))
        await self._put(key, cid, document)

    async def _put(self, key: str, cid: CID, document: bytes | None) -> None:
        manifest = await self._manifest()
        state = self._state
        if document is not None:
            manifest.metadata[key] = cid
            state.dirty_root = True
            state.documents.pop(key)
            await self._adopt_grid(
                manifest,
                _array_path(key),
                grid_from_zarr_json(document, manifest.grid.chunks_per_shard),
            )
            return
        routed = self._route(manifest, key)
        if routed is None:
            manifest.metadata[key] = cid
            state.dirty_root = True
        else:
            await self._write_slot(*routed, bytes(cid))

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        self._check_writable()
        manifest = await self._manifest()
        routed = self._route(manifest, key)
        if routed is not None:
            await self._write_slot(*routed, None)
        elif manifest.metadata.pop(key, None) is not None:
            self._state.dirty_root = True
            self._state.documents.pop(key)

    # ------------------------------------------------------- array indexes
    async def _adopt_grid(self, manifest: Manifest, path: str, grid: ChunkGrid | None) -> None:
        """Make array ``path``'s index follow ``grid`` (``None``: no index).

        Chunks keep their keys: those inside the new grid go to its index,
        any others to the key map.
        """
        old = manifest.arrays.get(path)
        if old is not None and grid == old.grid:
            return
        if old is not None and grid is not None and self._only_first_dim_changed(old.grid, grid):
            await self._resize_along_first_dim(manifest, path, old, grid)
        else:
            pointers = await self._take_index(manifest, path) if old is not None else {}
            if grid is not None:
                manifest.arrays[path] = ArrayIndex.empty(grid)
            for coords, raw in pointers.items():
                await self._place(manifest, path, coords, raw, old.grid if old else grid)
        if grid is not None:
            await self._absorb_from_key_map(manifest, path)
        self._state.dirty_root = True

    @staticmethod
    def _only_first_dim_changed(old: ChunkGrid, new: ChunkGrid) -> bool:
        return (
            old.chunk_shape == new.chunk_shape
            and old.separator == new.separator
            and old.chunks_per_shard == new.chunks_per_shard
            and len(old.shape) == len(new.shape) >= 1
            and old.chunks_per_dim[1:] == new.chunks_per_dim[1:]
        )

    async def _resize_along_first_dim(
        self, manifest: Manifest, path: str, old: ArrayIndex, grid: ChunkGrid
    ) -> None:
        # Row-major indices of surviving chunks do not move: only the tail changes.
        if grid.total_chunks < old.grid.total_chunks:
            for linear in range(grid.total_chunks, old.grid.total_chunks):
                raw = await self._read_slot(path, old, linear)
                if raw is not None:
                    await self._write_slot(path, old, linear, None)
                    key = old.grid.chunk_key(path, old.grid.coords(linear))
                    manifest.metadata[key] = cid_from_bytes(raw)
            for shard_no in range(grid.num_shards, old.grid.num_shards):
                self._state.cache.drop((path, shard_no))
        shards = old.shard_cids[: grid.num_shards]
        shards += [None] * (grid.num_shards - len(shards))
        old.grid, old.shard_cids = grid, shards

    async def _take_index(self, manifest: Manifest, path: str) -> dict[tuple[int, ...], bytes]:
        """Remove array ``path``'s index and return its chunk pointers."""
        index = manifest.arrays[path]
        pointers: dict[tuple[int, ...], bytes] = {}
        for shard_no in range(index.grid.num_shards):
            shard = await self._shard(path, index, shard_no)
            base = shard_no * index.grid.chunks_per_shard
            for slot, raw in enumerate(shard.entries):
                if raw is not None and base + slot < index.grid.total_chunks:
                    pointers[index.grid.coords(base + slot)] = raw
        self._state.cache.drop_array(path)
        del manifest.arrays[path]
        return pointers

    async def _place(
        self,
        manifest: Manifest,
        path: str,
        coords: tuple[int, ...],
        raw: bytes,
        key_grid: ChunkGrid | None,
    ) -> None:
        index = manifest.arrays.get(path)
        linear = (
            index.grid.linear(coords) if index and len(coords) == len(index.grid.shape) else None
        )
        if index is not None and linear is not None:
            await self._write_slot(path, index, linear, raw)
        elif key_grid is not None:
            manifest.metadata[key_grid.chunk_key(path, coords)] = cid_from_bytes(raw)
            self._state.dirty_root = True

    async def _absorb_from_key_map(self, manifest: Manifest, path: str) -> None:
        index = manifest.arrays[path]
        prefix = f"{path}/c" if path else "c"
        for key in [k for k in manifest.metadata if k.startswith(prefix)]:
            coords = index.grid.parse_coords(path, key)
            linear = index.grid.linear(coords) if coords is not None else None
            if linear is not None:
                cid = manifest.metadata.pop(key)
                await self._write_slot(path, index, linear, bytes(cid))

    async def _upgrade_v1(self) -> None:
        """Turn a v1 root into v2 in memory, keeping what every key reads."""
        v1 = self._state.manifest
        if v1 is None or v1.version != MANIFEST_V1:  # pragma: no cover
            return
        legacy = v1.arrays[LEGACY]
        keys: dict[str, CID] = {}
        grids: dict[str, ChunkGrid] = {}
        for key, cid in v1.metadata.items():
            keys[key] = cid
            if key.endswith(_METADATA_SUFFIX):
                document = await self._state.cas.load(self._state.cas.cid_to_id(cid))
                grid = grid_from_zarr_json(document, legacy.grid.chunks_per_shard)
                if grid is not None:
                    grids[_array_path(key)] = grid
        for path, grid in grids.items():
            for linear in range(grid.total_chunks):
                key = grid.chunk_key(path, grid.coords(linear))
                found = await self._lookup(v1, key)
                if found is not None:
                    keys[key] = found
        v2 = Manifest(MANIFEST_V2, legacy.grid)
        self._state.cache.drop_array(LEGACY)
        self._state.manifest = v2
        self._state.dirty_root = True
        for path, grid in grids.items():
            v2.arrays[path] = ArrayIndex.empty(grid)
        for key, cid in keys.items():
            routed = self._route(v2, key)
            if routed is None:
                v2.metadata[key] = cid
            else:
                await self._write_slot(*routed, bytes(cid))

    # ------------------------------------------------------------- commit
    async def _write_dirty_shards(self) -> None:
        state = self._state
        manifest = await self._manifest()
        dirty = state.cache.dirty()

        async def write(key: tuple[str, int], shard: Shard) -> None:
            version = shard.version
            cid = state.cas.id_to_cid(
                await state.cas.save(encode_shard(shard.entries), "dag-cbor"), "dag-cbor"
            )
            index = manifest.arrays.get(key[0])
            if shard.version != version or index is None or key[1] >= len(index.shard_cids):
                return  # changed meanwhile, or its array was re-laid out
            index.shard_cids[key[1]] = None if all(e is None for e in shard.entries) else cid
            shard.dirty = False
            state.dirty_root = True

        await asyncio.gather(*(write(k, s) for k, s in dirty))

    async def flush(self) -> str:
        """Write changed shards, then the root; return the root CID as text.

        Nothing changed: the current root is returned without writing.
        """
        state = self._state
        manifest = await self._manifest()
        while True:
            while state.cache.dirty():
                await self._write_dirty_shards()
            if not state.dirty_root and state.root_cid is not None:
                return str(state.root_cid)
            data = manifest.encode()
            written = await state.cas.put(data, "dag-cbor")
            cid = state.cas.id_to_cid(written.id, "dag-cbor")
            if not state.cache.dirty():  # else a write raced the root: go again
                state.root_cid = cid
                state.last_commit = written
                state.dirty_root = False
                manifest.version = MANIFEST_V2
                state.documents.clear()

    # ------------------------------------------------------------ editing
    async def graft_store(self, root_cid: CID | str, chunk_offset: Sequence[int]) -> dict[str, int]:
        """Splice another store's chunks into this one, shifted by
        ``chunk_offset`` (in chunks), by pointer.

        Every array of the other store that this store also has, with the
        same rank as ``chunk_offset`` and the same chunk shape, is grafted.
        Returns the number of chunks grafted per array.

        Raises:
            InvalidArgumentError: an array of matching rank has another chunk
                shape, or the other root is ``sharded_zarr_v1`` (its single
                grid cannot tell arrays apart: open it for writing and flush
                it to upgrade it first).
        """
        self._check_writable()
        offset = tuple(chunk_offset)
        other = await ShardedZarrStore.open(self._state.cas, True, root_cid)
        theirs = await other._manifest()
        if theirs.version == MANIFEST_V1:
            raise InvalidArgumentError(
                f"cannot graft sharded_zarr_v1 root {root_cid}: upgrade it first "
                "(open it with read_only=False and flush)"
            )
        mine = await self._manifest()
        grafted: dict[str, int] = {}
        for path, source in theirs.arrays.items():
            target = mine.arrays.get(path)
            if target is None or len(source.grid.shape) != len(offset):
                continue
            if target.grid.chunk_shape != source.grid.chunk_shape:
                raise InvalidArgumentError(
                    f"array {path!r}: chunk shape {source.grid.chunk_shape} in {root_cid} "
                    f"differs from {target.grid.chunk_shape} here"
                )
            count = 0
            for linear in range(source.grid.total_chunks):
                raw = await other._read_slot(path, source, linear)
                if raw is None:
                    continue
                coords = tuple(
                    c + o for c, o in zip(source.grid.coords(linear), offset, strict=True)
                )
                await self._place(mine, path, coords, raw, target.grid)
                count += 1
            grafted[path] = count
        return grafted

    async def resize_store(self, new_shape: Sequence[int]) -> None:
        """Resize the store-level grid, and with it the chunk index of every
        array on that grid (same chunk shape). The arrays' ``zarr.json``
        are not touched: see :meth:`resize_variable`."""
        self._check_writable()
        manifest = await self._manifest()
        shape = tuple(int(s) for s in new_shape)
        if len(shape) != len(manifest.grid.shape):
            raise InvalidArgumentError(
                f"new shape {shape} has {len(shape)} dimensions, the store has "
                f"{len(manifest.grid.shape)}"
            )
        manifest.grid = manifest.grid.with_shape(shape)
        for path, index in list(manifest.arrays.items()):
            if index.grid.chunk_shape == manifest.grid.chunk_shape:
                await self._adopt_grid(manifest, path, index.grid.with_shape(shape))
        self._state.dirty_root = True

    async def resize_variable(self, name: str, new_shape: Sequence[int]) -> None:
        """Rewrite ``<name>/zarr.json`` with ``shape = new_shape``, and the
        variable's entry in every enclosing group's consolidated metadata, so
        readers that open through consolidated metadata see the new shape.

        Raises:
            KeyError: the variable has no ``zarr.json`` here.
        """
        self._check_writable()
        manifest = await self._manifest()
        key = f"{name}/{_METADATA_SUFFIX}" if name else _METADATA_SUFFIX
        if key not in manifest.metadata:
            raise KeyError(f"no metadata {key!r} to resize")
        shape = [int(s) for s in new_shape]

        def own(document: dict[str, Any]) -> bool:
            document["shape"] = shape
            return True

        await self._rewrite_document(key, own)
        parts = name.split("/")
        for depth in range(len(parts)):
            group = "/".join(parts[:depth])
            member = "/".join(parts[depth:])

            def consolidated(document: dict[str, Any], member: str = member) -> bool:
                entries = (document.get("consolidated_metadata") or {}).get("metadata") or {}
                if not isinstance(entries.get(member), dict):
                    return False
                entries[member]["shape"] = shape
                return True

            group_key = f"{group}/{_METADATA_SUFFIX}" if group else _METADATA_SUFFIX
            if group_key in manifest.metadata:
                await self._rewrite_document(group_key, consolidated)

    async def _rewrite_document(self, key: str, edit: Any) -> None:
        manifest = await self._manifest()
        cas = self._state.cas
        document = json.loads(await cas.load(cas.cid_to_id(manifest.metadata[key])))
        if not edit(document):
            return
        data = json.dumps(document, indent=2).encode()
        await self._put(key, cas.id_to_cid(await cas.save(data, "raw"), "raw"), data)

    # ---------------------------------------------------------------- listing
    async def _chunk_keys(self, path: str, index: ArrayIndex) -> AsyncIterator[str]:
        if path == LEGACY:
            return  # v1 listed only its key map
        for shard_no in range(index.grid.num_shards):
            if (
                index.shard_cids[shard_no] is None
                and self._state.cache.get((path, shard_no)) is None
            ):
                continue
            shard = await self._shard(path, index, shard_no)
            base = shard_no * index.grid.chunks_per_shard
            for slot, raw in enumerate(list(shard.entries)):
                if raw is not None and base + slot < index.grid.total_chunks:
                    yield index.grid.chunk_key(path, index.grid.coords(base + slot))

    async def list(self) -> AsyncIterator[str]:
        """Every key: the key map, then each array's chunks."""
        manifest = await self._manifest()
        for key in list(manifest.metadata):
            yield key
        for path, index in list(manifest.arrays.items()):
            async for key in self._chunk_keys(path, index):
                yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        manifest = await self._manifest()
        for key in list(manifest.metadata):
            if key.startswith(prefix):
                yield key
        for path, index in list(manifest.arrays.items()):
            base = f"{path}/c" if path else "c"
            if base.startswith(prefix) or prefix.startswith(base):
                async for key in self._chunk_keys(path, index):
                    if key.startswith(prefix):
                        yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Names directly under ``prefix``. An array's chunk index is walked
        only when listing inside it; above it, only asked whether it holds
        any chunk."""
        manifest = await self._manifest()
        prefix = prefix.rstrip("/")
        lead = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        candidates = list(manifest.metadata)
        for path, index in manifest.arrays.items():
            if path == LEGACY or not await self._has_chunks(path, index):
                continue
            base = f"{path}/c" if path else "c"
            folder = base + index.grid.separator
            if index.grid.separator == "/" and folder.startswith(lead) and folder != lead:
                candidates.append(base)  # the whole chunk tree sits under one name
            elif base.startswith(lead) or lead.startswith(base):
                candidates.extend([k async for k in self._chunk_keys(path, index)])
        for key in candidates:
            if key.startswith(lead):
                name = key[len(lead) :].split("/", 1)[0]
                if name and name not in seen:
                    seen.add(name)
                    yield name

    async def _has_chunks(self, path: str, index: ArrayIndex) -> bool:
        if any(c is not None for c in index.shard_cids):
            # A written shard is non-empty unless a cached change emptied it.
            for shard_no, cid in enumerate(index.shard_cids):
                cached = self._state.cache.get((path, shard_no))
                if cid is not None and (
                    cached is None or any(e is not None for e in cached.entries)
                ):
                    return True
        return any(
            any(e is not None for e in shard.entries)
            for (p, _), shard in self._state.cache.dirty()
            if p == path
        )
