"""Alias of :mod:`py_hamt.trie` under py-hamt 3.x's module path
(``from py_hamt.hamt import HAMT``): the same objects, nothing else."""

from py_hamt.trie.hamt import HAMT
from py_hamt.trie.hashing import blake3_hashfn

__all__ = ["HAMT", "blake3_hashfn"]
