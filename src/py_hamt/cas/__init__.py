"""Content-addressed store backends behind one abstract contract."""

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.memory import InMemoryCAS

__all__ = ["ContentAddressedStore", "InMemoryCAS", "KuboCAS"]
