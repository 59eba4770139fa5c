"""InMemoryCAS: ids, ranges and errors as the API spec states them."""

from __future__ import annotations

import blake3
import pytest

from py_hamt import BlockNotFoundError, InMemoryCAS, InvalidArgumentError

DATA = bytes(range(10))


async def test_ids_are_blake3_multihash_bytes(cas: InMemoryCAS) -> None:
    block_id = await cas.save(DATA, "raw")
    assert block_id == b"\x1e\x20" + blake3.blake3(DATA).digest()
    assert await cas.save(DATA, "dag-cbor") == block_id  # the codec is not in a multihash
    assert await cas.load(block_id) == DATA


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"offset": 2, "length": 3}, DATA[2:5]),
        ({"offset": 7}, DATA[7:]),
        ({"offset": 20}, b""),
        ({"offset": 8, "length": 10}, DATA[8:]),
        ({"length": 4}, DATA[:4]),
        ({"suffix": 3}, DATA[-3:]),
        ({"suffix": 0}, b""),
        ({"suffix": 99}, DATA),
        ({"offset": 0, "length": 0}, b""),
    ],
)
async def test_byte_ranges(cas: InMemoryCAS, kwargs: dict[str, int], expected: bytes) -> None:
    block_id = await cas.save(DATA, "raw")
    assert await cas.load(block_id, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offset": -1}, "offset must be a non-negative int"),
        ({"length": -2}, "length must be a non-negative int"),
        ({"suffix": -1}, "suffix must be a non-negative int"),
        ({"offset": 1, "suffix": 2}, "cannot be combined"),
    ],
)
async def test_bad_ranges_are_value_errors(
    cas: InMemoryCAS, kwargs: dict[str, int], message: str
) -> None:
    block_id = await cas.save(DATA, "raw")
    with pytest.raises(InvalidArgumentError, match=message):
        await cas.load(block_id, **kwargs)


async def test_unknown_id_is_a_key_error_naming_it(cas: InMemoryCAS) -> None:
    missing = b"\x1e\x20" + bytes(32)
    with pytest.raises(BlockNotFoundError, match="no block with id 1e20") as info:
        await cas.load(missing)
    assert isinstance(info.value, KeyError)
    assert info.value.block_id == missing


@pytest.mark.parametrize("bad", ["1e20abcd", 12, None, bytearray(b"\x1e")])
async def test_non_bytes_id_is_a_type_error(cas: InMemoryCAS, bad: object) -> None:
    with pytest.raises(TypeError, match="InMemoryCAS ids are bytes"):
        await cas.load(bad)


async def test_pinning_defaults_are_no_ops(cas: InMemoryCAS) -> None:
    block_id = await cas.save(DATA, "raw")
    await cas.pin_cid(block_id)
    await cas.unpin_cid(block_id)
    await cas.pin_update(block_id, block_id)
    assert await cas.pin_ls() == []
