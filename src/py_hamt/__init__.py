"""py_hamt: a content-addressed key-value engine for Zarr on IPFS.

The public API (see ``README.md``)::

    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds.to_zarr(store=ZarrHAMTStore(hamt, read_only=False), mode="w", zarr_format=3)
    await hamt.make_read_only()
    root = hamt.root_node_id
"""

from importlib.metadata import PackageNotFoundError, version

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.local import LocalCAS
from py_hamt.cas.memory import InMemoryCAS
from py_hamt.cas.write_result import ContentDigest, WriteResult
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
from py_hamt.stores.encrypted_store import SimpleEncryptedZarrHAMTStore
from py_hamt.stores.hamt_store import ZarrHAMTStore
from py_hamt.stores.sharded import ShardedZarrStore, ShardedZarrV1DeprecationWarning, ShardReadMode
from py_hamt.trie.hamt import HAMT
from py_hamt.trie.hashing import blake3_hashfn


def __getattr__(name: str) -> object:
    # The console command lives in the CLI layer; import it only when asked,
    # so importing the library never imports the CLI.
    if name == "sharded_converter_cli":
        from py_hamt.cli.sharded_converter import sharded_converter_cli

        return sharded_converter_cli
    raise AttributeError(f"module 'py_hamt' has no attribute {name!r}")


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
    "sharded_converter_cli",
]
