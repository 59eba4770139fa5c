"""Content-addressed store backends behind one abstract contract."""

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.local import LocalCAS
from py_hamt.cas.memory import InMemoryCAS
from py_hamt.cas.write_result import ContentDigest, WriteResult

__all__ = [
    "ContentAddressedStore",
    "ContentDigest",
    "InMemoryCAS",
    "KuboCAS",
    "LocalCAS",
    "WriteResult",
]
