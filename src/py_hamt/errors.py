"""The exception tree of py_hamt.

Every error the package raises on purpose derives from :class:`PyHamtError`,
and each also inherits the builtin a caller would naturally catch, so that
``except KeyError`` or ``except ValueError`` keep working::

    PyHamtError
    ├── KeyNotFoundError        (KeyError)    a key is absent from a HAMT
    ├── BlockNotFoundError      (KeyError)    a store has no block under an id
    ├── InvalidArgumentError    (ValueError)  bad configuration or arguments
    │   ├── InvalidTypeError    (TypeError)   an argument of the wrong type
    │   └── HashExhaustedError                the hash ran out of levels
    ├── ReadOnlyError           (ValueError)  a write on a read-only HAMT or store
    ├── NotCommittedError       (RuntimeError) a root id asked for before a commit
    ├── TransportError          (OSError)     an HTTP request to a node or gateway failed
    │   ├── NodeUnreachableError  (ConnectionError) refused, reset or no route
    │   ├── RequestTimeoutError   (TimeoutError)    no answer in time
    │   └── HTTPStatusError                         an error status, after any retries
    └── IntegrityError                        bytes do not match what was promised
        ├── MalformedNodeError  (ValueError)  a block is not the structure expected
        │   └── AmbiguousLayoutError          a root leaves a key's owner undecidable
        ├── MissingBlockError                 a key is present but a block it needs is gone
        ├── CARFormatError      (ValueError)  a CAR file is not well formed
        ├── GatewayContentMismatch            a gateway's bytes do not hash to the CID
        │   └── GatewayContentUnverifiable    the bytes could not be checked at all
        └── DecryptionError                   wrong key or header, or tampered bytes

Messages always name the key, id or argument at fault.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousLayoutError",
    "BlockNotFoundError",
    "CARFormatError",
    "GatewayContentMismatch",
    "GatewayContentUnverifiable",
    "InvalidTypeError",
    "DecryptionError",
    "HashExhaustedError",
    "IntegrityError",
    "InvalidArgumentError",
    "KeyNotFoundError",
    "MalformedNodeError",
    "MissingBlockError",
    "NodeUnreachableError",
    "NotCommittedError",
    "HTTPStatusError",
    "RequestTimeoutError",
    "TransportError",
    "PyHamtError",
    "ReadOnlyError",
]


class PyHamtError(Exception):
    """Base class of every error py_hamt raises deliberately."""


class KeyNotFoundError(PyHamtError, KeyError):
    """A key is not in the HAMT. ``args[0]`` is the key itself."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"key not found: {self.key!r}"


class BlockNotFoundError(PyHamtError, KeyError):
    """A content-addressed store holds no block under an id."""

    def __init__(self, block_id: object, detail: str = "") -> None:
        super().__init__(block_id)
        self.block_id = block_id
        self.detail = detail

    def __str__(self) -> str:
        msg = f"no block with id {format_id(self.block_id)}"
        return f"{msg}: {self.detail}" if self.detail else msg


class InvalidArgumentError(PyHamtError, ValueError):
    """An argument or a combination of arguments is not valid."""


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument is of the wrong type (also a ``TypeError``)."""


class HashExhaustedError(InvalidArgumentError):
    """More levels were needed than the hash function has bytes.

    With the default 32-byte blake3 hash this needs more than
    ``max_bucket_size`` keys sharing a 32-byte hash, which does not happen in
    practice; a short custom ``hash_fn`` can hit it.
    """


class ReadOnlyError(PyHamtError, ValueError):
    """A write was attempted on a read-only HAMT or store."""


class NotCommittedError(PyHamtError, RuntimeError):
    """A committed root was asked for while changes are still buffered."""


class TransportError(PyHamtError, OSError):
    """A request to an IPFS node or gateway failed. ``url`` is what was asked."""

    def __init__(self, message: str, url: str = "", block_id: object = None) -> None:
        super().__init__(message)
        self.url = url
        self.block_id = block_id

    def __str__(self) -> str:
        return str(self.args[0])


class NodeUnreachableError(TransportError, ConnectionError):
    """The connection was refused, reset or could not be made."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The node or gateway did not answer within the timeout."""


class HTTPStatusError(TransportError):
    """The node or gateway answered with an error status. ``retry_after`` is
    the wait its ``Retry-After`` header asked for, in seconds, if any."""

    def __init__(
        self,
        message: str,
        url: str,
        status_code: int,
        block_id: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url, block_id)
        self.status_code = status_code
        self.retry_after = retry_after


class IntegrityError(PyHamtError):
    """Bytes did not match the id or digest they were promised under."""

    def __init__(self, message: str, block_id: object = None) -> None:
        super().__init__(message)
        self.block_id = block_id


class MalformedNodeError(IntegrityError, ValueError):
    """A block that should be a HAMT node, sharded root or shard does not
    decode as one."""


class AmbiguousLayoutError(MalformedNodeError):
    """A root does not say which array owns a key, so any answer would be a
    guess (for example a ``sharded_zarr_v1`` root from before py-hamt 3.6 with
    two data variables on its single chunk grid). Nothing is returned."""


class CARFormatError(IntegrityError, ValueError):
    """A CAR file is truncated, malformed, or holds a block that does not
    match its CID."""


class GatewayContentMismatch(IntegrityError):
    """A gateway answered with bytes that do not hash to the CID asked for.

    Named as in py-hamt 3.6. With several gateways this counts as that
    gateway failing; the bytes are never returned."""


class GatewayContentUnverifiable(GatewayContentMismatch):
    """The bytes could not be checked against the CID (an unsupported hash
    function, for example). Treated like a mismatch: unproven bytes are
    never returned."""


class DecryptionError(IntegrityError):
    """An encrypted value did not authenticate: a wrong key or header, or
    stored bytes that were changed. No plaintext is ever returned then."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (some libraries' span several)."""
    return " ".join(str(exc).split())


def format_id(block_id: object) -> str:
    """Render an id for an error message: CIDs as text, bytes as hex."""
    if isinstance(block_id, (bytes, bytearray, memoryview)):
        return bytes(block_id).hex()
    return str(block_id)


class MissingBlockError(IntegrityError):
    """A key is present, but a block it needs (its value, or a node on its
    path) is not in the store: the store holds only part of the DAG (pruned,
    unpinned, half copied). ``key`` and ``block_id`` name both.

    The Zarr stores raise this where the HAMT raises
    :class:`BlockNotFoundError`. That one is also a ``KeyError``, which zarr
    reads as "no such key" and skips, so a damaged dataset would open with
    variables silently missing. This is deliberately not a ``KeyError``.
    """

    def __init__(self, message: str, block_id: object = None, key: str | None = None) -> None:
        super().__init__(message, block_id)
        self.key = key
