"""File I/O under :class:`~py_hamt.cas.local.LocalCAS`: the I/O thread pool,
whole-file and non-blocking reads, fsyncs and ``syncfs``, and write batches.

Internal to ``LocalCAS``; kept apart so that the store's module holds the
layout, the integrity checks and the refs, and this one how bytes reach the
disk. ``LocalCAS`` calls these through the module (``local_io.name``), so a
test may replace any of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from py_hamt import observability

if TYPE_CHECKING:
    from py_hamt.cas.local import LocalCAS
    from py_hamt.cas.local_packs import PackWriter

__all__ = [
    "BATCHES",
    "HASH_INLINE_MAX",
    "INLINE_MAX",
    "IO_WORKERS",
    "NOWAIT",
    "SYNCFS",
    "SYNCFS_MAX_DIRTY",
    "SYNCFS_MIN",
    "Batch",
    "dirty_bytes",
    "fsync_dir",
    "fsync_paths",
    "in_pool",
    "io_pool",
    "read_cached",
    "read_to_end",
    "syncfs_dirs",
    "syncfs_is_cheap",
    "timed_fsync",
]

T = TypeVar("T")

# Where reads run (measured: see the docstring of py_hamt.cas.local). A block file under
# INLINE_MAX bytes is read and hashed on the event loop. A larger one is read
# on the loop only when the page cache holds all of it (a non-blocking read,
# Linux's RWF_NOWAIT) and it is under HASH_INLINE_MAX; otherwise it is read
# and hashed in the I/O pool.
INLINE_MAX: Final = 16 * 1024
HASH_INLINE_MAX: Final = 1 << 20
NOWAIT: Final = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None
IO_WORKERS: Final = min(32, (os.cpu_count() or 1) * 4 + 4)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def io_pool() -> ThreadPoolExecutor:
    """The module's I/O thread pool (made on first use, again after a fork)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="py_hamt-local")
    return _pool


def _forget_pool() -> None:
    # A forked child has none of the parent's threads: a pool inherited from
    # the parent would count them and never start its own.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


async def in_pool(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in the I/O pool, awaited from the event loop."""
    return await asyncio.wrap_future(io_pool().submit(fn, *args))


def read_to_end(fd: int, size: int) -> bytes:
    """The whole file from its current offset; ``size`` is what fstat said
    (one read when it is right; a file that grew is read to its end)."""
    data = os.read(fd, size + 1) if size < 1 << 30 else b""
    if len(data) <= size and size < 1 << 30:
        return data  # short read of a regular file: its end
    parts = [data]
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def read_cached(fd: int, size: int) -> bytes | None:
    """The whole file, if the page cache holds all of it, read without
    waiting for the disk; ``None`` if not (or if the file is no longer
    ``size`` bytes long)."""
    assert NOWAIT is not None
    buf = bytearray(size + 1)
    try:
        n = os.preadv(fd, [buf], 0, NOWAIT)
    except BlockingIOError:
        return None
    if n != size:
        return None  # partly cached, or the file changed: read it all in the pool
    del buf[n:]
    return bytes(buf)


def timed_fsync(fd: int) -> None:
    """``os.fsync``, its time recorded as ``py_hamt.local.fsync.duration``."""
    if not observability.ACTIVE:
        os.fsync(fd)
        return
    start = time.perf_counter()
    os.fsync(fd)
    if observability.is_enabled():
        observability.record("py_hamt.local.fsync.duration", time.perf_counter() - start)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        timed_fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: Iterable[str | Path]) -> None:
    """fsync each file or directory, in turn (one worker's share of a batch)."""
    for path in paths:
        fsync_dir(path)  # opens read-only, which fsync accepts for files too


def _find_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)``, where it reports writeback errors (5.8+)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
        if (major, minor) < (5, 8):
            return None
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


SYNCFS: Final = _find_syncfs()
# A batch with at least this many files and directories to make durable is
# flushed with one syncfs per filesystem instead, if the whole system has at
# most SYNCFS_MAX_DIRTY bytes waiting to be written: syncfs writes out every
# dirty page of the filesystem, anyone's (see the docstring of py_hamt.cas.local).
SYNCFS_MIN: Final = 16
SYNCFS_MAX_DIRTY: Final = 8 << 20


def dirty_bytes() -> int | None:
    """The system's dirty and under-writeback page cache (``/proc/meminfo``),
    ``None`` if it cannot be read."""
    try:
        with open("/proc/meminfo", "rb") as f:
            text = f.read()
    except OSError:
        return None
    total = 0
    found = 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            parts = line.split()
            try:
                total += int(parts[1]) * (1024 if parts[2:] == [b"kB"] else 1)
            except (IndexError, ValueError):
                return None
            found += 1
    return total if found == 2 else None


def syncfs_is_cheap(paths: int) -> bool:
    """Whether one syncfs should beat ``paths`` fsyncs: many paths, and
    little else for it to write."""
    if SYNCFS is None or paths < SYNCFS_MIN:
        return False
    dirty = dirty_bytes()
    return dirty is not None and dirty <= SYNCFS_MAX_DIRTY


def syncfs_dirs(dirs: Iterable[str]) -> None:
    """syncfs the filesystem of each directory (once per filesystem): every
    file and directory written there is then durable."""
    assert SYNCFS is not None
    seen: set[int] = set()
    for folder in dirs:
        fd = os.open(folder, os.O_RDONLY)
        try:
            dev = os.fstat(fd).st_dev
            if dev in seen:
                continue
            seen.add(dev)
            start = time.perf_counter()
            if SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(folder))
            if observability.ACTIVE and observability.is_enabled():
                observability.record("py_hamt.local.fsync.duration", time.perf_counter() - start)
        finally:
            os.close(fd)


