"""Write an xarray dataset into a store as a HAMT or sharded Zarr dataset."""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import xarray as xr
from multiformats import CID
from zarr.abc.buffer import Buffer

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.errors import InvalidArgumentError, InvalidTypeError, PyHamtError
from py_hamt.jobs.progress import Progress, ProgressCallback, report
from py_hamt.stores.hamt_store import ZarrHAMTStore
from py_hamt.stores.sharded import ShardedZarrStore
from py_hamt.trie.hamt import HAMT

__all__ = ["DEFAULT_CHUNK_BYTES", "PublishReport", "auto_chunks", "publish_dataset"]

DEFAULT_CHUNK_BYTES: Final = 1 << 20
"""One MiB: Kubo's default chunk size, so every chunk is one IPFS block."""

_SETTLE_SECONDS: Final = 60.0
"""How long a failed publish waits for zarr's other writes to wind down."""


@dataclass
class PublishReport:
    """What a publish wrote: the root, the number of distinct keys and the
    bytes of their final values (a rewritten ``zarr.json`` counts once)."""

    root_cid: CID
    layout: str
    keys: int
    bytes: int
    root: WriteResult | None


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int >= 1, got {value!r}")
    if value < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")
    return value


def auto_chunks(shape: tuple[int, ...], itemsize: int, target: int) -> tuple[int, ...]:
    """A chunk shape of at most ``target`` bytes, halving the largest
    dimension first (so time series stay long and maps stay square).

    Raises:
        InvalidArgumentError: ``itemsize`` or ``target`` is not an int >= 1.
    """
    _check_count("itemsize", itemsize)
    _check_count("target", target)
    chunks = list(shape) or []
    while chunks and math.prod(chunks) * itemsize > target and max(chunks) > 1:
        i = chunks.index(max(chunks))
        chunks[i] = -(-chunks[i] // 2)
    return tuple(max(c, 1) for c in chunks)


def _encoding(
    ds: xr.Dataset, target: int, chunks: Mapping[str, Sequence[int]]
) -> dict[str, dict[str, Any]]:
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.ndim == 0:
            continue
        given = chunks.get(str(name))
        if given is None:
            shape = auto_chunks(tuple(var.shape), var.dtype.itemsize, target)
        else:
            shape = tuple(given)
            if len(shape) != var.ndim or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in shape
            ):
                raise InvalidArgumentError(
                    f"chunks[{str(name)!r}] must be {var.ndim} ints >= 1, got {given!r}"
                )
        encoding[str(name)] = {"chunks": shape}
    unknown = sorted(set(chunks) - set(encoding))
    if unknown:
        raise InvalidArgumentError(f"chunks names no array variable of the dataset: {unknown}")
    return encoding


