"""Check the DAGs under some roots: every block present and matching its CID."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore, verify_block
from py_hamt.cas.local import LocalCAS
from py_hamt.errors import (
    BlockNotFoundError,
    IntegrityError,
    InvalidArgumentError,
    MalformedNodeError,
    one_line,
)
from py_hamt.jobs.copy import root_cid
from py_hamt.jobs.dag import links
from py_hamt.jobs.progress import Progress, ProgressCallback, report

__all__ = ["FsckReport", "fsck"]


@dataclass
class FsckReport:
    """What :func:`fsck` found.

    Attributes:
        roots: the roots walked.
        checked: distinct blocks looked at (good, corrupt, missing or
            malformed); blocks only reachable through a bad block are not
            reached and not counted.
        bytes_checked: bytes read and verified.
        corrupt: blocks whose bytes do not hash to their CID (or that cannot
            be read, such as a directory in a block file's place).
        missing: blocks the store does not hold.
        malformed: blocks that match their CID but do not decode as their
            codec, so their links cannot be followed.
        problems: a one-line reason for each bad block, by CID.
    """

    roots: list[CID]
    checked: int = 0
    bytes_checked: int = 0
    corrupt: list[CID] = field(default_factory=list)
    missing: list[CID] = field(default_factory=list)
    malformed: list[CID] = field(default_factory=list)
    problems: dict[CID, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether every block reached is present and intact."""
        return not (self.corrupt or self.missing or self.malformed)


class _Checker:
    def __init__(
        self, cas: ContentAddressedStore, done: FsckReport, progress: ProgressCallback | None
    ) -> None:
        self.cas = cas
        self.done = done
        self.progress = progress
        # LocalCAS.load already hashes every block against its id.
        self.load_verifies = isinstance(cas, LocalCAS)

    async def check(self, cid: CID) -> list[CID]:
        """Check one block; return its links (none when it is bad)."""
        done = self.done
        children: list[CID] = []
        try:
            data = await self.cas.load(self.cas.cid_to_id(cid))
            if not self.load_verifies:
                verify_block(cid, data)
        except BlockNotFoundError as exc:
            self._bad(done.missing, cid, exc)
        except IntegrityError as exc:
            self._bad(done.corrupt, cid, exc)
        else:
            done.bytes_checked += len(data)
            try:
                children = links(cid, data)
            except MalformedNodeError as exc:
                self._bad(done.malformed, cid, exc)
        done.checked += 1
        report(self.progress, Progress(done.checked, None, "blocks", done.bytes_checked))
        return children

    def _bad(self, where: list[CID], cid: CID, exc: BaseException) -> None:
        where.append(cid)
        self.done.problems[cid] = one_line(exc)


async def fsck(
    cas: ContentAddressedStore,
    roots: Iterable[object] | CID | str,
    *,
    progress: ProgressCallback | None = None,
    concurrency: int = 16,
) -> FsckReport:
    """Walk the DAGs under ``roots`` and report corrupt and missing blocks.

    Each distinct block (by CID) is loaded and verified once, however many
    roots or parents share it. A missing, corrupt or malformed block's own
    links cannot be read, so what lies only under it is not reached: repair
    it (``copy_dag`` from a good store, or ``put``/``put_block`` of the good
    bytes) and check again. Nothing is changed in the store.

    Every block is hashed against its CID here, whatever the store; for a
    :class:`~py_hamt.cas.local.LocalCAS` that is its own verified read. Meant
    for stores whose ``load`` returns raw blocks (``LocalCAS``,
    ``InMemoryCAS``, raw and dag-cbor blocks through ``KuboCAS``).

    Args:
        roots: root CIDs, their text, or ids ``cas`` can name; one root may
            be given on its own. No roots: an empty, clean report.
        progress: called after each block with blocks checked and bytes read.
        concurrency: blocks checked at once.

    Raises:
        InvalidArgumentError: a root that is not a CID (or has a truncated
            digest), or a bad ``concurrency``; a block whose codec cannot be
            walked.
        TransportError: a network store failed (problems with blocks
            themselves are reported, not raised).
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
    given = [roots] if isinstance(roots, (CID, str, bytes)) else list(roots)
    cids = [root_cid(cas, root) for root in given]
    done = FsckReport(roots=cids)
    checker = _Checker(cas, done, progress)
    seen: set[CID] = set()
    stack: list[CID] = []
    for cid in reversed(cids):
        if cid not in seen:
            seen.add(cid)
            stack.append(cid)
    while stack:
        batch = [stack.pop() for _ in range(min(concurrency, len(stack)))]
        tasks = [asyncio.ensure_future(checker.check(cid)) for cid in batch]
        try:
            found = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for children in reversed(found):
            for child in reversed(children):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
    for bad in (done.corrupt, done.missing, done.malformed):
        bad.sort(key=str)
    return done
