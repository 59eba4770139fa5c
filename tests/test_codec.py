"""The node codec is byte-for-byte what a general DAG-CBOR codec gives."""

from __future__ import annotations

from typing import cast

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash

from py_hamt import MalformedNodeError
from py_hamt.codec.cids import cid_bytes, cid_from_bytes, make_cid
from py_hamt.codec.multihash import (
    BLAKE3,
    SHA2_256,
    blake3_multihash,
    multihash_matches,
    split_multihash,
)
from py_hamt.codec.node import NODE_WIDTH, Entry, Link, decode_node, encode_node

_B3 = multihash.get("blake3")
_SHA = multihash.get("sha2-256")

ids_bytes = st.binary(min_size=1, max_size=40)
ids_cid = st.builds(
    lambda data, codec, sha: CID("base32", 1, codec, (_SHA if sha else _B3).digest(data, size=32)),
    st.binary(max_size=16),
    st.sampled_from(["raw", "dag-cbor"]),
    st.booleans(),
)
ids = st.one_of(ids_bytes, ids_cid)
buckets = st.dictionaries(st.text(min_size=0, max_size=12), ids, min_size=1, max_size=6)
entries = st.lists(
    st.one_of(st.none(), buckets, ids.map(Link)), min_size=NODE_WIDTH, max_size=NODE_WIDTH
)


def as_ipld(entry: Entry) -> dag_cbor.IPLDKind:
    """An entry as a general DAG-CBOR codec takes it (the node codec types ids
    as ``object``; here they are bytes, CIDs or other IPLD values)."""
    if entry is None:
        return {}
    if isinstance(entry, Link):
        return [cast("dag_cbor.IPLDKind", entry.id)]
    return cast("dag_cbor.IPLDKind", entry)


@settings(max_examples=60, deadline=None)
@given(entries)
def test_encoding_matches_dag_cbor_and_round_trips(node: list[Entry]) -> None:
    encoded = encode_node(node)
    assert encoded == dag_cbor.encode([as_ipld(e) for e in node])
    assert decode_node(encoded) == node


def test_empty_node_is_256_empty_maps() -> None:
    encoded = encode_node([None] * NODE_WIDTH)
    assert encoded == b"\x99\x01\x00" + b"\xa0" * 256
    assert decode_node(encoded) == [None] * NODE_WIDTH


def test_bucket_keys_use_canonical_order() -> None:
    node: list[Entry] = [None] * NODE_WIDTH
    node[3] = {"bb": b"\x01", "a": b"\x02", "ab": b"\x03", "c": b"\x04"}
    decoded = decode_node(encode_node(node))
    assert list(decoded[3]) == ["a", "c", "ab", "bb"]  # type: ignore[arg-type]


def test_ids_of_other_ipld_kinds_go_through_dag_cbor() -> None:
    node: list[Entry] = [None] * NODE_WIDTH
    node[0] = {"k": 12345}
    node[1] = Link("a-string-id")
    encoded = encode_node(node)
    assert encoded == dag_cbor.encode([as_ipld(e) for e in node])
    assert decode_node(encoded) == node


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\x80", "an empty array"),
        (dag_cbor.encode([{}] * 255), "255 entries"),
        (dag_cbor.encode([{}] * 257), "257 entries"),
        (dag_cbor.encode([{}] * 256) + b"\x00", "trailing byte"),
        (dag_cbor.encode([[b"a", b"b"], *[{}] * 255]), "two-element link"),
        (dag_cbor.encode([7] + [{}] * 255), "an integer entry"),
        (dag_cbor.encode([{"k": None}, *[{}] * 255]), "a null id"),
        (b"\x99\x01\x00\xa1\x61", "truncated bucket"),
        (b"\x99\x01\x00\xa1\x41k\x41v" + b"\xa0" * 255, "byte-string key"),
        (b"\x99\x01\x00\xa2\x61b\x41v\x61a\x41v" + b"\xa0" * 255, "unsorted keys"),
        (b"\x99\x01\x00\xa2\x61a\x41v\x61a\x41v" + b"\xa0" * 255, "repeated key"),
        (b"\x99\x01\x00\xa1\x61\xff\x41v" + b"\xa0" * 255, "key not UTF-8"),
        (b"\x99\x01\x00\x81\xd8\x2a\x42\x01\x71" + b"\xa0" * 255, "CID missing 0x00 prefix"),
    ],
)
def test_malformed_nodes_raise_naming_the_block(data: bytes, why: str) -> None:
    with pytest.raises(MalformedNodeError, match="block cafe is not a valid HAMT node") as info:
        decode_node(data, b"\xca\xfe")
    assert info.value.block_id == b"\xca\xfe", why
    assert isinstance(info.value, ValueError)


