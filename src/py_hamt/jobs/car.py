"""CAR export from any store, and verified CAR import into any store."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore, verify_block
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.write_result import WriteResult
from py_hamt.codec.car import CARReader, encode_header, encode_section
from py_hamt.errors import CARFormatError, IntegrityError, InvalidTypeError
from py_hamt.jobs.copy import root_cid
from py_hamt.jobs.dag import links
from py_hamt.jobs.progress import Progress, ProgressCallback, report

__all__ = ["ExportReport", "ImportReport", "export_car", "import_car"]


@dataclass
class ExportReport:
    root_cid: CID
    blocks: int = 0
    bytes: int = 0


@dataclass
class ImportReport:
    roots: list[CID]
    blocks: int = 0
    bytes: int = 0
    results: list[WriteResult] = field(default_factory=list, repr=False)


async def export_car(
    cas: ContentAddressedStore,
    root: object,
    destination: str | Path | BinaryIO,
    *,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Write the DAG under ``root`` to a CAR v1 file, root first.

    Every block is verified against its CID as it is read. The store's ids
    must be CIDs, or ids it can name with CIDs that its blocks also use (an
    ``InMemoryCAS`` HAMT embeds raw multihash ids, which no other tool can
    follow: export from ``LocalCAS`` or ``KuboCAS``).

    Raises:
        InvalidArgumentError: ``root`` is not a CID (or has a truncated digest).
        InvalidTypeError: ``destination`` is not a path or a binary stream.
        IntegrityError: a block does not match its CID.
        BlockNotFoundError: a block of the DAG is missing.
    """
    cid = root_cid(cas, root)
    if not isinstance(destination, (str, Path)) and not hasattr(destination, "write"):
        raise InvalidTypeError(
            f"destination must be a path or a binary stream, got {type(destination).__name__}"
        )
    out: BinaryIO
    close = False
    if isinstance(destination, (str, Path)):
        # Sections are written as they are read; a thread hop per section would
        # cost more than the small blocking writes it saves.
        out = open(destination, "wb")  # noqa: SIM115, ASYNC230 - closed below
        close = True
    else:
        out = destination
    done = ExportReport(cid)
    try:
        out.write(encode_header([cid]))
        seen: set[bytes] = set()
        stack = [cid]
        while stack:
            current = stack.pop()
            if bytes(current) in seen:
                continue
            seen.add(bytes(current))
            data = await cas.load(cas.cid_to_id(current))
            verify_block(current, data)
            out.write(encode_section(current, data))
            done.blocks += 1
            done.bytes += len(data)
            stack.extend(reversed(links(current, data)))
            report(progress, Progress(done.blocks, None, "blocks", done.bytes))
    finally:
        if close:
            out.close()
    return done


async def import_car(
    cas: ContentAddressedStore,
    source: str | Path | BinaryIO | bytes,
    *,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Load a CAR v1 file into ``cas``, verifying every block first.

    Into a :class:`KuboCAS` the verified CAR goes in one ``dag/import``
    request; into other stores block by block. Nothing is written if any
    block fails verification (the whole file is checked first).

    Raises:
        CARFormatError (an ``IntegrityError`` and a ``ValueError``): not a
            CAR v1 file, or a root or block CID with a truncated digest (the
            CID is named).
        IntegrityError: a block does not hash to its CID.
        InvalidTypeError: ``source`` is not a path, bytes or a binary stream.
    """
    name = f"{source}: " if isinstance(source, (str, Path)) else ""
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream: BinaryIO = io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        stream = io.BytesIO(await asyncio.to_thread(Path(source).read_bytes))
    elif hasattr(source, "read"):
        stream = source
    else:
        raise InvalidTypeError(
            f"source must be a path, bytes or a binary stream, got {type(source).__name__}"
        )
    try:
        reader = CARReader(stream)
        blocks = [(cid, data, verify_block(cid, data)) for cid, data in reader]
    except CARFormatError as exc:
        raise CARFormatError(f"{name}{exc}", exc.block_id) from exc
    except IntegrityError as exc:
        if not name:
            raise
        raise IntegrityError(f"{name}{exc}", exc.block_id) from exc
    done = ImportReport(list(reader.roots))
    if isinstance(cas, KuboCAS):
        body = io.BytesIO()
        body.write(encode_header(reader.roots))
        for cid, data, _ in blocks:
            body.write(encode_section(cid, data))
        await cas.import_car(body.getvalue())
        for cid, data, digest in blocks:
            done.results.append(WriteResult(id=cid, size=len(data), digest=digest))
            done.blocks += 1
            done.bytes += len(data)
        report(progress, Progress(done.blocks, len(blocks), "blocks", done.bytes))
        return done
    for cid, data, _ in blocks:
        done.results.append(await cas.put_block(cid, data))
        done.blocks += 1
        done.bytes += len(data)
        report(progress, Progress(done.blocks, len(blocks), "blocks", done.bytes))
    return done
