"""ZarrHAMTStore with every value encrypted (XChaCha20-Poly1305)."""

from __future__ import annotations

from typing import Final

from Crypto.Cipher import ChaCha20_Poly1305
from Crypto.Random import get_random_bytes

from py_hamt.codec.multihash import blake3_digest
from py_hamt.errors import DecryptionError, InvalidArgumentError
from py_hamt.stores.hamt_store import OnWrite, ZarrHAMTStore
from py_hamt.trie.hamt import HAMT

__all__ = ["SimpleEncryptedZarrHAMTStore"]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 24
TAG_BYTES: Final = 16


class SimpleEncryptedZarrHAMTStore(ZarrHAMTStore):
    """A :class:`ZarrHAMTStore` that encrypts every value, metadata included.

    Each value is sealed with XChaCha20-Poly1305 under ``encryption_key``
    (32 bytes) with a fresh random 24-byte nonce and ``header`` as associated
    data, and stored as ``nonce || tag || ciphertext`` (py-hamt 3.x's layout,
    so data written by either decrypts in the other).

    Byte-range reads decrypt the whole value, then slice it: a range of the
    ciphertext cannot be authenticated.

    Raises:
        InvalidArgumentError: the key is not 32 bytes, or ``header`` is not bytes.
        DecryptionError: on read, when a value does not authenticate (wrong
            key, wrong header, or changed bytes). Garbage is never returned.
    """

    ranges_on_stored_bytes = False

    def __init__(
        self,
        hamt: HAMT,
        read_only: bool,
        encryption_key: bytes,
        header: bytes,
        *,
        on_write: OnWrite | None = None,
    ) -> None:
        if not isinstance(encryption_key, (bytes, bytearray)) or len(encryption_key) != KEY_BYTES:
            shown = (
                len(encryption_key)
                if isinstance(encryption_key, (bytes, bytearray))
                else type(encryption_key).__name__
            )
            raise InvalidArgumentError(f"encryption_key must be {KEY_BYTES} bytes, got {shown}")
        if not isinstance(header, (bytes, bytearray)):
            raise InvalidArgumentError(f"header must be bytes, got {type(header).__name__}")
        super().__init__(hamt, read_only=read_only, on_write=on_write)
        self._key = bytes(encryption_key)
        self._header = bytes(header)

    def with_read_only(self, read_only: bool = False) -> SimpleEncryptedZarrHAMTStore:
        return type(self)(self._hamt, read_only, self._key, self._header, on_write=self.on_write)

    def __eq__(self, other: object) -> bool:
        return (
            super().__eq__(other)
            and isinstance(other, SimpleEncryptedZarrHAMTStore)
            and other._key == self._key
            and other._header == self._header
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._hamt!r}, read_only={self.read_only}, key=<hidden>)"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # Never the key itself: a one-way digest tells stores apart.
        return (*super().__dask_tokenize__(), blake3_digest(self._key + self._header).hex())

    def _encode(self, key: str, data: bytes) -> bytes:
        nonce = get_random_bytes(NONCE_BYTES)
        cipher = ChaCha20_Poly1305.new(key=self._key, nonce=nonce)
        cipher.update(self._header)
        ciphertext, tag = cipher.encrypt_and_digest(data)
        return nonce + tag + ciphertext

    def _decode(self, key: str, stored: bytes) -> bytes:
        if len(stored) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(
                f"value of {key!r} is {len(stored)} bytes, too short to be encrypted"
            )
        nonce = stored[:NONCE_BYTES]
        tag = stored[NONCE_BYTES : NONCE_BYTES + TAG_BYTES]
        cipher = ChaCha20_Poly1305.new(key=self._key, nonce=nonce)
        cipher.update(self._header)
        try:
            return cipher.decrypt_and_verify(stored[NONCE_BYTES + TAG_BYTES :], tag)
        except ValueError as exc:
            raise DecryptionError(
                f"cannot decrypt {key!r}: wrong key or header, or the stored bytes were changed"
            ) from exc
