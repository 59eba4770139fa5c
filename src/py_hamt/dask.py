"""Scale-out writes: xarray's ``to_zarr`` on a ``dask.distributed`` cluster.

Plain ``ds.to_zarr(store)`` ships the store to every task. A store whose
HAMT holds uncommitted changes cannot be shipped (a copy would write into a
fork of the buffer, and the writes would be lost), so under a
``distributed.Client`` it stops with a :class:`~py_hamt.errors.NotCommittedError`
that points here. :func:`to_zarr` splits the work instead:

* the **coordinator** (the process calling it) lets xarray write the
  metadata (``zarr.json``, consolidated metadata, in-memory variables such
  as dimension coordinates) into the real store, exactly as ``ds.to_zarr``
  would;
* each **worker task** takes one dask block, encodes its chunks with zarr's
  own codec pipeline (an in-memory zarr array with the same metadata),
  seals them as the store would (encrypted stores encrypt with the store's
  key and header), writes the blocks straight into the CAS and returns only
  ``(key, id, size)`` pointers. Chunk bytes never pass through the
  coordinator or the scheduler;
* the coordinator merges the pointers into the HAMT
  (:meth:`~py_hamt.HAMT.set_pointer`) or the sharded store
  (:meth:`~py_hamt.ShardedZarrStore.set_pointer`) and commits once every
  task has succeeded. A failed job commits nothing.

:func:`merge_hamts` joins HAMTs written by independent processes, with no
cluster at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import dask.array
import dask.base
import numpy as np
import xarray as xr
import zarr
from dask.callbacks import Callback
from dask.delayed import delayed as untyped_delayed
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from py_hamt.cas.base import ContentAddressedStore, IPLDKind
from py_hamt.cas.memory import InMemoryCAS
from py_hamt.cas.write_result import ContentDigest, WriteResult
from py_hamt.codec.cids import freeze_id, thaw_id
from py_hamt.errors import (
    IntegrityError,
    InvalidArgumentError,
    InvalidTypeError,
    KeyNotFoundError,
    ReadOnlyError,
    format_id,
)
from py_hamt.jobs.progress import Progress, ProgressCallback, report
from py_hamt.stores.hamt_store import ZarrHAMTStore
from py_hamt.stores.sharded import ShardedZarrStore
from py_hamt.trie.hamt import DEFAULT_MAX_BUCKET_SIZE, HAMT
from py_hamt.trie.hashing import HashFn, blake3_hashfn

__all__ = ["ChunkPointer", "merge_hamts", "to_zarr"]

ChunkPointer: TypeAlias = tuple[str, object, int]
"""What a worker task returns per chunk: the zarr key, the id of the block it
wrote (pickle-safe, see :func:`~py_hamt.codec.cids.freeze_id`; ``None`` for a
chunk zarr leaves unwritten because it is all fill value) and its size."""

Store: TypeAlias = ZarrHAMTStore | ShardedZarrStore

# dask's functions carry no annotations; typed handles keep mypy strict here.
_delayed: Callable[..., Any] = untyped_delayed
_compute: Callable[..., Any] = dask.base.compute
_get_scheduler: Callable[..., Any] = dask.base.get_scheduler


# --------------------------------------------------------------------- xarray
def _xarray_writers() -> tuple[Callable[..., Any], Callable[..., Any], type]:
    """xarray's own steps of ``to_zarr``: open the zarr store, dump into it."""
    from xarray.backends.common import ArrayWriter

    try:
        from xarray.backends.writers import dump_to_store, get_writable_zarr_store
    except ImportError:  # pragma: no cover - xarray before the writers module
        try:
            from xarray.backends.api import (  # type: ignore[attr-defined,no-redef]
                dump_to_store,
                get_writable_zarr_store,
            )
        except ImportError as exc:
            raise InvalidArgumentError(
                f"py_hamt.dask.to_zarr needs an xarray with get_writable_zarr_store "
                f"(this is {xr.__version__})"
            ) from exc
    return get_writable_zarr_store, dump_to_store, ArrayWriter