def _planned_keys(ds: xr.Dataset, encoding: Mapping[str, Mapping[str, Any]]) -> int:
    """Keys the write should produce: the group's and each array's
    ``zarr.json``, and every chunk (one for a 0-d variable)."""
    chunks = 0
    for name, var in ds.variables.items():
        given = encoding.get(str(name))
        if given is None:
            chunks += 1
        else:
            shape = given["chunks"]
            chunks += math.prod(-(-s // c) for s, c in zip(var.shape, shape, strict=True))
    return 1 + len(ds.variables) + chunks


class _CalledOff(PyHamtError):
    """A write not attempted because an earlier one of the same publish failed."""


class _WriteGuard:
    """Watches the writes zarr makes into a publish's store.

    zarr writes chunks concurrently on its own event loop and, when one
    write fails, returns that error while the others are still queued or
    running there. Left alone they keep going after the publish has failed,
    and a process that exits then has zarr close its loop under them
    (printing "Task was destroyed" / "Event loop is closed" for each). The
    guard remembers that loop; once a write fails (or the publish is
    cancelled) it calls off every later write, and :meth:`settle` waits on
    that loop until the writes still in flight have finished.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failure: BaseException | None = None
        self.stopped = False

    async def write(self, action: Callable[[], Awaitable[None]]) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self.stopped:
            raise _CalledOff("not written: an earlier write of this publish failed")
        try:
            await action()
        except Exception as exc:
            if self.failure is None:
                self.failure = exc
            self.stopped = True
            raise

    async def settle(self) -> None:
        """Wait (on zarr's loop, up to a minute) for its other tasks to finish."""
        self.stopped = True
        loop = self.loop
        if loop is None or not loop.is_running():
            return

        async def drain() -> None:
            me = asyncio.current_task()
            deadline = loop.time() + _SETTLE_SECONDS
            while (others := [t for t in asyncio.all_tasks() if t is not me]) and (
                remaining := deadline - loop.time()
            ) > 0:
                await asyncio.wait(others, timeout=remaining)

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(drain(), loop))


class _GuardedHAMTStore(ZarrHAMTStore):
    guard: _WriteGuard | None = None

    async def set(self, key: str, value: Buffer) -> None:
        write = functools.partial(super().set, key, value)
        await (write() if self.guard is None else self.guard.write(write))


class _GuardedShardedStore(ShardedZarrStore):
    guard: _WriteGuard | None = None

    async def set(self, key: str, value: Buffer) -> None:
        write = functools.partial(super().set, key, value)
        await (write() if self.guard is None else self.guard.write(write))


async def publish_dataset(
    cas: ContentAddressedStore,
    ds: xr.Dataset,
    *,
    layout: Literal["hamt", "sharded"] = "hamt",
    chunks_per_shard: int = 6250,
    target_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    chunks: Mapping[str, Sequence[int]] | None = None,
    progress: ProgressCallback | None = None,
) -> PublishReport:
    """Write ``ds`` to ``cas`` and commit it; return the root and totals.

    Chunks are chosen afresh (at most ``target_chunk_bytes`` each, 1 MiB by
    default), whatever chunking the source had; ``chunks`` gives the chunk
    shape of some variables by name instead. ``progress`` gets distinct keys
    written of the keys planned.

    If a write fails (or the call is cancelled), the writes zarr still has
    queued are called off and those in flight are waited for before the
    error is raised: nothing of the publish keeps running afterwards.

    Raises:
        InvalidArgumentError: a bad layout, chunk size or shard size (before
            anything is written); an ``InvalidTypeError`` for a non-dataset.
    """
    if not isinstance(ds, xr.Dataset):
        raise InvalidTypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    if layout not in ("hamt", "sharded"):
        raise InvalidArgumentError(f"layout must be 'hamt' or 'sharded', got {layout!r}")
    _check_count("chunks_per_shard", chunks_per_shard)
    _check_count("target_chunk_bytes", target_chunk_bytes)
    ds = ds.drop_encoding()
    encoding = _encoding(ds, target_chunk_bytes, chunks or {})
    planned = _planned_keys(ds, encoding)
    sizes: dict[str, int] = {}
    moved = 0

    def on_write(key: str, result: WriteResult) -> None:
        nonlocal moved
        moved += result.size
        sizes[key] = result.size
        report(progress, Progress(len(sizes), max(planned, len(sizes)), "keys", moved))

    guard = _WriteGuard()
    store: ZarrHAMTStore | ShardedZarrStore
    if layout == "hamt":
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        hamt_store = _GuardedHAMTStore(hamt, on_write=on_write)
        hamt_store.guard = guard
        store = hamt_store
    else:
        biggest = max((v for v in ds.data_vars.values()), key=lambda v: v.size, default=None)
        shape = tuple(biggest.shape) if biggest is not None else (1,)
        chunk = encoding[str(biggest.name)]["chunks"] if biggest is not None else (1,)
        # open() builds an instance of the class it is called on.
        sharded = cast(
            _GuardedShardedStore,
            await _GuardedShardedStore.open(
                cas, False, array_shape=shape, chunk_shape=chunk, chunks_per_shard=chunks_per_shard
            ),
        )
        sharded.guard = guard
        sharded.on_write = on_write
        store = sharded

    finished = threading.Event()

    def write() -> None:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="Consolidated metadata", category=UserWarning
                )
                ds.to_zarr(store=store, mode="w", zarr_format=3, encoding=encoding)
        finally:
            finished.set()

    try:
        await asyncio.to_thread(write)
    except BaseException as exc:
        # Call off what zarr still has queued; let the thread and zarr's loop wind down.
        guard.stopped = True
        await asyncio.to_thread(finished.wait)
        await guard.settle()
        if isinstance(exc, _CalledOff) and guard.failure is not None:
            raise guard.failure from None
        raise
    commit: WriteResult | None
    if isinstance(store, ZarrHAMTStore):
        commit = await store.hamt.make_read_only()
        root = cas.id_to_cid(commit.id, "dag-cbor")
    else:
        root = CID.decode(await store.flush())
        commit = store.last_commit
    if len(sizes) != planned:
        # Fewer keys than planned (zarr skips chunks that hold only the fill value).
        report(progress, Progress(len(sizes), len(sizes), "keys", moved))
    return PublishReport(root, layout, len(sizes), sum(sizes.values()), commit)
