"""LocalCAS: a durable content-addressed store in a directory.

Layout::

    PATH/blocks/<xx>/<multihash hex>   one file per block (xx: first digest byte)
    PATH/packs/<32 hex>.pack           small blocks of one write batch (see below)
    PATH/refs/<name>                   a named root: the CID as text

Ids are CIDv1 with a blake3 (or sha2-256) multihash and the codec asked for
(``raw`` or ``dag-cbor``): the CID a Kubo node gives the same block when it
fits in one chunk. Files are keyed by multihash, as an IPFS blockstore is,
so the same bytes saved under two codecs are stored once.

Durability: every block and ref is written to a temporary file in its final
directory, fsynced, renamed into place and the directory fsynced. A crash or
``SIGKILL`` at any moment leaves either no file or a complete one under a
block's name, never a partial block. Temporary files are named
``.tmp-<pid>-<random>``; reads never look at them and :meth:`cleanup` removes
those whose writer is gone. Several processes may write one store at once:
a block's name depends only on its bytes, and ``rename`` is atomic.

Write batches (:meth:`LocalCAS.write_batch`) defer those fsyncs: inside one,
blocks are still written to a temporary file and renamed into place, and the
batch's exit makes all of them durable at once before it returns: fsyncs of
each file and directory, spread over threads, or, on Linux, for 16 or more of
them while the system holds at most 8 MiB of dirty pages, one ``syncfs`` per
filesystem (which writes out anything dirty there, anyone's: right after
another process wrote 256 MiB without fsync, one took 1-2.4 s). Use one for
blocks reachable only through a block written after it: a HAMT commit's
nodes, then (outside it) the root.

Packs (``cas.local_packs``). Inside a batch, a block under 16 KiB (HAMT
nodes, metadata) is not a file of its own: it is appended to the batch's
pack, a temporary file in ``packs/`` that the batch's exit finishes with an
index, fsyncs, renames to ``<32 hex>.pack`` and makes durable with one fsync
of ``packs/``. Creating a file costs 35-900 us of kernel time here, so a
commit of 211 nodes went from 78-108 ms to 22-24 ms. A packed block reads
back at once through the store object that wrote it, and through any other
object or process once the batch has exited (a block not found triggers a
look for new packs). A process killed inside a batch leaves only the
temporary pack (removed by :meth:`cleanup`); a root is written after its
batch, so no durable root names a block in it. A packed copy that fails its
hash check is an ``IntegrityError`` naming the pack and offset; writing the
block again stores it as a file, which reads then fall back to. A pack whose
index cannot be read is skipped with a warning and listed by
:meth:`damaged_packs`; its blocks are reported missing (never absent keys),
naming it. So are the blocks of a pack removed after this object indexed it
(``BlockNotFoundError`` naming the pack); a put writes such a block again.
Each store object holds its packs' indexes in memory, about 150
bytes a packed block, and keeps up to 64 pack files open (:meth:`close`
closes them).

Every read is verified: the whole block is hashed against the id before any
of it (or any range of it) is returned.

Where the work runs. A block file under 16 KiB (HAMT nodes, metadata) is
read and hashed on the event loop; a larger one is read there only if the
page cache holds all of it (a non-blocking ``preadv(RWF_NOWAIT)``, Linux) and
it is under 1 MiB, and otherwise read and hashed in a module thread pool of
``min(32, cpus * 4 + 4)`` threads, so that concurrent loads overlap their
disk reads (blake3 releases the GIL). Writes outside a batch run in the pool
(fsync blocks); small blocks in a batch are written on the loop. Measured
on 2 vCPUs, ext4, Python 3.11, with other work on the machine (medians):

- a thread hop costs 45 us when many are in flight, up to 160 us one by one;
- 211 HAMT nodes (720 B) loaded one after another: 10 ms warm, 26-35 ms
  cold on the loop, 48 ms and 64 ms through the pool;
- 1,920 blocks of 137 KiB, 10 loads at a time: warm, 0.48-0.58 s on the
  loop, 0.64-0.71 s through the pool; cold, 1.14-1.21 s on the loop,
  1.00-1.18 s through the pool (the disk gives 230 MB/s to one reader,
  340 MB/s to ten). With this rule: 1,920 warm 0.49 s (0.60 s before),
  cold 1.01 s (1.12 s); 96 cold 50 ms (77 ms); 20 cold 12.4 ms (18.7 ms);
- opening a file whose directory entries the kernel dropped costs 0.4-1.2
  ms; opening such files in the pool instead (``openat2`` with
  ``RESOLVE_CACHED`` tells them apart) was no faster: 20 cold nodes, 10 at
  a time, 8.4 ms opened on the loop, 10.2 ms in the pool; so files are
  always opened on the loop;
- a HAMT commit's 211 nodes in a batch: written on the loop 82 ms, through
  the pool 103 ms (creating a file costs 35-900 us of kernel time here);
  the exit's 361 files and directories: 12-16 ms with ``syncfs``, 33-63 ms
  with fsyncs over 12 threads, 107 ms one by one; 4 of them: 1.4-7.6 ms
  with ``syncfs``, 1.6-5.7 ms with fsyncs.

Repair: a write never trusts a block file it did not just write. When the
file is already there, ``put``/``put_block`` compare it with the (verified)
bytes being written and replace it atomically if it differs, so writing or
copying good bytes over a damaged block repairs it. :meth:`LocalCAS.has` is
a plain existence check (it stays cheap on hot paths); :meth:`LocalCAS.verify`
hashes the file, and ``copy_dag`` uses it so that a copy onto a damaged
store re-copies the damaged blocks. ``py_hamt.jobs.fsck`` checks a whole DAG.

Damage the store cannot repair by itself is reported, never followed: a
directory where a block file should be makes reads raise
:class:`~py_hamt.errors.IntegrityError` and writes of that block refuse to
remove it; a ref file that does not hold a CID is skipped by
:meth:`LocalCAS.refs` and raises :class:`~py_hamt.errors.MalformedNodeError`
from :meth:`LocalCAS.get_ref`.

Values larger than Kubo's chunk size (1 MiB by default) are stored here as a
single raw block. Kubo's ``add`` would cut them into a UnixFS DAG with a
dag-pb root, so *their* CIDs differ from what ``KuboCAS`` gives for the same
value. Copying blocks (``py_hamt.jobs.copy``, CAR import) keeps this store's
CIDs, so a dataset published that way keeps its root; note that IPFS
networks may refuse to transfer blocks over 1 MiB (Kubo's bitswap limit is
2 MiB), so keep Zarr chunks under 1 MiB for datasets meant for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import stat
import threading
import time
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Final

from multiformats import CID

from py_hamt import observability
from py_hamt.cas import local_io
from py_hamt.cas.base import (
    Codec,
    ContentAddressedStore,
    IPLDKind,
    slice_range,
    verify_block,
)
from py_hamt.cas.local_packs import (
    MAX_OPEN_PACKS,
    PACK_BLOCK_MAX,
    PACK_MAX_BYTES,
    PackDamagedError,
    PackWriter,
    read_index,
)
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.cids import DAG_CBOR, RAW, cid_from_text, coerce_cid, make_cid
from py_hamt.codec.multihash import HASH_FUNCTIONS
from py_hamt.errors import (
    BlockNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    InvalidTypeError,
    MalformedNodeError,
)

__all__ = ["LocalCAS"]

log = logging.getLogger("py_hamt.local")

_TEMP = re.compile(r"^\.tmp-(\d+)-[0-9a-f]+$")
# Not starting with '.': '.', '..' and '.tmp-*' (temporary files, removed by
# cleanup) would otherwise be accepted and then misbehave.
_REF_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
_MAX_REF_BYTES: Final = 4096


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _close_all(fds: dict[int, int]) -> None:
    """Close a collected store's pack descriptors."""
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd`` (fewer only at the end of the file)."""
    parts = []
    while limit > 0:
        chunk = os.read(fd, limit)
        if not chunk:
            break
        parts.append(chunk)
        limit -= len(chunk)
    return b"".join(parts)


class LocalCAS(ContentAddressedStore):
    """A content-addressed store in a local directory (created if needed).

    Args:
        path: the store's directory.
        hasher: ``"blake3"`` (default) or ``"sha2-256"`` for new blocks.
        fsync: flush every write to disk before it counts (default). Turning
            it off trades crash safety for speed; atomic renames still keep
            blocks whole.

    Raises:
        InvalidArgumentError: an unknown ``hasher``, or ``path`` is a file.
        InvalidTypeError: ``path`` is not a str or path.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, hasher: str = "blake3", fsync: bool = True
    ) -> None:
        if not isinstance(hasher, str) or hasher not in HASH_FUNCTIONS:
            raise InvalidArgumentError(
                f"hasher must be one of {sorted(HASH_FUNCTIONS)}, got {hasher!r}"
            )
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidTypeError(f"path must be a str or path, got {type(path).__name__}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InvalidArgumentError(f"{self.path} exists and is not a directory")
        self.hasher: DigestAlgorithm = "blake3" if hasher == "blake3" else "sha2-256"
        self.fsync = bool(fsync)
        self._nowait = local_io.NOWAIT is not None  # cleared if this filesystem refuses
        self._blocks = self.path / "blocks"
        self._blocks_dir = os.fspath(self._blocks)
        self._refs = self.path / "refs"
        self._packs = self.path / "packs"
        self._packs_dir = os.fspath(self._packs)
        self._blocks.mkdir(parents=True, exist_ok=True)
        self._refs.mkdir(parents=True, exist_ok=True)
        self._packs.mkdir(parents=True, exist_ok=True)
        # Packed blocks: multihash -> location (see _locate), for the packs
        # found in packs/ and those this object is writing.
        self._packed: dict[bytes, int] = {}
        self._pack_paths: list[str] = []  # by ordinal
        self._pack_fds: dict[int, int] = {}  # open descriptors, by ordinal
        self._pack_writers: dict[int, PackWriter] = {}  # unfinished, by ordinal
        self._pack_names: set[str] = set()  # the pack files already indexed
        self._damaged_packs: dict[str, str] = {}
        self._packs_stamp: int | None = None  # packs/ mtime at the last scan
        self._pack_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._pack_fds)

    def __repr__(self) -> str:
        return f"LocalCAS({str(self.path)!r})"

    def __getstate__(self) -> dict[str, object]:
        # A copy (a dask worker's) opens its own packs and finds the others'.
        return {"path": self.path, "hasher": self.hasher, "fsync": self.fsync}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["path"], hasher=state["hasher"], fsync=state["fsync"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalCAS):
            return NotImplemented
        return self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(("LocalCAS", str(self.path.resolve())))

    # ------------------------------------------------------------------ paths
    def _file(self, mh: bytes) -> Path:
        return Path(self._file_name(mh))

    def _file_name(self, mh: bytes) -> str:
        """The block file of multihash ``mh``, as a ``str`` (the hot paths
        use these: a ``Path`` costs several microseconds to build, join and
        compare)."""
        name = mh.hex()
        return f"{self._blocks_dir}/{name[4:6]}/{name}"

    @staticmethod
    def _as_cid(block_id: IPLDKind, what: str = "id") -> CID:
        return coerce_cid(block_id, what, owner="LocalCAS")

    # ----------------------------------------------------------------- writes
    def _batch(self) -> local_io.Batch | None:
        """This store's open batch in the current context, if fsyncs are on."""
        if self.fsync:
            for batch in local_io.BATCHES.get():
                if batch.store is self and not batch.closed:
                    return batch
        return None

    @contextlib.asynccontextmanager
    async def _write_batch(self) -> AsyncIterator[None]:
        if self._batch() is not None or not self.fsync:
            yield  # joins the open batch; or nothing to defer
            return
        batch = local_io.Batch(self)
        token = local_io.BATCHES.set((*local_io.BATCHES.get(), batch))
        try:
            yield
        finally:
            local_io.BATCHES.reset(token)
            await batch.flush(close=True)

    def write_batch(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Defer the fsyncs of the blocks put inside to the batch's exit.

        Inside ``async with cas.write_batch():`` each block is still written
        to a temporary file and renamed into place (so ``SIGKILL`` leaves no
        partial block under a real name, and the block reads back at once),
        but neither the file nor its directory is fsynced; the exit fsyncs
        every file written, or found already there, and each directory once,
        concurrently, and returns when all are durable. Also on an exception
        inside the batch: a block file left behind non-durable would later be
        taken as stored by a ``put`` of the same bytes.

        The batch is seen by the task that opened it and the tasks it starts
        (``asyncio.gather``); other writers keep fsyncing each write. A batch
        opened inside another one of this store joins it (its blocks become
        durable when the outer batch exits). :meth:`set_ref` inside a batch
        first makes the batch's blocks so far durable (a ref never names a
        root that is not). With ``fsync=False`` it does nothing.

        After a power loss or an OS crash before the exit, a block of the
        batch may be left empty or damaged under its name: no durable block
        names it, reads detect it (``IntegrityError``) and a later ``put`` of
        its bytes replaces it.
        """
        return self._write_batch()

    def _write_atomic(
        self, final: str | Path, data: bytes, batch: local_io.Batch | None = None
    ) -> None:
        """Write ``final`` through a temporary file and a rename; fsync both
        unless ``batch`` is open, which then records them for its exit."""
        final = os.fspath(final)
        folder = os.path.dirname(final)
        temp = f"{folder}/.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(temp, flags, 0o644)
        except FileNotFoundError:
            try:
                os.mkdir(folder)
            except FileExistsError:
                if not os.path.isdir(folder):
                    raise
            parent = os.path.dirname(folder)
            if self.fsync and (batch is None or not batch.defer(None, parent)):
                local_io.fsync_dir(parent)  # the new folder's name
            fd = os.open(temp, flags, 0o644)
        sync_now = self.fsync and batch is None
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync_now:
                    local_io.timed_fsync(fd)
                os.replace(temp, final)
                if batch is not None and not batch.defer(final, folder):
                    local_io.timed_fsync(fd)  # the batch closed while this was written
                    sync_now = True
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if sync_now:
            local_io.fsync_dir(folder)

    def _not_a_block_file(self, cid: CID, path: str | Path) -> IntegrityError:
        if os.path.isdir(path):
            what = f"{path} is a directory, not a block file"
        else:
            what = f"{os.path.dirname(path)} is not a directory"
        return IntegrityError(
            f"block {cid} cannot be read or written: {what} (the store is damaged; "
            "py_hamt removes nothing it did not write)",
            cid,
        )

    def _present(self, cid: CID, final: str, data: bytes) -> bool:
        """Whether ``final`` already holds exactly ``data``. A file that
        differs is damage (``False``: it is to be replaced); something that
        is not a file in the way raises IntegrityError."""
        try:
            fd = os.open(final, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except (NotADirectoryError, IsADirectoryError):
            raise self._not_a_block_file(cid, final) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise self._not_a_block_file(cid, final)
            same = info.st_size == len(data) and _read_fd(fd, len(data) + 1) == data
        finally:
            os.close(fd)
        if not same:
            log.warning("replacing damaged block file %s with verified bytes of %s", final, cid)
        return same

    def _write_block(
        self, cid: CID, final: str, data: bytes, batch: local_io.Batch | None = None
    ) -> None:
        try:
            self._write_atomic(final, data, batch)
        except (NotADirectoryError, FileExistsError, IsADirectoryError):
            raise self._not_a_block_file(cid, final) from None

    def _store_sync(self, cid: CID, data: bytes, batch: local_io.Batch | None = None) -> None:
        """Write ``data`` (already verified) as ``cid``'s file, unless an
        identical file is there; a differing one is damage and is replaced.
        In a batch, a file already there is recorded to be fsynced too (its
        writer may not have made it durable yet)."""
        final = self._file_name(bytes(cid.digest))
        folder = os.path.dirname(final)
        if not self._present(cid, final, data):
            self._write_block(cid, final, data, batch)
        elif batch is not None and not batch.defer(final, folder):
            local_io.fsync_paths((final, folder))

    async def _store(self, cid: CID, data: bytes) -> None:
        """:meth:`_store_sync`, with the write in a worker thread. A small
        block already here is compared on the event loop, as small reads are
        (a stat and one small read cost less than a thread hop), and in a
        batch a small block is written there too (no fsync to wait for); a
        large one is compared and written in the thread."""
        batch = self._batch()
        if len(data) < PACK_BLOCK_MAX:
            if batch is not None:
                if self._pack_put(batch, cid, data):
                    return
            elif self._packed_copy(bytes(cid.digest), None) == data:
                return  # a durable copy is already packed
        if len(data) >= local_io.INLINE_MAX:
            await local_io.in_pool(self._store_sync, cid, data, batch)
            return
        final = self._file_name(bytes(cid.digest))
        if self._present(cid, final, data):
            folder = os.path.dirname(final)
            if batch is not None and not batch.defer(final, folder):
                await local_io.in_pool(local_io.fsync_paths, (final, folder))
        elif batch is not None:
            self._write_block(cid, final, data, batch)  # no fsync: cheaper than a hop
        else:
            await local_io.in_pool(self._write_block, cid, final, data, batch)

    # ------------------------------------------------------------------ packs
    @staticmethod
    def _locate(loc: int) -> tuple[int, int, int]:
        """A packed block's ``(pack ordinal, offset, length)``; locations
        are one ``int`` each (about 40 bytes less a block than a tuple)."""
        return loc >> 64, (loc >> 24) & ((1 << 40) - 1), loc & 0xFFFFFF

    def _pack_put(self, batch: local_io.Batch, cid: CID, data: bytes) -> bool:
        """Append a small block to ``batch``'s pack, unless a durable copy
        (or one of this batch) is already packed; ``False`` when that copy
        is damaged, so that the caller writes the block as a file (which
        reads fall back to)."""
        mh = bytes(cid.digest)
        copy = self._packed_copy(mh, batch)
        if copy is not None:
            if copy == data:
                return True
            log.warning("packed copy of %s is damaged; writing the block as a file", cid)
            return False
        with batch.lock:
            if batch.closed:
                return False
            if not batch.packs or batch.packs[-1].size >= PACK_MAX_BYTES:
                writer = PackWriter(self._packs_dir)
                batch.packs.append(writer)
                with self._pack_lock:
                    ordinal = len(self._pack_paths)
                    self._pack_paths.append(writer.temp)
                    self._pack_writers[ordinal] = writer
                    self._pack_fds[ordinal] = writer.fd
                writer.ordinal = ordinal
            writer = batch.packs[-1]
            offset = writer.append(mh, data)
        self._packed[mh] = (writer.ordinal << 64) | (offset << 24) | len(data)
        return True

    def _packed_copy(self, mh: bytes, batch: local_io.Batch | None) -> bytes | None:
        """The stored bytes (unverified) of ``mh``'s packed copy, if it is
        durable (in a finished pack) or ``batch``'s own; else ``None``."""
        loc = self._packed_location(mh)
        if loc is None:
            return None
        writer = self._pack_writers.get(loc >> 64)
        if writer is not None and (batch is None or writer not in batch.packs):
            return None
        try:
            return self._pread(loc)
        except FileNotFoundError:
            return None  # its pack is gone: the block is written again

    async def _finish_packs(self, writers: list[PackWriter]) -> None:
        """Make a batch's packs durable and visible under their final names
        (at the batch's exit, or before a ref is set inside it)."""

        def finish(writer: PackWriter) -> None:
            final = writer.finish(durable=self.fsync)
            with self._pack_lock:
                self._pack_paths[writer.ordinal] = final
                self._pack_names.add(writer.name)
                del self._pack_writers[writer.ordinal]

        if len(writers) == 1:
            await local_io.in_pool(finish, writers[0])
        else:
            await asyncio.gather(*(local_io.in_pool(finish, w) for w in writers))

    def _pread(self, loc: int) -> bytes:
        """The bytes stored at packed location ``loc`` (not verified)."""
        ordinal, offset, length = self._locate(loc)
        with self._pack_lock:
            fds = self._pack_fds
            fd = fds.pop(ordinal, None)  # put back last: the dict is in use order
            if fd is None:
                fd = os.open(self._pack_paths[ordinal], os.O_RDONLY)
                if len(fds) >= MAX_OPEN_PACKS:
                    self._close_least_used()
            fds[ordinal] = fd
            return os.pread(fd, length, offset)

    def _close_least_used(self) -> None:
        """Close the least recently read pack that is not being written (the
        caller holds ``_pack_lock``, as every read of a pack does)."""
        for ordinal in self._pack_fds:
            if ordinal not in self._pack_writers:
                os.close(self._pack_fds.pop(ordinal))
                return

    def _read_packed(self, cid: CID, loc: int) -> bytes | None:
        """A packed block's bytes, verified; ``None`` if that copy is
        damaged, or its pack is gone, and a block file exists to fall back to.

        Raises:
            IntegrityError: the copy is damaged and there is no block file.
            BlockNotFoundError: the pack was removed after this object
                indexed it, and there is no block file.
        """
        try:
            data = self._pread(loc)
            verify_block(cid, data)
        except (FileNotFoundError, IntegrityError) as exc:
            if os.path.exists(self._file_name(bytes(cid.digest))):
                return None
            ordinal, offset, _ = self._locate(loc)
            pack = self._pack_paths[ordinal]
            if isinstance(exc, FileNotFoundError):
                raise BlockNotFoundError(cid, f"its pack {pack} is gone") from None
            raise IntegrityError(
                f"block {cid} in pack {pack} (byte {offset}) is damaged: {exc}", cid
            ) from exc
        return data

    def _scan_packs(self) -> bool:
        """Index the packs in ``packs/`` not indexed yet (written by other
        objects or processes); whether any were found. Skipped while the
        folder is unchanged since the last scan (and that change is over a
        second old: a folder's mtime may not move for a rename within the
        same clock tick)."""
        with self._pack_lock:
            try:
                stamp = os.stat(self._packs_dir).st_mtime_ns
            except FileNotFoundError:
                return False
            if stamp == self._packs_stamp and time.time_ns() - stamp > 1_000_000_000:
                return False
            self._packs_stamp = stamp
            found = False
            for name in sorted(os.listdir(self._packs_dir)):
                if name in self._pack_names or not name.endswith(".pack") or name[0] == ".":
                    continue
                self._pack_names.add(name)
                path = f"{self._packs_dir}/{name}"
                try:
                    entries = read_index(path)
                except FileNotFoundError:
                    continue
                except (PackDamagedError, OSError) as exc:
                    self._damaged_packs[name] = str(exc)
                    log.warning("skipping damaged pack: %s", exc)
                    continue
                ordinal = len(self._pack_paths)
                self._pack_paths.append(path)
                base = ordinal << 64
                packed = self._packed
                for mh, offset, length in entries:
                    if mh not in packed:
                        packed[mh] = base | (offset << 24) | length
                found = True
            return found

    def _packed_location(self, mh: bytes) -> int | None:
        """Where ``mh`` is packed, scanning ``packs/`` first on this object's
        first read."""
        if self._packs_stamp is None:
            self._scan_packs()
        return self._packed.get(mh)

    def close(self) -> None:
        """Close the pack files this object holds open (it reopens them if
        used again). Packs still being written (inside an open batch) stay
        open."""
        with self._pack_lock:
            for ordinal, fd in list(self._pack_fds.items()):
                if ordinal not in self._pack_writers:
                    os.close(fd)
                    del self._pack_fds[ordinal]

    def damaged_packs(self) -> dict[str, str]:
        """Pack files whose index could not be read, each with why; their
        blocks read as missing (``BlockNotFoundError`` names them)."""
        self._scan_packs()
        return dict(self._damaged_packs)

    def packed_blocks(self) -> list[bytes]:
        """The multihash of every packed block indexed (packs found so far,
        and those this object is writing)."""
        self._scan_packs()
        return list(self._packed)

    def pack_files(self) -> list[Path]:
        """Every finished pack file (temporary ones excluded)."""
        return [p for p in self._packs.iterdir() if p.name.endswith(".pack")]

    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Store ``data`` durably; its id is a CIDv1 (see the module docstring).

        The digest is the one that names it when the algorithms agree (hashed
        once), else computed separately. If the block's file is already there
        but its bytes differ (damage), it is replaced atomically.

        Raises:
            InvalidArgumentError: ``codec`` is not ``raw`` or ``dag-cbor``.
            IntegrityError: a directory occupies the block's file name.
        """
        if codec not in ("raw", "dag-cbor"):
            raise InvalidArgumentError(f"codec must be 'raw' or 'dag-cbor', got {codec!r}")
        data = bytes(data)
        own = ContentDigest.of(data, self.hasher)
        client = own if digest == self.hasher else ContentDigest.of(data, digest)
        mh = bytes((own.multihash_code, len(own.value))) + own.value
        cid = make_cid(DAG_CBOR if codec == "dag-cbor" else RAW, mh)
        await self._store(cid, data)
        if observability.ACTIVE:
            observability.wrote(codec, len(data))
        return WriteResult(id=cid, size=len(data), digest=client)

    if TYPE_CHECKING:  # ``save`` is the base class's; only its id type is narrowed here

        async def save(self, data: bytes, codec: Codec) -> CID: ...

    async def put_block(self, cid: CID, data: bytes) -> WriteResult:
        """Store ``data`` under ``cid`` after checking it hashes to it; a
        damaged file already under that name is replaced.

        Raises:
            InvalidArgumentError: ``cid`` is not a CID, or its digest is
                truncated.
            IntegrityError: ``data`` does not hash to ``cid``, or a directory
                occupies the block's file name.
        """
        cid = coerce_cid(cid, "cid")
        data = bytes(data)
        client = verify_block(cid, data)
        await self._store(cid, data)
        return WriteResult(id=cid, size=len(data), digest=client)

    # ------------------------------------------------------------------ reads
    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        """Whether the block is here: its file, or a packed copy whose pack
        is still there. Neither is read (this is on every copy's path): use
        :meth:`verify` to check the bytes.

        Raises:
            InvalidArgumentError: ``id`` is not a CID or has a truncated digest.
        """
        mh = bytes(self._as_cid(id).digest)
        if self._in_pack(self._packed_location(mh)) or self._file(mh).is_file():
            return True
        return self._scan_packs() and self._in_pack(self._packed.get(mh))

    def _in_pack(self, loc: int | None) -> bool:
        """Whether packed location ``loc`` is readable: its pack is open
        here, or still on disk (not removed since it was indexed)."""
        if loc is None:
            return False
        ordinal = loc >> 64
        with self._pack_lock:
            if ordinal in self._pack_fds:
                return True
            path = self._pack_paths[ordinal]
        return os.path.exists(path)

    def _open_block(self, cid: CID, path: str) -> tuple[int, int]:
        """Open ``cid``'s file: its descriptor and size.

        Raises:
            BlockNotFoundError: there is no such file.
            IntegrityError: something that is not a file is in its way.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlockNotFoundError(cid, f"not in {self.path}") from None
        except (IsADirectoryError, NotADirectoryError):
            raise self._not_a_block_file(cid, path) from None
        return fd, self._size(cid, path, fd)

    def _size(self, cid: CID, path: str, fd: int) -> int:
        """The size of the open block file ``fd``; closes it and raises
        IntegrityError if it is a directory."""
        try:
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            raise self._not_a_block_file(cid, path)
        return info.st_size

    @staticmethod
    def _check(cid: CID, path: str | Path, data: bytes) -> bytes:
        try:
            verify_block(cid, data)
        except IntegrityError as exc:
            raise IntegrityError(f"block file {path} is damaged: {exc}", cid) from exc
        return data

    def _read_verified_fd(self, cid: CID, path: str, fd: int, size: int) -> bytes:
        """Read the whole file from ``fd`` (closing it) and verify it."""
        try:
            data = local_io.read_to_end(fd, size)
        finally:
            os.close(fd)
        return self._check(cid, path, data)

    def _read_cached_fd(self, fd: int, size: int) -> bytes | None:
        """:func:`local_io.read_cached` where this filesystem allows it."""
        if not self._nowait:
            return None
        try:
            return local_io.read_cached(fd, size)
        except OSError:  # no non-blocking reads here (EOPNOTSUPP, EINVAL)
            self._nowait = False
            return None

    async def _read_verified(self, cid: CID) -> bytes:
        """The block's whole file, hashed against ``cid``.

        The file is opened on the event loop. One under ``local_io.INLINE_MAX``
        bytes is read and hashed there too, as is a larger one the page
        cache holds whole (read without blocking) up to ``local_io.HASH_INLINE_MAX``;
        any other is read and hashed in the I/O pool, so that concurrent
        loads overlap their disk reads.

        Raises:
            BlockNotFoundError: no such block here.
            IntegrityError: the file does not hash to ``cid``, or a directory
                is in its place.
        """
        mh = bytes(cid.digest)
        loc = self._packed_location(mh)
        if loc is not None and (data := self._read_packed(cid, loc)) is not None:
            return data
        path = self._file_name(mh)
        try:
            fd, size = self._open_block(cid, path)
        except BlockNotFoundError:
            loc = self._packed.get(mh) if self._scan_packs() else None
            if loc is not None and (data := self._read_packed(cid, loc)) is not None:
                return data
            if self._damaged_packs:
                raise BlockNotFoundError(
                    cid,
                    f"not in {self.path} (damaged packs, whose blocks cannot be "
                    f"found: {', '.join(sorted(self._damaged_packs))})",
                ) from None
            raise
        if size < local_io.INLINE_MAX:
            return self._read_verified_fd(cid, path, fd, size)
        cached = None
        if size < local_io.HASH_INLINE_MAX:
            try:
                cached = self._read_cached_fd(fd, size)
            except BaseException:
                os.close(fd)
                raise
        if cached is not None:
            os.close(fd)
            return self._check(cid, path, cached)
        try:
            job = local_io.io_pool().submit(self._read_verified_fd, cid, path, fd, size)
        except BaseException:
            os.close(fd)
            raise

        def close_if_never_run(done: Future[bytes]) -> None:
            if done.cancelled():  # the read was cancelled before it started
                os.close(fd)

        job.add_done_callback(close_if_never_run)
        return await asyncio.wrap_future(job)

    async def verify(self, id: IPLDKind) -> bool:  # noqa: A002
        """Whether the block's file hashes to ``id``: ``True`` when intact,
        ``False`` when damaged (including a directory in its place). Hashes
        the whole file. A damaged block is repaired by writing its bytes
        again (``put``/``put_block``, or ``copy_dag`` from a good store).

        Raises:
            BlockNotFoundError: there is no file for the block.
            InvalidArgumentError: ``id`` is not a CID or has a truncated digest.
        """
        cid = self._as_cid(id)
        try:
            await self._read_verified(cid)
        except IntegrityError:
            return False
        return True

    async def _load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> bytes:
        """Read and verify a whole block, then cut the range asked for.

        Raises:
            BlockNotFoundError: no such block here.
            IntegrityError: the file does not hash to the id (disk damage,
                or a file changed behind the store's back), or a directory is
                where the block's file should be (the store is damaged: the
                block is neither missing nor readable).
            InvalidArgumentError: ``id`` is not a CID or has a truncated digest.
        """
        data = await self._read_verified(self._as_cid(id))
        return slice_range(data, offset, length, suffix)

    def cid_to_id(self, cid: CID) -> CID:
        return cid

    # ------------------------------------------------------------------- refs
    def _ref_path(self, name: str) -> Path:
        if not isinstance(name, str):
            raise InvalidTypeError(f"ref names are str, got {type(name).__name__}: {name!r}")
        if not _REF_NAME.match(name):
            raise InvalidArgumentError(
                "ref names are 1-200 letters, digits, '.', '_' or '-', not starting "
                f"with '.', got {name!r}"
            )
        return self._refs / name

    def _read_ref(self, name: str, path: Path) -> CID | None:
        """The CID in ref file ``path``, ``None`` if there is none.

        Raises MalformedNodeError naming the ref when the file is not a ref.
        """
        try:
            with path.open("rb") as f:
                raw = f.read(_MAX_REF_BYTES + 1)
        except FileNotFoundError:
            return None
        except (IsADirectoryError, NotADirectoryError):
            raise MalformedNodeError(f"ref {name!r} is damaged: {path} is not a file") from None
        if len(raw) > _MAX_REF_BYTES:
            raise MalformedNodeError(
                f"ref {name!r} is damaged: {path} holds over {_MAX_REF_BYTES} bytes, not a CID"
            )
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise MalformedNodeError(
                f"ref {name!r} is damaged: {path} is not UTF-8 text ({raw[:40]!r})"
            ) from None
        try:
            return cid_from_text(text)
        except ValueError as exc:
            raise MalformedNodeError(
                f"ref {name!r} is damaged: {path} holds {text[:100]!r}, not a CID ({exc})"
            ) from exc

    async def set_ref(self, name: str, id: IPLDKind) -> None:  # noqa: A002
        """Point ref ``name`` at a root, atomically and durably.

        The root must already be here, intact: a ref is never written before
        the data it names. The root's own block is verified (its children are
        not: see ``py_hamt.jobs.fsck``).

        Raises:
            InvalidArgumentError: a bad ref name (see :meth:`refs`), or a root
                that is not a CID (both named).
            BlockNotFoundError: the root is not in this store.
            IntegrityError: the root's block file is damaged, or the ref's
                file name is taken by a directory.
        """
        path = self._ref_path(name)
        cid = self._as_cid(id, f"root of ref {name!r}")
        try:
            intact = await self.verify(cid)
        except BlockNotFoundError:
            raise BlockNotFoundError(
                cid, f"refusing to point ref {name!r} at a missing root"
            ) from None
        if not intact:
            raise IntegrityError(
                f"refusing to point ref {name!r} at {cid}: its block file is damaged", cid
            )
        if path.is_dir():
            raise IntegrityError(f"cannot write ref {name!r}: {path} is a directory", cid)
        batch = self._batch()
        if batch is not None:
            # The root (and what it names) may be in this batch: durable first.
            await batch.flush(close=False)
        await local_io.in_pool(self._write_atomic, path, str(cid).encode())

    async def get_ref(self, name: str) -> CID | None:
        """The root ref ``name`` points at, or ``None`` if there is no such ref.

        Raises:
            InvalidArgumentError: ``name`` is not a valid ref name.
            MalformedNodeError: the ref's file does not hold a CID (not
                UTF-8, not a CID, a truncated digest, or a directory); the
                message names the ref.
        """
        return self._read_ref(name, self._ref_path(name))

    def _scan_refs(self) -> tuple[dict[str, CID], dict[str, MalformedNodeError]]:
        good: dict[str, CID] = {}
        bad: dict[str, MalformedNodeError] = {}
        for entry in sorted(self._refs.iterdir()):
            if not _REF_NAME.match(entry.name):
                continue  # temporary files, and names no ref can have
            try:
                cid = self._read_ref(entry.name, entry)
            except MalformedNodeError as exc:
                bad[entry.name] = exc
                continue
            if cid is not None:
                good[entry.name] = cid
        return good, bad

    def refs(self) -> dict[str, CID]:
        """Every readable ref and the root it names.

        A damaged ref (a file that does not hold a CID) is skipped, with a
        warning logged naming it, so that one bad ref does not hide the
        others; :meth:`damaged_refs` lists them and :meth:`get_ref` raises
        for them. Files whose names no ref can have (such as temporary
        files) are ignored.
        """
        good, bad = self._scan_refs()
        for exc in bad.values():
            log.warning("%s", exc)
        return good

    def damaged_refs(self) -> dict[str, MalformedNodeError]:
        """The refs :meth:`refs` skips, each with the error naming what is wrong."""
        return self._scan_refs()[1]

    # ----------------------------------------------------------- maintenance
    def cleanup(self) -> int:
        """Remove temporary files left by writers that are gone; return how many.

        Only files named ``.tmp-<pid>-<hex>`` whose process is gone are
        removed; no ref can have such a name.
        """
        removed = 0
        folders = [self._refs, self._packs, *(p for p in self._blocks.iterdir() if p.is_dir())]
        for folder in folders:
            for entry in folder.iterdir():
                match = _TEMP.match(entry.name)
                if match and not entry.is_dir() and not _pid_alive(int(match[1])):
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
                        removed += 1
        return removed

    def block_files(self) -> list[Path]:
        """Every block file (temporary files excluded)."""
        return [
            f
            for folder in self._blocks.iterdir()
            if folder.is_dir()
            for f in folder.iterdir()
            if not f.name.startswith(".")
        ]
