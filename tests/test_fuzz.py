"""Hostile input: random and mutated blocks give specific errors only —
no hang, no crash, no unbounded recursion or memory."""

from __future__ import annotations

import contextlib
import io
import random

import dag_cbor
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype

from py_hamt import MalformedNodeError, ZarrHAMTStore
from py_hamt.codec import dagcbor
from py_hamt.codec.car import CARFormatError, CARReader
from py_hamt.codec.node import NODE_WIDTH, Link, decode_node, encode_node
from py_hamt.codec.shard import decode_shard
from py_hamt.stores.sharded.layout import Manifest
from tests.conftest import build_from

B3 = multihash.get("blake3")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_node() -> bytes:
    rnd = random.Random(5)
    entries: list[object] = [None] * NODE_WIDTH
    for i in rnd.sample(range(NODE_WIDTH), 40):
        if rnd.random() < 0.3:
            entries[i] = Link(CID("base32", 1, "dag-cbor", B3.digest(bytes([i]), size=32)))
        else:
            entries[i] = {f"k{i}/{j}": B3.digest(bytes([i, j]), size=32) for j in range(3)}
    return encode_node(entries)  # type: ignore[arg-type]


def valid_root() -> bytes:
    cid = CID("base32", 1, "dag-cbor", B3.digest(b"x", size=32))
    return dag_cbor.encode(
        {
            "manifest_version": "sharded_zarr_v2",
            "metadata": {"zarr.json": cid},
            "chunks": {
                "array_shape": [4, 4],
                "chunk_shape": [2, 2],
                "sharding_config": {"chunks_per_shard": 2},
            },
            "arrays": {
                "a": {
                    "shape": [4, 4],
                    "chunk_shape": [2, 2],
                    "separator": "/",
                    "chunks_per_shard": 2,
                    "shard_cids": [cid, None],
                }
            },
        }
    )


NODE = valid_node()
ROOT = valid_root()


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(NODE)))
def test_node_decoder(data: bytes) -> None:
    try:
        entries = decode_node(data, b"id")
    except MalformedNodeError as exc:
        message = str(exc)
    else:
        assert len(entries) == NODE_WIDTH
        assert decode_node(encode_node(entries)) == entries  # whatever decodes, re-encodes
        return
    assert "block 6964 is not a valid HAMT node" in message


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(ROOT)))
def test_sharded_root_decoder(data: bytes) -> None:
    try:
        manifest = Manifest.decode(data, "root-id")
    except MalformedNodeError as exc:
        message = str(exc)
    else:
        assert manifest.version in ("sharded_zarr_v1", "sharded_zarr_v2")
        return
    assert "block root-id is not a sharded Zarr root" in message


@FUZZ
@given(st.binary(max_size=200))
def test_shard_and_car_decoders(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_shard(data)
    with contextlib.suppress(CARFormatError):
        list(CARReader(io.BytesIO(data)))


@pytest.mark.parametrize(
    "data",
    [
        b"\x81" * 100_000 + b"\xf6",  # arrays nested 100,000 deep
        b"\xa1\x61a" * 50_000 + b"\xf6",  # maps nested 50,000 deep
        b"\x9b" + (2**63).to_bytes(8, "big"),  # an array claiming 2**63 items
        b"\x5b" + (2**62).to_bytes(8, "big") + b"xx",  # bytes claiming 2**62
        b"\xd8\x2a" * 10_000 + b"\x40",  # tags nested deep
    ],
    ids=["deep arrays", "deep maps", "huge array", "huge bytes", "deep tags"],
)
def test_malicious_dags_are_refused_quickly(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"deeper than|cannot fit|runs past|tag 42|not allowed"):
        dagcbor.decode(data)
    with pytest.raises(MalformedNodeError):
        decode_node(data, b"x")
    with pytest.raises(MalformedNodeError):
        Manifest.decode(data, "x")


async def test_stores_handle_odd_keys_and_ranges_past_the_end() -> None:
    hamt = await build_from([("a/c/0", b"0123456789")])
    await hamt.enable_write()
    store = ZarrHAMTStore(hamt)
    proto = default_buffer_prototype()
    for key in ["", "/", "//", "a//b", "../../etc/passwd", "ü/zarr.json", "a/c/0/", "x" * 5000]:
        await store.set(key, cpu.Buffer.from_bytes(key.encode()))
        got = await store.get(key, proto)
        assert got is not None
        assert got.to_bytes() == key.encode()
    cases: list[tuple[ByteRequest, bytes]] = [
        (RangeByteRequest(8, 100), b"89"),
        (RangeByteRequest(50, 60), b""),
        (OffsetByteRequest(10), b""),
        (OffsetByteRequest(1000), b""),
        (SuffixByteRequest(1000), b"0123456789"),
    ]
    for byte_range, expected in cases:
        got = await store.get("a/c/0", proto, byte_range)
        assert got is not None
        assert got.to_bytes() == expected
