"""The links of a block, by codec: how DAG walks find children."""

from __future__ import annotations

from typing import Any

from multiformats import CID

from py_hamt.codec import dagcbor
from py_hamt.codec.cids import cid_from_bytes
from py_hamt.codec.varint import read_varint
from py_hamt.errors import InvalidArgumentError, MalformedNodeError, one_line

__all__ = ["links"]

_RAW = 0x55
_DAG_CBOR = 0x71
_DAG_PB = 0x70
_MAX_NESTING = 10_000


def _cids_in(value: Any, out: list[CID]) -> None:
    stack = [value]
    while stack:
        if len(stack) > _MAX_NESTING:
            raise ValueError("structure too wide to walk")
        item = stack.pop()
        if isinstance(item, CID):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _pb_fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """Top-level protobuf fields: (field number, value) for varints and bytes."""
    fields: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
            fields.append((number, value))
        elif wire == 2:
            size, pos = read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("protobuf field runs past the end")
            fields.append((number, data[pos : pos + size]))
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def _dag_pb_links(data: bytes) -> list[CID]:
    found = []
    for number, value in _pb_fields(data):
        if number == 2 and isinstance(value, bytes):  # PBNode.Links
            for inner, hash_bytes in _pb_fields(value):
                if inner == 1 and isinstance(hash_bytes, bytes):  # PBLink.Hash
                    found.append(cid_from_bytes(hash_bytes))
    return found


def links(cid: CID, data: bytes) -> list[CID]:
    """The distinct CIDs a block links to, each once, in the order first met
    (raw: none; dag-cbor: every CID; dag-pb: links).

    Each child is listed once however often the block links it, so a walk
    that also skips blocks it has already visited does work proportional to
    the distinct blocks, not to the paths through them (a few blocks that
    each link one child 256 times would otherwise make 256**depth paths).

    Raises:
        MalformedNodeError: the block does not decode as its codec says.
        InvalidArgumentError: a codec py_hamt cannot walk.
    """
    code = cid.codec.code
    if code == _RAW:
        return []
    try:
        if code == _DAG_CBOR:
            found: list[CID] = []
            _cids_in(dagcbor.decode(data), found)
            return list(dict.fromkeys(found))
        if code == _DAG_PB:
            return list(dict.fromkeys(_dag_pb_links(data)))
    except (ValueError, IndexError) as exc:
        raise MalformedNodeError(
            f"block {cid} does not decode as {cid.codec.name}: {one_line(exc)}", cid
        ) from exc
    raise InvalidArgumentError(f"cannot walk block {cid}: codec {cid.codec.name} is not supported")