# ------------------------------------------------------------------- workers
@dataclass(frozen=True)
class _ArraySpec:
    """Everything a worker needs to encode and store one array's chunks."""

    name: str  # the variable, for messages
    path: str  # the array's path in the store
    documents: dict[str, bytes]  # its metadata documents, keyed relative to it
    config: dict[str, Any]  # zarr ArrayConfig (write_empty_chunks, order)
    cas: ContentAddressedStore
    sealer: ZarrHAMTStore | None  # a HAMT-less copy of the store, for _encode


def _write_block(
    block: np.ndarray[Any, Any], spec: _ArraySpec, origin: tuple[int, ...]
) -> list[ChunkPointer]:
    """Worker task: encode the chunks ``block`` covers (it starts at ``origin``
    in the array and covers whole chunks), write them to the CAS, return
    their pointers. Runs anywhere the CAS can be reached."""
    return sync(_write_block_async(np.asarray(block), spec, origin))


async def _write_block_async(
    block: np.ndarray[Any, Any], spec: _ArraySpec, origin: tuple[int, ...]
) -> list[ChunkPointer]:
    prototype = default_buffer_prototype()
    chunks: dict[str, Any] = {}
    memory = MemoryStore(store_dict=chunks)
    for name, document in spec.documents.items():
        await memory.set(name, prototype.buffer.from_bytes(document))
    array = await zarr.api.asynchronous.open_array(store=memory, mode="r+", config=spec.config)
    selection = tuple(slice(o, o + n) for o, n in zip(origin, block.shape, strict=True))
    await array.setitem(selection, block)
    pointers: list[ChunkPointer] = []
    for coords in _chunk_coords(origin, block.shape, _grid_of(array.metadata)):
        relative = array.metadata.encode_chunk_key(coords)
        key = f"{spec.path}/{relative}" if spec.path else relative
        buffer = chunks.get(relative)
        if buffer is None:  # all fill value: zarr writes nothing (and deletes)
            pointers.append((key, None, 0))
            continue
        data = buffer.to_bytes()
        if spec.sealer is not None:
            data = spec.sealer._encode(key, data)
        written = await spec.cas.put(data, "raw")
        pointers.append((key, freeze_id(written.id), written.size))
    return pointers


def _grid_of(metadata: Any) -> tuple[int, ...]:
    """The shape of the chunks that are stored under keys (shards, if any)."""
    grid = getattr(metadata, "chunk_grid", None)
    shape = getattr(grid, "chunk_shape", None)
    if shape is None:
        shape = metadata.chunks  # zarr v2
    return tuple(int(s) for s in shape)


