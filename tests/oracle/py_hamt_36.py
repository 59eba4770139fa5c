"""Driver run by py-hamt 3.6.0's own interpreter (a separate venv): the test
oracle for compatibility. It imports only upstream's package, never ours.

    python py_hamt_36.py write DIR SPEC_JSON   # write a dataset with 3.6.0
    python py_hamt_36.py read DIR SPEC_JSON    # read a dataset with 3.6.0

Blocks are exchanged as files ``DIR/blocks/<CID>``; ``DIR/root`` holds the
root CID; ``DIR/arrays.npz`` holds the arrays written or read.
SPEC_JSON: {"layout": "v1"|"v2"|"hamt", "group": str|null,
            "variables": {name: [chunk_t, chunk_y, chunk_x]}, "chunks_per_shard": n}
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from datasets36 import dataset, encoding
from multiformats import CID, multihash

warnings.simplefilter("ignore")

from py_hamt import HAMT, ContentAddressedStore, ShardedZarrStore, ZarrHAMTStore  # noqa: E402

_B3 = multihash.get("blake3")


def _key(cid: object) -> bytes:
    """Blocks by binary CID: 3.6 hands over CIDs in several text bases."""
    return bytes(cid if isinstance(cid, CID) else CID.decode(str(cid)))


class DirCAS(ContentAddressedStore):
    """CIDv1/blake3 blocks in memory, loaded from and saved to a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "blocks"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.blocks = {_key(p.name): p.read_bytes() for p in self.folder.iterdir()}

    async def save(self, data, codec):  # type: ignore[no-untyped-def]
        cid = CID("base32", 1, codec, _B3.digest(bytes(data), size=32))
        self.blocks[_key(cid)] = bytes(data)
        (self.folder / str(cid)).write_bytes(bytes(data))
        return cid

    async def load(self, id, offset=None, length=None, suffix=None):  # type: ignore[no-untyped-def]  # noqa: A002
        data = self.blocks[_key(id)]
        if suffix is not None:
            return data[-suffix:] if suffix else b""
        start = offset or 0
        return data[start : start + length] if length is not None else data[start:]


async def write(folder: Path, spec: dict) -> None:
    ds = dataset(spec["variables"])
    enc = encoding(spec["variables"])
    cas = DirCAS(folder)
    group = spec.get("group")
    if spec["layout"] == "hamt":
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ds.to_zarr(ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=enc, group=group)
        await hamt.make_read_only()
        root = str(hamt.root_node_id)
    else:
        first = next(iter(spec["variables"]))
        kwargs = {"chunks_per_shard": spec["chunks_per_shard"]}
        if spec["layout"] == "v1":
            kwargs.update(array_shape=ds[first].shape, chunk_shape=tuple(spec["variables"][first]))
        else:
            kwargs.update(manifest_version="sharded_zarr_v2")
        store = await ShardedZarrStore.open(cas, False, **kwargs)
        ds.to_zarr(store, mode="w", zarr_format=3, encoding=enc, group=group)
        root = await store.flush()
    (folder / "root").write_text(root)
    np.savez(folder / "arrays.npz", **{k: ds[k].values for k in [*ds.data_vars, *ds.coords]})


async def read(folder: Path, spec: dict) -> None:
    cas = DirCAS(folder)
    root = (folder / "root").read_text().strip()
    if spec["layout"] == "hamt":
        hamt = await HAMT.build(
            cas=cas, root_node_id=CID.decode(root), read_only=True, values_are_bytes=True
        )
        store = ZarrHAMTStore(hamt, read_only=True)
    else:
        store = await ShardedZarrStore.open(cas, True, root)
    ds = xr.open_zarr(store, group=spec.get("group"), chunks=None).load()
    np.savez(folder / "arrays.npz", **{k: ds[k].values for k in [*ds.data_vars, *ds.coords]})


if __name__ == "__main__":
    verb, folder, spec = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    asyncio.run({"write": write, "read": read}[verb](folder, spec))
