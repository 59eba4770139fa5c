"""How the CLI names stores and roots.

A store is a directory (a :class:`LocalCAS`, created if needed), ``kubo``
(Kubo's default local endpoints) or ``kubo:RPC_URL[,GATEWAY_URL]``. A root is
a CID, or ``ref:NAME`` for a ref kept in a local store.
"""

from __future__ import annotations

import argparse

from multiformats import CID

from py_hamt.cas.base import ContentAddressedStore
from py_hamt.cas.kubo import KuboCAS
from py_hamt.cas.local import LocalCAS
from py_hamt.errors import InvalidArgumentError

__all__ = ["STORE_HELP", "close_store", "open_store", "resolve_root"]

STORE_HELP = "a directory (local store), 'kubo', or 'kubo:RPC_URL[,GATEWAY_URL]'"


def open_store(spec: str, *, timeout: float = 30.0) -> ContentAddressedStore:
    """The store ``spec`` names (see the module docstring)."""
    if spec == "kubo" or spec.startswith("kubo:"):
        urls = spec[5:].split(",") if spec.startswith("kubo:") else []
        rpc = urls[0] if urls and urls[0] else None
        gateway = urls[1] if len(urls) > 1 and urls[1] else None
        return KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway, timeout=timeout)
    cas = LocalCAS(spec)
    cas.cleanup()
    return cas


async def close_store(cas: ContentAddressedStore) -> None:
    if isinstance(cas, KuboCAS):
        await cas.aclose()


async def resolve_root(cas: ContentAddressedStore, spec: str) -> CID:
    """A CID from ``spec``: CID text, or ``ref:NAME`` in a local store."""
    if spec.startswith("ref:"):
        if not isinstance(cas, LocalCAS):
            raise InvalidArgumentError(f"{spec!r}: refs live in local stores, not {cas!r}")
        cid = await cas.get_ref(spec[4:])
        if cid is None:
            raise InvalidArgumentError(f"no ref {spec[4:]!r} in {cas.path}")
        return cid
    try:
        return CID.decode(spec.strip())
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"not a CID: {spec!r} ({exc})") from exc


def add_store_argument(
    parser: argparse.ArgumentParser, name: str = "--store", **kwargs: str
) -> None:
    parser.add_argument(name, required=True, help=kwargs.get("help", f"the store: {STORE_HELP}"))
