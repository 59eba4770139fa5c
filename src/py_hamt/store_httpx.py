"""Alias of the CAS backends under py-hamt 3.x's module path
(``from py_hamt.store_httpx import KuboCAS``): the same objects, nothing else."""

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.memory import InMemoryCAS
from py_hamt.errors import GatewayContentMismatch, GatewayContentUnverifiable

__all__ = [
    "ContentAddressedStore",
    "GatewayContentMismatch",
    "GatewayContentUnverifiable",
    "InMemoryCAS",
    "KuboCAS",
]
