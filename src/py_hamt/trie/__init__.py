"""The HAMT: a hash array mapped trie over any content-addressed store."""

from py_hamt.trie.hamt import HAMT
from py_hamt.trie.hashing import blake3_hashfn

__all__ = ["HAMT", "blake3_hashfn"]