@settings(max_examples=50, deadline=None)
@given(ids_cid)
def test_fast_cid_parse_equals_multiformats(cid: CID) -> None:
    parsed = cid_from_bytes(bytes(cid))
    assert parsed == CID.decode(bytes(cid))
    assert str(parsed) == str(cid.set(base="base32"))


def test_cid_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match=r"invalid binary CID 01711e2073686f7274: .*size"):
        cid_from_bytes(b"\x01\x71\x1e\x20short")


def test_make_cid_builds_base32_v1() -> None:
    mh = blake3_multihash(b"hello")
    cid = make_cid(0x71, mh)
    assert str(cid).startswith("bafyr4i")
    assert bytes(cid.digest) == mh


def test_multihash_helpers_check_both_hashes() -> None:
    data = b"some block"
    b3 = bytes(_B3.digest(data, size=32))
    sha = bytes(_SHA.digest(data))
    assert b3 == blake3_multihash(data)
    assert split_multihash(b3)[0] == BLAKE3
    assert split_multihash(sha)[0] == SHA2_256
    assert multihash_matches(b3, data)
    assert multihash_matches(sha, data)
    assert not multihash_matches(b3, data + b"!")
    assert not multihash_matches(sha, b"other")
    with pytest.raises(ValueError, match="declares 32 digest bytes but carries 3"):
        split_multihash(b"\x1e\x20abc")
    with pytest.raises(ValueError, match="unsupported multihash code 0x13"):
        multihash_matches(b"\x13\x02ab", data)


_entry = st.one_of(
    st.none(),
    st.binary(min_size=32, max_size=32).map(lambda d: b"\x01\x55\x1e\x20" + d),  # 36-byte CIDv1
    st.binary(min_size=32, max_size=32).map(lambda d: b"\x01\x71\x12\x20" + d),
    st.binary(min_size=20, max_size=20).map(lambda d: b"\x01\x55\x11\x14" + d),  # another length
)


@given(st.lists(_entry, min_size=1, max_size=40), st.data())
@settings(max_examples=300, deadline=None)
def test_one_shard_entry_decodes_as_the_whole_shard_does(
    entries: list[bytes | None], data: st.DataObject
) -> None:
    from py_hamt.codec.shard import decode_shard, decode_shard_entry, encode_shard

    block = encode_shard(entries)
    slot = data.draw(st.integers(0, len(entries) - 1))
    assert decode_shard_entry(block, len(entries), slot) == decode_shard(block)[slot]
    assert decode_shard_entry(block, len(entries), slot) == entries[slot]
    with pytest.raises(ValueError, match="expected"):
        decode_shard_entry(block, len(entries) + 1, slot)


@given(
    st.sampled_from(["raw", "dag-cbor", "dag-pb", "dag-jose", "libp2p-key"]),
    st.binary(min_size=32, max_size=32),
)
def test_cid_bytes_is_the_binary_form_of_any_cid(codec: str, digest: bytes) -> None:
    mh = multihash.wrap(digest, "sha2-256")
    v1 = CID("base32", 1, codec, mh)
    assert cid_bytes(v1) == bytes(v1)
    assert CID.decode(cid_bytes(v1)) == v1
    v0 = CID("base58btc", 0, "dag-pb", mh)
    assert cid_bytes(v0) == bytes(v0)
