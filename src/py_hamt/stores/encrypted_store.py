"""ZarrHAMTStore with every value encrypted (XChaCha20-Poly1305)."""

from __future__ import annotations

from typing import Final

from Crypto.Cipher import ChaCha20_Poly1305
from Crypto.Random import get_random_bytes

from py_hamt.codec.multihash import blake3_digest
from py_hamt.errors import DecryptionError, InvalidArgumentError, InvalidTypeError
from py_hamt.stores.hamt_store import OnWrite, ZarrHAMTStore
from py_hamt.trie.hamt import HAMT

__all__ = ["SimpleEncryptedZarrHAMTStore"]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 24
TAG_BYTES: Final = 16
_BOUND_AAD_TAG: Final = b"py_hamt key-bound encryption v1\x00"


class SimpleEncryptedZarrHAMTStore(ZarrHAMTStore):
    """A :class:`ZarrHAMTStore` that encrypts every value, metadata included.

    Each value is sealed with XChaCha20-Poly1305 under ``encryption_key``
    (32 bytes) with a fresh random 24-byte nonce and ``header`` as associated
    data, and stored as ``nonce || tag || ciphertext`` (py-hamt 3.x's layout,
    so data written by either decrypts in the other).

    Byte-range reads decrypt the whole value, then slice it: a range of the
    ciphertext cannot be authenticated.

    Key binding (opt-in). By default the associated data is ``header`` alone,
    as in py-hamt 3.x, so a value authenticates under *any* zarr key: two
    chunks of one dataset can be swapped, or a chunk replayed from another
    dataset sealed with the same key and header, and reads return the wrong
    numbers without an error. With ``bind_keys=True`` the associated data
    also binds each value to its zarr key, and with ``dataset_id`` to that
    dataset as well (a length-prefixed encoding of header, dataset id and
    key, so no two of them can be confused). A swapped or replayed value
    then fails with :class:`DecryptionError` naming the key. The stored
    bytes keep the same layout, but values written this way are readable by
    py_hamt only (with the same ``bind_keys`` and ``dataset_id``); py-hamt
    3.x cannot decrypt them, and this mode cannot decrypt 3.x data.

    Args:
        bind_keys: bind each value to its zarr key (default off: 3.x format).
        dataset_id: with ``bind_keys``, also bind every value to this id, so
            values from another dataset under the same key are refused.

    Raises:
        InvalidArgumentError: the key is not 32 bytes, or ``dataset_id``
            without ``bind_keys``.
        InvalidTypeError: (also an ``InvalidArgumentError``) ``header`` or
            ``dataset_id`` is not bytes, or ``bind_keys`` is not a bool.
        DecryptionError: on read, when a value does not authenticate (wrong
            key, wrong header or dataset id, changed bytes, or with
            ``bind_keys`` a value stored under another key). Garbage is
            never returned.
    """

    ranges_on_stored_bytes = False

    def __init__(
        self,
        hamt: HAMT,
        read_only: bool,
        encryption_key: bytes,
        header: bytes,
        *,
        bind_keys: bool = False,
        dataset_id: bytes | None = None,
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
            raise InvalidTypeError(f"header must be bytes, got {type(header).__name__}")
        if not isinstance(bind_keys, bool):
            raise InvalidTypeError(f"bind_keys must be a bool, got {type(bind_keys).__name__}")
        if dataset_id is not None:
            if not isinstance(dataset_id, (bytes, bytearray)):
                raise InvalidTypeError(
                    f"dataset_id must be bytes or None, got {type(dataset_id).__name__}"
                )
            if not bind_keys:
                raise InvalidArgumentError("dataset_id needs bind_keys=True")
        super().__init__(hamt, read_only=read_only, on_write=on_write)
        self._key = bytes(encryption_key)
        self._header = bytes(header)
        self._bind_keys = bind_keys
        self._dataset_id = None if dataset_id is None else bytes(dataset_id)
        # Everything in the bound associated data but the zarr key itself.
        self._aad_prefix = b""
        if bind_keys:
            bound = _BOUND_AAD_TAG + _with_length(self._header)
            if self._dataset_id is None:
                bound += b"\x00"
            else:
                bound += b"\x01" + _with_length(self._dataset_id)
            self._aad_prefix = bound

    @property
    def bind_keys(self) -> bool:
        """Whether each value is bound to its zarr key (not 3.x-readable)."""
        return self._bind_keys

    @property
    def dataset_id(self) -> bytes | None:
        """The dataset id values are bound to, if any."""
        return self._dataset_id

    def with_read_only(self, read_only: bool = False) -> SimpleEncryptedZarrHAMTStore:
        return type(self)(
            self._hamt,
            read_only,
            self._key,
            self._header,
            bind_keys=self._bind_keys,
            dataset_id=self._dataset_id,
            on_write=self.on_write,
        )

    def __eq__(self, other: object) -> bool:
        return (
            super().__eq__(other)
            and isinstance(other, SimpleEncryptedZarrHAMTStore)
            and other._key == self._key
            and other._header == self._header
            and other._bind_keys == self._bind_keys
            and other._dataset_id == self._dataset_id
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._hamt!r}, read_only={self.read_only}, key=<hidden>)"

    def __dask_tokenize__(self) -> tuple[str, ...]:
        # Never the key itself: a one-way digest tells stores apart.
        mode = self._aad_prefix if self._bind_keys else self._header
        return (*super().__dask_tokenize__(), blake3_digest(self._key + mode).hex())

    def _associated_data(self, key: str) -> bytes:
        if self._bind_keys:
            return self._aad_prefix + key.encode("utf-8")
        return self._header

    def _encode(self, key: str, data: bytes) -> bytes:
        nonce = get_random_bytes(NONCE_BYTES)
        cipher = ChaCha20_Poly1305.new(key=self._key, nonce=nonce)
        cipher.update(self._associated_data(key))
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
        cipher.update(self._associated_data(key))
        try:
            return cipher.decrypt_and_verify(stored[NONCE_BYTES + TAG_BYTES :], tag)
        except ValueError as exc:
            why = (
                "wrong key, header or dataset id, the stored bytes were changed, or they "
                "were sealed for another key or dataset"
                if self._bind_keys
                else "wrong key or header, or the stored bytes were changed"
            )
            raise DecryptionError(f"cannot decrypt {key!r}: {why}") from exc


def _with_length(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data
