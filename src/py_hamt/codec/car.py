"""CAR v1 (content-addressable archive): a header and a run of blocks.

Layout: ``varint(len(header)) || header``, where the header is DAG-CBOR
``{"roots": [CID, ...], "version": 1}``; then for each block
``varint(len(cid) + len(data)) || cid || data``.

The reader bounds every length by :data:`MAX_SECTION` and by the bytes that
remain, so a hostile file cannot make it allocate without limit. It refuses
CIDs (roots and blocks) whose digest is truncated, since a short digest
proves little about the bytes. It does not verify blocks against their CIDs:
``py_hamt.jobs.car.import_car`` does.

:class:`~py_hamt.errors.CARFormatError` (an ``IntegrityError`` and a
``ValueError``) is defined in :mod:`py_hamt.errors` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Final

import dag_cbor
from multiformats import CID

from py_hamt.codec import dagcbor
from py_hamt.codec.cids import check_cid, cid_from_bytes
from py_hamt.codec.varint import encode_varint
from py_hamt.errors import CARFormatError

__all__ = ["MAX_SECTION", "CARFormatError", "CARReader", "encode_header", "encode_section"]

MAX_SECTION: Final = 64 * 2**20


def encode_header(roots: list[CID]) -> bytes:
    header = dag_cbor.encode({"roots": list(roots), "version": 1})
    return encode_varint(len(header)) + header


def encode_section(cid: CID, data: bytes) -> bytes:
    raw = bytes(cid)
    return encode_varint(len(raw) + len(data)) + raw + data


def _cid_length(buf: bytes) -> int:
    """Bytes the CID at the start of ``buf`` takes."""
    if buf[:2] == b"\x12\x20":
        return 34  # CIDv0: a bare sha2-256 multihash
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        while buf[pos] & 0x80:
            pos += 1
        pos += 1
    length, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return pos + length


class CARReader:
    """Reads a CAR v1 stream: :attr:`roots`, then blocks by iteration."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._offset = 0
        header = self._section("header")
        if header is None:
            raise CARFormatError("empty file: no CAR header")
        try:
            obj = dagcbor.decode(header)
        except ValueError as exc:
            raise CARFormatError(f"the CAR header is not DAG-CBOR: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("version") != 1:
            raise CARFormatError(f"not a CAR v1 header: {obj!r:.200}")
        roots = obj.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise CARFormatError("the CAR header's roots are not a list of CIDs")
        for root in roots:
            try:
                check_cid(root)
            except ValueError as exc:
                raise CARFormatError(f"the CAR header's root {exc}", root) from exc
        self.roots: list[CID] = roots

    def _read_varint(self) -> int | None:
        value, shift = 0, 0
        while True:
            byte = self._stream.read(1)
            if not byte:
                if shift:
                    raise CARFormatError(f"truncated length at byte {self._offset}")
                return None
            self._offset += 1
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise CARFormatError(f"oversized length at byte {self._offset}")

    def _section(self, what: str) -> bytes | None:
        start = self._offset
        length = self._read_varint()
        if length is None:
            return None
        if length > MAX_SECTION:
            raise CARFormatError(
                f"{what} at byte {start} claims {length} bytes (limit {MAX_SECTION})"
            )
        data = self._stream.read(length)
        self._offset += len(data)
        if len(data) != length:
            raise CARFormatError(
                f"{what} at byte {start} is truncated: {len(data)} of {length} bytes"
            )
        return data

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            start = self._offset
            section = self._section("block section")
            if section is None:
                return
            try:
                size = _cid_length(section)
                if size > len(section):
                    raise IndexError("the CID runs past the section")
                cid = cid_from_bytes(section[:size])
            except (IndexError, ValueError) as exc:
                raise CARFormatError(
                    f"block section at byte {start} starts with no valid CID: {exc}"
                ) from exc
            yield cid, section[size:]
