"""LocalCAS: a durable content-addressed store in a directory.

Layout::

    PATH/blocks/<xx>/<multihash hex>   one file per block (xx: first digest byte)
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

Every read is verified: the whole file is hashed against the id before any
of it (or any range of it) is returned.

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
import os
import re
import secrets
from pathlib import Path
from typing import Final

from multiformats import CID

from py_hamt.cas.base import (
    Codec,
    ContentAddressedStore,
    IPLDKind,
    check_range,
    slice_range,
    verify_block,
)
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.cids import DAG_CBOR, RAW, coerce_cid, make_cid
from py_hamt.codec.multihash import BLAKE3, SHA2_256
from py_hamt.errors import BlockNotFoundError, IntegrityError, InvalidArgumentError

__all__ = ["LocalCAS"]

_HASHERS: Final = {"blake3": BLAKE3, "sha2-256": SHA2_256}
_TEMP = re.compile(r"^\.tmp-(\d+)-[0-9a-f]+$")
_REF_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """

    def __init__(
        self, path: str | os.PathLike[str], *, hasher: str = "blake3", fsync: bool = True
    ) -> None:
        if hasher not in _HASHERS:
            raise InvalidArgumentError(f"hasher must be one of {sorted(_HASHERS)}, got {hasher!r}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InvalidArgumentError(f"{self.path} exists and is not a directory")
        self.hasher: DigestAlgorithm = "blake3" if hasher == "blake3" else "sha2-256"
        self.fsync = bool(fsync)
        self._blocks = self.path / "blocks"
        self._refs = self.path / "refs"
        self._blocks.mkdir(parents=True, exist_ok=True)
        self._refs.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalCAS({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalCAS):
            return NotImplemented
        return self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(("LocalCAS", str(self.path.resolve())))

    # ------------------------------------------------------------------ paths
    def _file(self, mh: bytes) -> Path:
        name = mh.hex()
        return self._blocks / name[4:6] / name

    @staticmethod
    def _as_cid(block_id: IPLDKind) -> CID:
        return coerce_cid(block_id, owner="LocalCAS")

    # ----------------------------------------------------------------- writes
    def _write_atomic(self, final: Path, data: bytes) -> None:
        folder = final.parent
        folder.mkdir(exist_ok=True)
        temp = folder / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        if self.fsync:
            _fsync_dir(folder)

    async def _store(self, cid: CID, data: bytes) -> None:
        final = self._file(bytes(cid.digest))
        if final.exists():
            return  # same name, same bytes
        await asyncio.to_thread(self._write_atomic, final, data)

    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Store ``data``; the digest is the one that names it when the
        algorithms agree (hashed once), else computed separately."""
        if codec not in ("raw", "dag-cbor"):
            raise InvalidArgumentError(f"codec must be 'raw' or 'dag-cbor', got {codec!r}")
        data = bytes(data)
        own = ContentDigest.of(data, self.hasher)
        client = own if digest == self.hasher else ContentDigest.of(data, digest)
        mh = bytes((own.multihash_code, len(own.value))) + own.value
        cid = make_cid(DAG_CBOR if codec == "dag-cbor" else RAW, mh)
        await self._store(cid, data)
        return WriteResult(id=cid, size=len(data), digest=client)

    async def save(self, data: bytes, codec: Codec) -> CID:
        """Store ``data`` durably; return its CIDv1 (see the module docstring)."""
        result = await self.put(data, codec)
        return result.id  # type: ignore[no-any-return]

    async def put_block(self, cid: CID, data: bytes) -> WriteResult:
        """Store ``data`` under ``cid`` after checking it hashes to it."""
        client = verify_block(cid, bytes(data))
        await self._store(cid, bytes(data))
        return WriteResult(id=cid, size=len(data), digest=client)

    # ------------------------------------------------------------------ reads
    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        return self._file(bytes(self._as_cid(id).digest)).is_file()

    async def load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> bytes:
        """Read and verify a whole block, then cut the range asked for.

        Raises:
            BlockNotFoundError: no such block here.
            IntegrityError: the file does not hash to the id (disk damage,
                or a file changed behind the store's back).
        """
        cid = self._as_cid(id)
        check_range(offset, length, suffix)
        path = self._file(bytes(cid.digest))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFoundError(cid, f"not in {self.path}") from None
        try:
            verify_block(cid, data)
        except IntegrityError as exc:
            raise IntegrityError(f"block file {path} is damaged: {exc}", cid) from exc
        return slice_range(data, offset, length, suffix)

    def cid_to_id(self, cid: CID) -> CID:
        return cid

    # ------------------------------------------------------------------- refs
    def _ref_path(self, name: str) -> Path:
        if not isinstance(name, str) or not _REF_NAME.match(name):
            raise InvalidArgumentError(
                f"ref names are 1-200 letters, digits, '.', '_' or '-', got {name!r}"
            )
        return self._refs / name

    async def set_ref(self, name: str, id: IPLDKind) -> None:  # noqa: A002
        """Point ref ``name`` at a root, atomically and durably.

        The root must already be here: a ref is never written before the
        data it names.

        Raises:
            BlockNotFoundError: the root is not in this store.
        """
        cid = self._as_cid(id)
        if not await self.has(cid):
            raise BlockNotFoundError(cid, f"refusing to point ref {name!r} at a missing root")
        await asyncio.to_thread(self._write_atomic, self._ref_path(name), str(cid).encode())

    async def get_ref(self, name: str) -> CID | None:
        """The root ref ``name`` points at, or ``None`` if there is no such ref."""
        try:
            text = self._ref_path(name).read_text().strip()
        except FileNotFoundError:
            return None
        return self._as_cid(text)

    def refs(self) -> dict[str, CID]:
        """Every ref and the root it names."""
        out: dict[str, CID] = {}
        for entry in sorted(self._refs.iterdir()):
            if _REF_NAME.match(entry.name):
                out[entry.name] = self._as_cid(entry.read_text().strip())
        return out

    # ----------------------------------------------------------- maintenance
    def cleanup(self) -> int:
        """Remove temporary files left by writers that are gone; return how many."""
        removed = 0
        for folder in [self._refs, *(p for p in self._blocks.iterdir() if p.is_dir())]:
            for entry in folder.iterdir():
                match = _TEMP.match(entry.name)
                if match and not _pid_alive(int(match[1])):
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