class Batch:
    """The writes of one :meth:`LocalCAS.write_batch` whose fsyncs wait for
    its exit: the block files written (or found already there) and their
    directories. A write that finds the batch closed fsyncs itself."""

    def __init__(self, store: LocalCAS) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.closed = False
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        # Packs this batch writes (``LocalCAS`` appends its small blocks to
        # the last one); finished, made durable and handed back at a flush.
        self.packs: list[PackWriter] = []

    def defer(self, file: str | None, folder: str) -> bool:
        """Record ``file`` and ``folder`` for the exit's fsyncs; ``False``
        (nothing recorded) once the batch has closed."""
        with self.lock:
            if self.closed:
                return False
            if file is not None:
                self.files.add(file)
            self.dirs.add(folder)
            return True

    def take(self, *, close: bool) -> tuple[list[str], list[str]]:
        """The files and the directories recorded so far, forgotten here;
        with ``close``, nothing more is recorded."""
        with self.lock:
            self.closed = self.closed or close
            files, dirs = sorted(self.files), sorted(self.dirs)
            self.files = set()
            self.dirs = set()
            return files, dirs

    async def flush(self, *, close: bool) -> None:
        """Make everything recorded so far durable: with one ``syncfs`` per
        filesystem when there are many and little else is dirty, else by
        fsyncs spread over the I/O pool's workers (overlapping fsyncs share
        the disk's flushes)."""
        files, dirs = self.take(close=close)
        with self.lock:
            packs, self.packs = self.packs, []
        if packs:
            await self.store._finish_packs(packs)
        paths = [*files, *dirs]
        if not paths:
            return
        if syncfs_is_cheap(len(paths)):
            await in_pool(syncfs_dirs, dirs)
            return
        n = min(IO_WORKERS, len(paths))
        await asyncio.gather(*(in_pool(fsync_paths, paths[i::n]) for i in range(n)))


# The open batches of the running task (and of the tasks it starts, which
# copy its context): at most one per store, matched by identity.
BATCHES: contextvars.ContextVar[tuple[Batch, ...]] = contextvars.ContextVar(
    "py_hamt_local_batches", default=()
)
