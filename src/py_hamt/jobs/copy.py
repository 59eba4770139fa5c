"""Store-to-store copies of a DAG, resumable, verified, root last."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Final

from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore, verify_block
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.local import LocalCAS
from py_hamt.cas.write_result import ContentDigest, WriteResult
from py_hamt.codec.car import encode_header, encode_section
from py_hamt.codec.cids import coerce_cid
from py_hamt.errors import BlockNotFoundError, InvalidArgumentError
from py_hamt.jobs.dag import links
from py_hamt.jobs.progress import Progress, ProgressCallback, report

__all__ = ["CopyReport", "copy_dag", "root_cid"]

_CAR_BATCH_BYTES: Final = 32 * 2**20


@dataclass
class CopyReport:
    """What a copy did. ``root`` is the root's result when it was written
    by this run (``None`` when the destination already had it)."""

    root_cid: CID
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    root: WriteResult | None = None
    written: list[CID] = field(default_factory=list, repr=False)


def root_cid(cas: ContentAddressedStore, root: object) -> CID:
    """``root`` as a CID: a CID, its text, or an id ``cas`` can name.

    Raises:
        InvalidArgumentError: none of those, or a CID whose digest is
            truncated; the message names the root.
    """
    if isinstance(root, (CID, str)):
        return coerce_cid(root, "root")
    try:
        return coerce_cid(cas.id_to_cid(root, "dag-cbor"), "root")
    except (InvalidArgumentError, TypeError) as exc:
        raise InvalidArgumentError(f"cannot name root {root!r} with a CID: {exc}") from exc


class _Copier:
    def __init__(
        self,
        source: ContentAddressedStore,
        destination: ContentAddressedStore,
        root: CID,
        progress: ProgressCallback | None,
        concurrency: int,
        record: bool,
        verify_existing: bool,
    ) -> None:
        self.src, self.dst, self.root = source, destination, root
        self.progress = progress
        self.limit = asyncio.Semaphore(concurrency)
        self.report = CopyReport(root)
        self.record = record
        self.seen: set[bytes] = set()
        self.present: set[bytes] | None = None  # a Kubo destination's local set
        self.car_batch: list[tuple[CID, bytes, ContentDigest]] = []
        self.car_bytes = 0
        self.kubo = destination if isinstance(destination, KuboCAS) else None
        self.local = destination if verify_existing and isinstance(destination, LocalCAS) else None

    async def _dst_has(self, cid: CID) -> bool:
        if self.present is not None:
            return bytes(cid.digest) in self.present
        if self.local is not None:
            # A block file that is there but damaged counts as absent, so it
            # is copied again (put_block replaces it).
            try:
                return await self.local.verify(cid)
            except BlockNotFoundError:
                return False
        return await self.dst.has(self.dst.cid_to_id(cid))

    async def visit(self, cid: CID) -> None:
        key = bytes(cid)
        if key in self.seen:
            return
        self.seen.add(key)
        async with self.limit:
            present = await self._dst_has(cid)
            data = None
            digest = None
            # A present raw leaf needs nothing; anything else is read (from the
            # source, which is what is being walked) and verified.
            if not present or cid.codec.name != "raw":
                data = await self.src.load(self.src.cid_to_id(cid))
                digest = verify_block(cid, data)
        children = links(cid, data) if data is not None else []
        if children:
            await asyncio.gather(*(self.visit(child) for child in children))
        # Children are in place (or queued ahead): now this block.
        if present or data is None or digest is None:
            self.report.skipped += 1
        else:
            await self._write(cid, data, digest)
        report(
            self.progress,
            Progress(
                self.report.copied + self.report.skipped,
                None,
                "blocks",
                self.report.bytes_copied,
            ),
        )

    async def _write(self, cid: CID, data: bytes, digest: ContentDigest) -> None:
        if self.kubo is not None:
            self.car_batch.append((cid, data, digest))
            self.car_bytes += len(data)
            if self.car_bytes >= _CAR_BATCH_BYTES and cid != self.root:
                await self._flush_car()
        else:
            written = await self.dst.put_block(cid, data)
            self._count(cid, len(data), written)

    def _count(self, cid: CID, size: int, written: WriteResult | None) -> None:
        self.report.copied += 1
        self.report.bytes_copied += size
        if self.record:
            self.report.written.append(cid)
        if cid == self.root and written is not None:
            self.report.root = written

    async def _flush_car(self) -> None:
        if not self.car_batch or self.kubo is None:
            return
        batch, self.car_batch, self.car_bytes = self.car_batch, [], 0
        out = io.BytesIO()
        out.write(encode_header([batch[-1][0]]))
        for cid, data, _ in batch:
            out.write(encode_section(cid, data))
        await self.kubo.import_car(out.getvalue())
        for cid, data, digest in batch:
            self._count(cid, len(data), WriteResult(id=cid, size=len(data), digest=digest))

    async def run(self) -> CopyReport:
        if self.kubo is not None:
            self.present = await self.kubo.local_multihashes()
        await self.visit(self.root)
        await self._flush_car()
        return self.report


async def copy_dag(
    source: ContentAddressedStore,
    destination: ContentAddressedStore,
    root: object,
    *,
    progress: ProgressCallback | None = None,
    concurrency: int = 16,
    record_written: bool = False,
    verify_existing: bool = True,
) -> CopyReport:
    """Copy the DAG under ``root`` from ``source`` to ``destination``.

    Blocks the destination already holds are skipped; every other block is
    verified against its CID before it is written (a damaged copy of it in
    the destination is replaced), and blocks are written
    children first, so the root is written last and an interrupted copy
    never leaves a root pointing at missing blocks. Re-running after an
    interruption copies only what is still missing. Into a :class:`KuboCAS`,
    blocks go as CAR files through ``dag/import`` (up to 32 MiB each), not
    one request per block.

    Args:
        root: a CID, its text, or an id of ``source``.
        progress: called with blocks done (copied + skipped) and bytes copied.
        concurrency: blocks handled at once.
        record_written: also list the CIDs written in the report.
        verify_existing: into a :class:`LocalCAS`, count a block as already
            there only if its file hashes to its CID (read and hashed: a copy
            onto a damaged store repairs it). ``False`` trusts any file that
            exists (faster to resume a copy into a store known to be sound).
            Other destinations are asked ``has`` (a Kubo node: its list of
            local blocks).

    Raises:
        InvalidArgumentError: ``root`` is not a CID, or has a truncated digest.
        IntegrityError: a source block does not match its CID.
        BlockNotFoundError, TransportError: a store could not supply a block.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
    cid = root_cid(source, root)
    copier = _Copier(
        source, destination, cid, progress, concurrency, record_written, bool(verify_existing)
    )
    return await copier.run()
