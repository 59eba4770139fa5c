"""Pack files under :class:`~py_hamt.cas.local.LocalCAS`: many small blocks
of one write batch in one file.

Creating a file costs 35-900 us of kernel time on ext4 here, so a HAMT
commit's 211 nodes as 211 files took 80 ms, and a ten-million-key write
spent most of its time creating files. Inside a write batch, blocks under
:data:`PACK_BLOCK_MAX` bytes are appended to one pack file instead, which is
made durable, and visible to other processes, once, at the batch's exit.

Layout of ``PATH/packs/<32 hex>.pack``::

    MAGIC                                 14 bytes
    block bytes, one after another        (each verified against its id on read)
    index: per block, u8 multihash length, the multihash, u64 offset, u32 length
    trailer: u64 index offset, u32 block count, END (8 bytes)

All integers are little-endian. A pack is written under a temporary name
(``.tmp-<pid>-<hex>``, in the same folder), fsynced, renamed into place and
the folder fsynced, so a pack under a ``.pack`` name is always whole: a
crash mid-batch leaves only a temporary file, which no reader opens and
:meth:`LocalCAS.cleanup` removes once its writer is gone.

Internal to ``LocalCAS``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from typing import Final

from py_hamt.cas import local_io

__all__ = [
    "END",
    "MAGIC",
    "MAX_OPEN_PACKS",
    "PACK_BLOCK_MAX",
    "PACK_MAX_BYTES",
    "PackDamagedError",
    "PackWriter",
    "read_index",
]

MAGIC: Final = b"py_hamt pack\x00\x01"
END: Final = b"PKINDEX\x01"
_TRAILER: Final = struct.Struct("<QI8s")
_ENTRY_TAIL: Final = struct.Struct("<QI")

PACK_BLOCK_MAX: Final = local_io.INLINE_MAX
"""Blocks under this many bytes put inside a write batch go to a pack (HAMT
nodes and small metadata); larger ones stay files of their own, read and
hashed off the event loop."""

PACK_MAX_BYTES: Final = 256 << 20
"""A batch starts a new pack once its current one holds this many bytes."""

MAX_OPEN_PACKS: Final = 64
"""Pack files a store object keeps open for reads (least recently read
closed first; packs being written stay open)."""


class PackDamagedError(ValueError):
    """A pack file whose index cannot be read (named in the message)."""


class PackWriter:
    """One pack being written: a temporary file appended to on the event
    loop, readable (``fd``) while it grows, finished by :meth:`finish`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.name = f"{secrets.token_hex(16)}.pack"
        self.temp = f"{folder}/.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        self.fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        self.entries: list[tuple[bytes, int, int]] = []
        self.size = 0
        self.ordinal = -1  # the owning store's number for this pack
        try:
            self._write(MAGIC)
        except BaseException:
            self.discard()
            raise

    @property
    def final(self) -> str:
        return f"{self.folder}/{self.name}"

    def _write(self, data: bytes) -> None:
        # At an explicit offset: a write that fails part way (a full disk)
        # leaves ``size`` where it was, and the next write covers its bytes.
        view = memoryview(data)
        at = self.size
        while view:
            n = os.pwrite(self.fd, view, at)
            view = view[n:]
            at += n
        self.size = at

    def append(self, mh: bytes, data: bytes) -> int:
        """Add one block (its multihash and bytes); its offset in the pack."""
        offset = self.size
        self._write(data)
        self.entries.append((mh, offset, len(data)))
        return offset

    def finish(self, durable: bool) -> str:
        """Write the index and trailer, fsync (``durable``), rename the pack
        into place and fsync its folder; the final path. ``fd`` stays open
        (on the renamed file) for reads."""
        parts = []
        for mh, offset, length in self.entries:
            parts.append(bytes((len(mh),)))
            parts.append(mh)
            parts.append(_ENTRY_TAIL.pack(offset, length))
        index_at = self.size
        self._write(b"".join(parts))
        self._write(_TRAILER.pack(index_at, len(self.entries), END))
        if durable:
            local_io.timed_fsync(self.fd)
        os.rename(self.temp, self.final)
        if durable:
            local_io.fsync_dir(self.folder)
        return self.final

    def discard(self) -> None:
        """Close and remove an unfinished pack (nothing in it is durable)."""
        try:
            os.close(self.fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)


def read_index(path: str) -> list[tuple[bytes, int, int]]:
    """A finished pack's ``[(multihash, offset, length), ...]``.

    Raises:
        PackDamagedError: the pack is shorter than its trailer, lacks the
            magic or the end mark, or its index does not fit the file.
        FileNotFoundError: the pack is gone.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, len(MAGIC), 0)
        if size < len(MAGIC) + _TRAILER.size or head != MAGIC:
            raise PackDamagedError(f"pack {path} does not start with the pack header")
        index_at, count, end = _TRAILER.unpack(os.pread(fd, _TRAILER.size, size - _TRAILER.size))
        if end != END or not len(MAGIC) <= index_at <= size - _TRAILER.size:
            raise PackDamagedError(f"pack {path} has no valid trailer")
        raw = os.pread(fd, size - _TRAILER.size - index_at, index_at)
    finally:
        os.close(fd)
    return _parse_index(path, raw, count, index_at)


def _parse_index(path: str, raw: bytes, count: int, data_end: int) -> list[tuple[bytes, int, int]]:
    entries: list[tuple[bytes, int, int]] = []
    pos = 0
    tail = _ENTRY_TAIL.size
    try:
        for _ in range(count):
            n = raw[pos]
            mh = raw[pos + 1 : pos + 1 + n]
            offset, length = _ENTRY_TAIL.unpack_from(raw, pos + 1 + n)
            pos += 1 + n + tail
            if len(mh) != n or offset < len(MAGIC) or offset + length > data_end:
                raise PackDamagedError(f"pack {path}: index entry {len(entries)} is out of range")
            entries.append((mh, offset, length))
    except (IndexError, struct.error):
        raise PackDamagedError(f"pack {path}: its index is cut short") from None
    if pos != len(raw):
        raise PackDamagedError(f"pack {path}: {len(raw) - pos} stray bytes after its index")
    return entries
