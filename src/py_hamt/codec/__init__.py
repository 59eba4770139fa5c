"""Ids and codecs: multihashes, CIDs and the HAMT node's DAG-CBOR layout.

This layer depends on nothing else in py_hamt except :mod:`py_hamt.errors`.
"""
