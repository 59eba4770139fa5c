"""py_hamt: a content-addressed key-value engine for Zarr on IPFS.

The public API (see ``README.md``)::

    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(store=ZarrHAMTStore(hamt, read_only=False), mode="w", zarr_format=3)
    await hamt.make_read_only()
    root = hamt.root_node_id
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what mypy and IDEs see; at run time the names load lazily
    from py_hamt.cas.base import ContentAddressedStore
    from py_hamt.cas.kubo import KuboCAS
    from py_hamt.cas.local import LocalCAS
    from py_hamt.cas.memory import InMemoryCAS
    from py_hamt.cas.write_result import ContentDigest, WriteResult
    from py_hamt.cli.sharded_converter import sharded_converter_cli
    from py_hamt.errors import (
        AmbiguousLayoutError,
        BlockNotFoundError,
        CARFormatError,
        DecryptionError,
        GatewayContentMismatch,
        GatewayContentUnverifiable,
        HashExhaustedError,
        HTTPStatusError,
        IntegrityError,
        InvalidArgumentError,
        InvalidTypeError,
        KeyNotFoundError,
        MalformedNodeError,
        MissingBlockError,
        NodeUnreachableError,
        NotCommittedError,
        PyHamtError,
        ReadOnlyError,
        RequestTimeoutError,
        TransportError,
    )
    from py_hamt.jobs.car import export_car, import_car
    from py_hamt.jobs.convert import convert_hamt_to_sharded
    from py_hamt.jobs.copy import CopyReport, copy_dag
    from py_hamt.jobs.progress import Progress
    from py_hamt.observability import reset_stats, stats
    from py_hamt.stores.encrypted_store import SimpleEncryptedZarrHAMTStore
    from py_hamt.stores.hamt_store import ZarrHAMTStore
    from py_hamt.stores.sharded import (
        ShardedZarrStore,
        ShardedZarrV1DeprecationWarning,
        ShardReadMode,
    )
    from py_hamt.trie.hamt import HAMT
    from py_hamt.trie.hashing import blake3_hashfn

_ERRORS = (
    "AmbiguousLayoutError",
    "BlockNotFoundError",
    "CARFormatError",
    "DecryptionError",
    "GatewayContentMismatch",
    "GatewayContentUnverifiable",
    "HashExhaustedError",
    "HTTPStatusError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "KeyNotFoundError",
    "MalformedNodeError",
    "MissingBlockError",
    "NodeUnreachableError",
    "NotCommittedError",
    "PyHamtError",
    "ReadOnlyError",
    "RequestTimeoutError",
    "TransportError",
)

# Every public name -> the module that defines it. Importing ``py_hamt``
# imports none of them (zarr, numpy and httpx take about a second), so the
# console commands can install their Ctrl-C handler first and ``--help``
# stays quick; a name's module is imported on first access.
_LAZY: dict[str, str] = {
    "ContentAddressedStore": "py_hamt.cas.base",
    "KuboCAS": "py_hamt.cas.kubo",
    "LocalCAS": "py_hamt.cas.local",
    "InMemoryCAS": "py_hamt.cas.memory",
    "ContentDigest": "py_hamt.cas.write_result",
    "WriteResult": "py_hamt.cas.write_result",
    **dict.fromkeys(_ERRORS, "py_hamt.errors"),
    "export_car": "py_hamt.jobs.car",
    "import_car": "py_hamt.jobs.car",
    "convert_hamt_to_sharded": "py_hamt.jobs.convert",
    "CopyReport": "py_hamt.jobs.copy",
    "copy_dag": "py_hamt.jobs.copy",
    "Progress": "py_hamt.jobs.progress",
    "SimpleEncryptedZarrHAMTStore": "py_hamt.stores.encrypted_store",
    "ZarrHAMTStore": "py_hamt.stores.hamt_store",
    "ShardedZarrStore": "py_hamt.stores.sharded",
    "ShardedZarrV1DeprecationWarning": "py_hamt.stores.sharded",
    "ShardReadMode": "py_hamt.stores.sharded",
    "HAMT": "py_hamt.trie.hamt",
    "blake3_hashfn": "py_hamt.trie.hashing",
    "stats": "py_hamt.observability",
    "reset_stats": "py_hamt.observability",
    # The console command lives in the CLI layer; importing the library
    # never imports the CLI.
    "sharded_converter_cli": "py_hamt.cli.sharded_converter",
}


def __getattr__(name: str) -> object:
    """Import a public name's module on first access (PEP 562) and keep the
    value as a module attribute, so later lookups are plain attribute reads.
    Raises ``AttributeError`` for any other name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'py_hamt' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


try:
    __version__ = version("py-hamt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "HAMT",
    "AmbiguousLayoutError",
    "BlockNotFoundError",
    "CARFormatError",
    "ContentAddressedStore",
    "ContentDigest",
    "CopyReport",
    "DecryptionError",
    "GatewayContentMismatch",
    "GatewayContentUnverifiable",
    "HashExhaustedError",
    "InMemoryCAS",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "KeyNotFoundError",
    "KuboCAS",
    "LocalCAS",
    "MalformedNodeError",
    "MissingBlockError",
    "HTTPStatusError",
    "NodeUnreachableError",
    "NotCommittedError",
    "PyHamtError",
    "ReadOnlyError",
    "RequestTimeoutError",
    "ShardReadMode",
    "ShardedZarrStore",
    "ShardedZarrV1DeprecationWarning",
    "SimpleEncryptedZarrHAMTStore",
    "TransportError",
    "WriteResult",
    "ZarrHAMTStore",
    "Progress",
    "__version__",
    "blake3_hashfn",
    "convert_hamt_to_sharded",
    "copy_dag",
    "export_car",
    "import_car",
    "reset_stats",
    "sharded_converter_cli",
    "stats",
]