def _chunk_coords(
    origin: Sequence[int], shape: Sequence[int], grid: Sequence[int]
) -> list[tuple[int, ...]]:
    """Grid coordinates of every chunk a block at ``origin`` touches."""
    ranges = [range(o // g, -(-(o + n) // g)) for o, n, g in zip(origin, shape, grid, strict=True)]
    out: list[tuple[int, ...]] = [()]
    for r in ranges:
        out = [(*c, i) for c in out for i in r]
    return out


# ----------------------------------------------------------------- scheduler
def _active_client() -> Any:
    """The ``distributed.Client`` dask would compute on now, else ``None``."""
    owner = getattr(_get_scheduler(), "__self__", None)
    if type(owner).__module__.split(".", 1)[0] == "distributed":
        return owner
    return None


def _run_distributed(
    client: Any, tasks: list[Any], on_result: Callable[[list[ChunkPointer]], None]
) -> None:
    from distributed import as_completed as untyped_as_completed

    as_completed: Callable[..., Any] = untyped_as_completed
    futures = client.compute(tasks)
    try:
        for _, result in as_completed(futures, with_results=True):
            on_result(result)
    except BaseException:
        client.cancel(futures)
        raise


class _TaskProgress(Callback):
    """Calls ``on_result`` as each of ``keys`` finishes (local schedulers)."""

    def __init__(self, keys: set[Any], on_result: Callable[[list[ChunkPointer]], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._keys, self._on_result = keys, on_result

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if key in self._keys:
            self._on_result(result)


def _run_local(tasks: list[Any], on_result: Callable[[list[ChunkPointer]], None]) -> None:
    with _TaskProgress({t.key for t in tasks}, on_result):
        _compute(*tasks)


# --------------------------------------------------------------------- commit
async def _commit(
    store: Store, pointers: dict[str, object], cas: ContentAddressedStore
) -> WriteResult:
    """Merge ``key -> id`` (``None``: delete) into the store, then commit."""
    if isinstance(store, ZarrHAMTStore):
        hamt = store.hamt
        for key, frozen in pointers.items():
            if frozen is None:
                await store.delete(key)
            else:
                await hamt.set_pointer(key, thaw_id(frozen))
        return await hamt.make_read_only()
    for key, frozen in pointers.items():
        if frozen is None:
            await store.delete(key)
        else:
            await store.set_pointer(key, cas.id_to_cid(thaw_id(frozen), "raw"))
    await store.flush()
    root_id = cas.cid_to_id(store.root_cid)  # type: ignore[arg-type]
    if store.last_commit is not None and store.last_commit.id == root_id:
        return store.last_commit
    # Nothing changed: describe the current root without writing it again.
    data = await cas.load(root_id)
    return WriteResult(id=root_id, size=len(data), digest=ContentDigest.of(data))


# ------------------------------------------------------------------ to_zarr
def to_zarr(
    ds: xr.Dataset,
    store: Store,
    *,
    mode: Literal["w", "w-", "a", "a-", "r+", "r"] | None = None,
    group: str | None = None,
    encoding: Mapping[Any, Any] | None = None,
    compute: bool = True,
    consolidated: bool | None = None,
    append_dim: Hashable | None = None,
    region: Mapping[str, slice | Literal["auto"]] | Literal["auto"] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    zarr_format: int | None = None,
    write_empty_chunks: bool | None = None,
    progress: ProgressCallback | None = None,
) -> WriteResult:
    """Write ``ds`` as ``ds.to_zarr(store, ...)`` would, with the chunks
    encoded and stored by dask's workers, and commit.

    The arguments are ``xarray.Dataset.to_zarr``'s (``storage_options`` and
    ``chunkmanager_store_kwargs`` aside). Runs on the scheduler dask would
    use now: a ``distributed.Client`` if one is the default, otherwise the
    threaded (or whatever configured) local scheduler.

    Where things happen: the coordinator writes metadata and any variable
    that is not a dask array; each dask block becomes one task that writes
    its chunks straight into the store's CAS and returns pointers; the
    coordinator merges them and commits. The result, chunk for chunk and
    root for root, is what a single-process ``ds.to_zarr`` gives (an
    encrypted store's random nonces aside): a ``ZarrHAMTStore`` over the
    same CAS ends at the same root.

    Commit: a ``ZarrHAMTStore``'s HAMT is committed and left read-only at
    its new root (:meth:`~py_hamt.HAMT.make_read_only`); a
    ``ShardedZarrStore`` is flushed. A store whose HAMT a previous call left
    read-only is switched back to write mode first, so one store object
    serves a series of ``region=`` writes.

    Args:
        compute: ``False`` writes and commits the metadata (and in-memory
            variables) only, so the dataset exists at its full shape with
            chunks unwritten (read as fill value); fill it later with
            ``region=`` writes. This differs from xarray, which returns a
            ``Delayed`` for the data instead.
        progress: called with a :class:`~py_hamt.Progress` as each dask
            block is stored (``unit="blocks"``, ``bytes_moved`` the bytes
            stored) and once more after the commit.

    Returns:
        The commit's :class:`WriteResult` (also ``hamt.last_commit`` or
        ``store.last_commit``).

    Raises:
        InvalidTypeError: ``store`` is not a ``ZarrHAMTStore`` (or the
            encrypted one) or a ``ShardedZarrStore``, or a variable is a
            chunked array that is not a dask array.
        ReadOnlyError: the store was opened read-only.
        InvalidArgumentError: the CAS is an ``InMemoryCAS`` and dask runs on
            a ``distributed.Client`` (worker processes cannot write into
            this process's memory: use ``LocalCAS`` on a shared directory or
            ``KuboCAS``); or a dask block covers part of a stored chunk
            (partial chunks would need reading back what is stored; rechunk
            so that blocks cover whole chunks, or whole shards with zarr's
            sharding codec, and only the array's last chunk may be partial);
            plus every error xarray raises for these arguments.
        Any error of a worker task, re-raised once the scheduler gives up on
        it (distributed retries a task whose worker died). Nothing is merged
        or committed then: the previous committed root is untouched, and the
        HAMT keeps the metadata xarray wrote buffered, uncommitted.
    """
    if not isinstance(store, (ZarrHAMTStore, ShardedZarrStore)):
        raise InvalidTypeError(
            "py_hamt.dask.to_zarr writes into a ZarrHAMTStore, SimpleEncryptedZarrHAMTStore "
            f"or ShardedZarrStore, got {type(store).__name__}"
        )
    if store.read_only:
        raise ReadOnlyError("store was opened in read-only mode and does not support writing")
    cas = store.hamt.cas if isinstance(store, ZarrHAMTStore) else store.cas
    client = _active_client()
    if client is not None and isinstance(cas, InMemoryCAS):
        raise InvalidArgumentError(
            "an InMemoryCAS cannot be shared with distributed workers (each would write "
            "into its own copy): use LocalCAS on a directory all workers see, or KuboCAS, "
            "or run without a distributed.Client (dask's threaded scheduler)"
        )
    if isinstance(store, ZarrHAMTStore) and store.hamt.read_only:
        sync(store.hamt.enable_write())

    get_writable_zarr_store, dump_to_store, array_writer = _xarray_writers()
    for variable in ds.variables.values():
        if variable.size == 0:  # as xarray does: zero-length dimensions
            variable.load()
    writer = array_writer()
    zstore = get_writable_zarr_store(
        store,
        mode=mode,
        group=group,
        consolidated=consolidated,
        append_dim=append_dim,
        region=region,
        safe_chunks=safe_chunks,
        align_chunks=align_chunks,
        zarr_format=zarr_format,
        write_empty_chunks=write_empty_chunks,
    )
    try:
        dataset = zstore._validate_and_autodetect_region(ds)
        zstore._validate_encoding(encoding or {})
        # Metadata and in-memory variables are written now; dask variables
        # are only collected, as (source, target array, region).
        dump_to_store(dataset, zstore, writer, encoding=encoding or {})
    finally:
        zstore.close()

    sealer = store._codec_only() if isinstance(store, ZarrHAMTStore) else None
    tasks = _plan(writer.sources, writer.targets, writer.regions, cas, sealer) if compute else []
    pointers: dict[str, object] = {}
    state = {"done": 0, "bytes": 0}

    def on_result(result: list[ChunkPointer]) -> None:
        for key, frozen, size in result:
            if key in pointers:
                raise IntegrityError(
                    f"chunk {key!r} was returned by two tasks: dask blocks overlap", frozen
                )
            pointers[key] = frozen
            state["bytes"] += size
        state["done"] += 1
        report(progress, Progress(state["done"], len(tasks), "blocks", state["bytes"]))

    if tasks:
        if client is not None:
            _run_distributed(client, tasks, on_result)
        else:
            _run_local(tasks, on_result)
    result = sync(_commit(store, pointers, cas))
    report(progress, Progress(len(tasks), len(tasks), "blocks", state["bytes"]))
    return result


def _plan(
    sources: Iterable[Any],
    targets: Iterable[Any],
    regions: Iterable[Any],
    cas: ContentAddressedStore,
    sealer: ZarrHAMTStore | None,
) -> list[Any]:
    """One delayed :func:`_write_block` per dask block of every source."""
    token = uuid.uuid4().hex
    tasks: list[Any] = []
    prototype = default_buffer_prototype()
    for source, target, region in zip(sources, targets, regions, strict=True):
        if not isinstance(source, dask.array.Array):
            raise InvalidTypeError(
                f"array {target.path!r} is a {type(source).__name__}; "
                "py_hamt.dask.to_zarr writes dask arrays"
            )
        metadata = target.metadata
        config = target.async_array.config
        spec = _ArraySpec(
            name=target.path.rsplit("/", 1)[-1],
            path=target.path,
            documents={k: v.to_bytes() for k, v in metadata.to_buffer_dict(prototype).items()},
            config={"write_empty_chunks": config.write_empty_chunks, "order": config.order},
            cas=cas,
            sealer=sealer,
        )
        spec_task = _delayed(spec, name=f"py_hamt-spec-{token}-{len(tasks)}")
        grid = _grid_of(metadata)
        shape = tuple(int(s) for s in target.shape)
        start = tuple(
            0 if region is None or r.start is None else int(r.start)
            for r in (region or [None] * len(shape))
        )
        blocks = source.to_delayed(optimize_graph=True)  # type: ignore[no-untyped-call]
        for index in np.ndindex(*source.numblocks):
            origin = tuple(
                s + sum(chunks[:i])
                for s, chunks, i in zip(start, source.chunks, index, strict=True)
            )
            extent = tuple(chunks[i] for chunks, i in zip(source.chunks, index, strict=True))
            if 0 in extent:
                continue
            _check_aligned(spec.name, origin, extent, grid, shape)
            tasks.append(
                _delayed(_write_block, pure=False)(
                    blocks[index],
                    spec_task,
                    origin,
                    dask_key_name=f"py_hamt-write-{token}-{len(tasks)}",
                )
            )
    return tasks


def _check_aligned(
    name: str,
    origin: Sequence[int],
    extent: Sequence[int],
    grid: Sequence[int],
    shape: Sequence[int],
) -> None:
    for axis, (o, n, g, size) in enumerate(zip(origin, extent, grid, shape, strict=True)):
        end = o + n
        if o % g or (end % g and end != size):
            raise InvalidArgumentError(
                f"variable {name!r}: the dask block at {tuple(origin)} of shape "
                f"{tuple(extent)} covers part of a stored chunk along axis {axis} (chunks of "
                f"{g}); workers write whole chunks only. Rechunk so every block starts and "
                f"ends on a multiple of {g} (only the array's end may be partial)"
            )


# --------------------------------------------------------------------- merge
async def merge_hamts(
    cas: ContentAddressedStore,
    roots: Sequence[IPLDKind],
    *,
    prefer: Literal["left", "right"] | None = None,
    hash_fn: HashFn = blake3_hashfn,
    max_bucket_size: int = DEFAULT_MAX_BUCKET_SIZE,
) -> IPLDKind:
    """Merge HAMTs written separately (by processes with no cluster, each
    filling its own ``region=`` of a dataset whose metadata one of them
    wrote with ``compute=False``) into one root, by pointer: no value is
    read or re-uploaded.

    Every key of every root ends up in the result. A key present in several
    roots with the same value id is fine (shared metadata). With different
    ids: an error, unless ``prefer`` says which wins (``"left"``: the
    earliest root in ``roots`` holding it; ``"right"``: the latest). The
    result is canonical, so merging the roots of disjoint regions gives the
    root a single writer of the whole dataset would.

    Cost: every key of ``roots[1:]`` is walked and set (one pointer lookup
    each); the first root is opened, not walked, so pass the largest first.

    Args:
        hash_fn, max_bucket_size: as the roots were written with.

    Returns:
        The merged root id, committed.

    Raises:
        InvalidArgumentError: no roots; ``prefer`` is not ``None``,
            ``"left"`` or ``"right"``; or a key holds different values in two
            roots and ``prefer`` is ``None`` (naming the key and both ids).
        BlockNotFoundError: a root or a node is not in ``cas``.
    """
    if prefer not in (None, "left", "right"):
        raise InvalidArgumentError(f"prefer must be None, 'left' or 'right', got {prefer!r}")
    if not roots:
        raise InvalidArgumentError("merge_hamts needs at least one root")
    merged = await HAMT.build(
        cas, hash_fn=hash_fn, root_node_id=roots[0], max_bucket_size=max_bucket_size
    )
    await merged.enable_write()
    for root in roots[1:]:
        other = await HAMT.build(
            cas,
            hash_fn=hash_fn,
            root_node_id=root,
            read_only=True,
            max_bucket_size=max_bucket_size,
        )
        async for key in other.keys():
            theirs = await other.get_pointer(key)
            try:
                mine = await merged.get_pointer(key)
            except KeyNotFoundError:
                mine = None
            if mine is None or (mine != theirs and prefer == "right"):
                await merged.set_pointer(key, theirs)
            elif mine != theirs and prefer is None:
                raise InvalidArgumentError(
                    f"key {key!r} holds {format_id(mine)} in an earlier root and "
                    f"{format_id(theirs)} in root {format_id(root)}: the writers overlap; "
                    "pass prefer='left' or prefer='right' to choose"
                )
    await merged.make_read_only()
    return merged.root_node_id
