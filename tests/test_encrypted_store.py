"""SimpleEncryptedZarrHAMTStore: the spec's layout, checked with an
independent implementation; zarr's StoreTests; real xarray round trips."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import xarray as xr
from Crypto.Cipher import ChaCha20_Poly1305
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.testing.store import StoreTests

from py_hamt import (
    HAMT,
    DecryptionError,
    InMemoryCAS,
    IntegrityError,
    InvalidArgumentError,
    SimpleEncryptedZarrHAMTStore,
)
from py_hamt.datasets import climate_dataset

KEY = bytes(range(32))
HEADER = b"py-hamt-test"


def seal(
    plain: bytes, key: bytes = KEY, header: bytes = HEADER, nonce: bytes | None = None
) -> bytes:
    """nonce(24) || tag(16) || ciphertext, written as py-hamt 3.x writes it."""
    nonce = nonce or bytes(range(100, 124))
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    cipher.update(header)
    ciphertext, tag = cipher.encrypt_and_digest(plain)
    return nonce + tag + ciphertext


def unseal(stored: bytes, key: bytes = KEY, header: bytes = HEADER) -> bytes:
    cipher = ChaCha20_Poly1305.new(key=key, nonce=stored[:24])
    cipher.update(header)
    return cipher.decrypt_and_verify(stored[40:], stored[24:40])


async def new_store(key: bytes = KEY, header: bytes = HEADER) -> SimpleEncryptedZarrHAMTStore:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    return SimpleEncryptedZarrHAMTStore(hamt, False, key, header)


class TestEncryptedStore(StoreTests[SimpleEncryptedZarrHAMTStore, cpu.Buffer]):
    store_cls = SimpleEncryptedZarrHAMTStore
    buffer_cls = cpu.Buffer

    async def set(self, store: SimpleEncryptedZarrHAMTStore, key: str, value: Any) -> None:
        await store.hamt.set(key, seal(value.to_bytes()))

    async def get(self, store: SimpleEncryptedZarrHAMTStore, key: str) -> Any:
        return self.buffer_cls.from_bytes(unseal(await store.hamt.get(key)))

    @pytest.fixture
    async def store_kwargs(self) -> dict[str, Any]:
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        return {"hamt": hamt, "read_only": False, "encryption_key": KEY, "header": HEADER}

    def test_store_repr(self, store: SimpleEncryptedZarrHAMTStore) -> None:
        assert "key=<hidden>" in repr(store)
        assert KEY.hex() not in repr(store)

    def test_store_supports_writes(self, store: SimpleEncryptedZarrHAMTStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: SimpleEncryptedZarrHAMTStore) -> None:
        assert store.supports_listing


async def test_what_we_write_is_the_spec_layout() -> None:
    store = await new_store()
    await store.set("a/zarr.json", cpu.Buffer.from_bytes(b'{"node_type": "group"}'))
    stored = await store.hamt.get("a/zarr.json")
    assert len(stored) == 24 + 16 + len(b'{"node_type": "group"}')
    assert unseal(stored) == b'{"node_type": "group"}'
    await store.set("a/zarr.json", cpu.Buffer.from_bytes(b'{"node_type": "group"}'))
    assert (await store.hamt.get("a/zarr.json"))[:24] != stored[:24]  # a fresh nonce per write


async def test_what_3x_wrote_decrypts() -> None:
    store = await new_store()
    await store.hamt.set("c/0", seal(b"legacy chunk bytes"))
    got = await store.get("c/0", default_buffer_prototype())
    assert got is not None
    assert got.to_bytes() == b"legacy chunk bytes"


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        (RangeByteRequest(2, 6), b"2345"),
        (OffsetByteRequest(7), b"789"),
        (SuffixByteRequest(3), b"789"),
        (SuffixByteRequest(0), b""),
    ],
)
async def test_ranges_decrypt_then_slice(byte_range: Any, expected: bytes) -> None:
    store = await new_store()
    await store.set("c/0", cpu.Buffer.from_bytes(b"0123456789"))
    got = await store.get("c/0", default_buffer_prototype(), byte_range)
    assert got is not None
    assert got.to_bytes() == expected


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(33), "k" * 32, None])
async def test_key_must_be_32_bytes(bad: Any) -> None:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    with pytest.raises(ValueError, match="encryption_key must be 32 bytes"):
        SimpleEncryptedZarrHAMTStore(hamt, False, bad, HEADER)


async def test_header_must_be_bytes() -> None:
    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    with pytest.raises(InvalidArgumentError, match="header must be bytes, got str"):
        SimpleEncryptedZarrHAMTStore(hamt, False, KEY, "text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "header", "tamper"),
    [
        (bytes(32), HEADER, False),
        (KEY, b"other header", False),
        (KEY, HEADER, True),
    ],
    ids=["wrong key", "wrong header", "tampered bytes"],
)
async def test_bad_key_header_or_bytes_raise_never_garbage(
    key: bytes, header: bytes, tamper: bool
) -> None:
    store = await new_store()
    await store.set("c/0", cpu.Buffer.from_bytes(b"secret chunk"))
    if tamper:
        stored = bytearray(await store.hamt.get("c/0"))
        stored[-1] ^= 1
        await store.hamt.set("c/0", bytes(stored))
    reader = SimpleEncryptedZarrHAMTStore(store.hamt, True, key, header)
    with pytest.raises(DecryptionError, match="cannot decrypt 'c/0'") as info:
        await reader.get("c/0", default_buffer_prototype())
    assert isinstance(info.value, IntegrityError)
    with pytest.raises(DecryptionError):
        await reader.get("c/0", default_buffer_prototype(), RangeByteRequest(0, 2))


async def test_too_short_value_is_a_decryption_error() -> None:
    store = await new_store()
    await store.hamt.set("c/0", b"short")
    with pytest.raises(DecryptionError, match="too short to be encrypted"):
        await store.get("c/0", default_buffer_prototype())


async def test_xarray_round_trip_and_every_value_encrypted() -> None:
    cas = InMemoryCAS()
    ds = climate_dataset(n_time=24, n_lat=12, n_lon=24)
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(
        store=SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER), mode="w", zarr_format=3
    )
    await hamt.make_read_only()

    keys = [k async for k in hamt.keys()]
    assert "zarr.json" in keys
    for k in keys:
        stored = await hamt.get(k)
        with pytest.raises((ValueError, UnicodeDecodeError)):
            json.loads(stored)  # nothing is stored in the clear, metadata included
        unseal(stored)  # and everything decrypts independently

    ro = await HAMT.build(
        cas=cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True
    )
    back = xr.open_zarr(SimpleEncryptedZarrHAMTStore(ro, True, KEY, HEADER), chunks=None).load()
    xr.testing.assert_identical(back, ds)

    with pytest.raises(DecryptionError):
        xr.open_zarr(SimpleEncryptedZarrHAMTStore(ro, True, bytes(32), HEADER), chunks=None)
    lazy = xr.open_zarr(SimpleEncryptedZarrHAMTStore(ro, True, KEY, HEADER))
    np.testing.assert_array_equal(lazy["pressure"].values, ds["pressure"].values)


async def test_with_read_only_keeps_key_and_header() -> None:
    store = await new_store()
    await store.set("k", cpu.Buffer.from_bytes(b"v"))
    view = store.with_read_only(True)
    assert view.read_only
    got = await view.get("k", default_buffer_prototype())
    assert got is not None
    assert got.to_bytes() == b"v"
    assert view != SimpleEncryptedZarrHAMTStore(store.hamt, True, bytes(32), HEADER)
