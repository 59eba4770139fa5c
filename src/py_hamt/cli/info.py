"""``py-hamt info``: what a root holds."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from py_hamt.cli.stores import (
    STORE_HELP,
    check_root_store,
    close_store,
    open_store,
    parse_root,
    resolve_root,
)
from py_hamt.errors import MalformedNodeError, PyHamtError

if TYPE_CHECKING:
    from multiformats import CID

    from py_hamt.cas.base import ContentAddressedStore

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "info", help="describe a HAMT or sharded dataset: keys, depth, bytes, variables"
    )
    p.add_argument("root", help="a root CID, or ref:NAME in a local store")
    p.add_argument("--store", required=True, help=f"where it is: {STORE_HELP}")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _variables(documents: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, doc in sorted(documents.items()):
        if isinstance(doc, dict) and doc.get("node_type") == "array":
            name = key.rsplit("/zarr.json", 1)[0] or "/"
            dims = ", ".join(map(str, doc.get("dimension_names") or []))
            out[name] = f"{doc.get('data_type')} {tuple(doc.get('shape', []))} ({dims})"
    return out


async def _hamt_info(cas: ContentAddressedStore, root: Any) -> dict[str, Any]:
    from py_hamt.trie.hamt import HAMT

    hamt = await HAMT.build(
        cas=cas, root_node_id=cas.cid_to_id(root), read_only=True, values_are_bytes=True
    )
    stats = await hamt.stats()
    keys = [k async for k in hamt.keys()]
    sizes = await asyncio.gather(*(hamt.get(k) for k in keys))
    documents = {
        k: json.loads(v) for k, v in zip(keys, sizes, strict=True) if k.endswith("zarr.json")
    }
    return {
        "layout": "hamt",
        "root": str(root),
        "keys": stats["keys"],
        "depth": stats["depth"],
        "nodes": stats["nodes"],
        "node_bytes": stats["node_bytes"],
        "value_bytes": sum(len(v) for v in sizes),
        "variables": _variables(documents),
    }


async def _sharded_info(cas: ContentAddressedStore, root: Any) -> dict[str, Any]:
    from py_hamt.stores.sharded import ShardedZarrStore

    store = await ShardedZarrStore.open(cas, True, root)
    manifest = await store._manifest()
    documents = {}
    for key in manifest.metadata:
        if key.endswith("zarr.json"):
            documents[key] = json.loads(await cas.load(cas.cid_to_id(manifest.metadata[key])))
    chunks = len([k async for k in store.list() if not k.endswith("zarr.json")])
    return {
        "layout": f"sharded ({manifest.version})",
        "root": str(root),
        "keys": chunks + len(documents),
        "arrays": {
            p: f"grid {a.grid.chunks_per_dim}, {len(a.shard_cids)} shards"
            for p, a in manifest.arrays.items()
        },
        "variables": _variables(documents),
    }


async def _which_failure(
    cas: ContentAddressedStore,
    root: CID,
    hamt_error: MalformedNodeError,
    sharded_error: PyHamtError,
) -> PyHamtError:
    """The error to report when ``root`` read neither as a HAMT nor as a
    sharded dataset: the HAMT walk's if the root block is a HAMT node (a
    256-entry array), the sharded reader's if it is a map with a
    ``manifest_version``; otherwise one naming the root as neither (the
    root block cannot be loaded: that error)."""
    from py_hamt.codec.dagcbor import decode
    from py_hamt.codec.node import NODE_WIDTH

    try:
        block = decode(await cas.load(cas.cid_to_id(root)))
    except ValueError:
        block = None
    if isinstance(block, list) and len(block) == NODE_WIDTH:
        return hamt_error
    if isinstance(block, dict) and "manifest_version" in block:
        return sharded_error
    return MalformedNodeError(
        f"root {root} is neither a HAMT nor a sharded root: its block is not a "
        f"{NODE_WIDTH}-entry HAMT node nor a map with a manifest_version",
        root,
    )


async def run(args: argparse.Namespace) -> int:
    wanted = parse_root(args.root)
    check_root_store(wanted, args.store)
    cas = open_store(args.store, create=False)
    try:
        root = await resolve_root(cas, wanted)
        try:
            info = await _hamt_info(cas, root)
        except MalformedNodeError as hamt_error:
            try:
                info = await _sharded_info(cas, root)
            except PyHamtError as sharded_error:
                raise await _which_failure(cas, root, hamt_error, sharded_error) from None
    finally:
        await close_store(cas)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for name, text in value.items():
                print(f"  {name}: {text}")
        else:
            print(f"{key}: {value}")
    return 0
