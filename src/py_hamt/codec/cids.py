"""Fast conversions between binary CIDs and :class:`multiformats.CID`.

``CID.decode`` validates through a generic type checker and costs about
170 µs per call; a HAMT node can hold a thousand CIDs. :func:`cid_from_bytes`
parses the common CIDv1 shape directly and builds an equal ``CID`` object
in well under a microsecond, falling back to ``CID.decode`` for anything unusual.

Every function here that accepts a CID from outside refuses one whose digest
is truncated (shorter than its hash function's full output; see
:func:`py_hamt.codec.multihash.check_digest_size`): a short digest would let
anyone forge a block that "verifies".

Every error here is an :class:`~py_hamt.errors.InvalidArgumentError` (a
``ValueError``) naming the CID or text at fault; callers that read CIDs out
of blocks or CAR files translate it into their own error.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Final

from multiformats import CID, multibase, multicodec, multihash

from py_hamt.codec.multihash import check_digest_size, split_multihash
from py_hamt.codec.varint import encode_varint
from py_hamt.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "DAG_CBOR",
    "RAW",
    "PickledCID",
    "check_cid",
    "cid_bytes",
    "cid_from_bytes",
    "cid_from_text",
    "coerce_cid",
    "freeze_id",
    "make_cid",
    "thaw_id",
]

RAW: Final = 0x55
DAG_CBOR: Final = 0x71

_BASE32: Final = multibase.get("base32")


@lru_cache(maxsize=64)
def _codec(code: int) -> multicodec.Multicodec:
    return multicodec.get(code=code)


@lru_cache(maxsize=64)
def _hashfun(code: int) -> multihash.Multihash:
    return multihash.get(code=code)


def _cid_new(codec_code: int, mh: bytes) -> CID:
    # What multiformats' constructor builds after validating (the caller has
    # checked what it would check), set directly: its own ``_new_instance``
    # also interns every CID in a weak table, which costs ~8 µs a CID once
    # the table is large, against 0.25 µs here. CIDs compare and hash by
    # value, so skipping the interning changes nothing but memory sharing.
    cid = object.__new__(CID)
    cid._base = _BASE32
    cid._version = 1
    cid._codec = _codec(codec_code)
    cid._hashfun = _hashfun(mh[0])
    cid._digest = mh
    return cid


def _text(cid: CID) -> str:
    """A CID as text for messages: CIDv1 in base32 whatever base it came in."""
    return cid.encode("base32") if cid.version == 1 else str(cid)


def check_cid(cid: CID) -> CID:
    """Return ``cid`` if its multihash is well formed and its digest is not
    truncated (see the module docstring).

    Raises ``InvalidArgumentError`` naming the CID otherwise.
    """
    try:
        code, digest = split_multihash(bytes(cid.digest))
        check_digest_size(code, len(digest))
    except ValueError as exc:
        raise InvalidArgumentError(f"CID {_text(cid)} is refused: {exc}") from exc
    return cid


def cid_from_bytes(raw: bytes) -> CID:
    """Parse a binary CID. Raises ``InvalidArgumentError`` if invalid,
    including a truncated digest (the message names the CID)."""
    # Fast path: CIDv1 whose codec and multihash code and length are one-byte
    # varints, which covers raw/dag-cbor/dag-pb with blake3 or sha2-256.
    if len(raw) > 4 and raw[0] == 1 and raw[1] < 0x80 and raw[2] < 0x80 and raw[3] < 0x80:
        mh = raw[2:]
        if mh[1] == len(mh) - 2:
            try:
                cid = _cid_new(raw[1], mh)
            except KeyError:
                pass  # an unknown code: let CID.decode produce its error
            else:
                try:
                    check_digest_size(mh[0], mh[1])
                except ValueError as exc:
                    raise InvalidArgumentError(f"CID {cid} is refused: {exc}") from exc
                return cid
    try:
        cid = CID.decode(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"invalid binary CID {raw.hex()}: {exc}") from exc
    return check_cid(cid)


def cid_from_text(text: str) -> CID:
    """Parse a CID in any multibase; base32 CIDv1 (``b…``) takes a fast path.

    Raises ``InvalidArgumentError`` if invalid, including a truncated
    digest.
    """
    text = text.strip()
    if len(text) > 1 and text[0] == "b":
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError):
            raw = b""
        if raw and raw[0] == 1:
            return cid_from_bytes(raw)
    try:
        cid = CID.decode(text)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"invalid CID {text!r}: {exc}") from exc
    return check_cid(cid)


def coerce_cid(
    value: object, what: str = "id", *, owner: str | None = None, binary: bool = False
) -> CID:
    """``value`` as a CID: a CID, its text in any multibase, or (with
    ``binary``) its binary form.

    Raises:
        InvalidArgumentError: text (or bytes) that is not a CID, or a CID
            whose digest is truncated; the message names ``what`` and the value.
        InvalidTypeError: any other type (also a ``TypeError``); the message
            names ``owner``'s ids, or ``what``.
    """
    if isinstance(value, CID):
        try:
            return check_cid(value)
        except ValueError as exc:
            raise InvalidArgumentError(f"{what}: {exc}") from exc
    if isinstance(value, str):
        try:
            return cid_from_text(value)
        except ValueError as exc:
            raise InvalidArgumentError(f"{what} is not a CID: {value!r} ({exc})") from exc
    if binary and isinstance(value, bytes):
        try:
            return cid_from_bytes(value)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"{what} is not a binary CID: {value.hex()} ({exc})"
            ) from exc
    kind = type(value).__name__
    if owner is not None:
        raise InvalidTypeError(f"{owner} ids are CIDs, got {kind}: {value!r}")
    raise InvalidTypeError(f"{what} must be a CID or its text, got {kind}: {value!r}")


def cid_bytes(cid: CID) -> bytes:
    """``bytes(cid)``, its binary form, without multiformats' general
    encoder (which validates and re-encodes every part: about 6 µs a call,
    against under 1 µs here)."""
    digest = cid.digest
    if cid.version == 0:
        return bytes(digest)
    code = cid.codec.code
    if code < 0x80:
        return bytes((1, code)) + digest
    return b"\x01" + encode_varint(code) + digest


def make_cid(codec_code: int, mh: bytes) -> CID:
    """A base32 CIDv1 with the given codec and multihash bytes.

    Raises ``InvalidArgumentError`` (naming the CID) for a truncated digest.
    """
    if len(mh) > 2 and mh[0] < 0x80 and mh[1] == len(mh) - 2 and codec_code < 0x80:
        cid = _cid_new(codec_code, mh)
        try:
            check_digest_size(mh[0], mh[1])
        except ValueError as exc:
            raise InvalidArgumentError(f"CID {cid} is refused: {exc}") from exc
        return cid
    return check_cid(CID("base32", 1, codec_code, mh))


class PickledCID(bytes):
    """A CID's binary form, standing in for it inside pickled state.

    multiformats' ``CID`` objects do not pickle reliably (their hash-function
    objects can hold local functions), so py_hamt pickles ids as bytes.
    """


def freeze_id(block_id: object) -> object:
    """A picklable stand-in for an id (CIDs become :class:`PickledCID`)."""
    return PickledCID(bytes(block_id)) if isinstance(block_id, CID) else block_id


def thaw_id(frozen: object) -> object:
    """Inverse of :func:`freeze_id`."""
    return cid_from_bytes(bytes(frozen)) if isinstance(frozen, PickledCID) else frozen
