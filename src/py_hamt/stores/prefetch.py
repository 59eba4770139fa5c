"""Reading a dataset's small arrays ahead, when its metadata is first read.

Opening a dataset with xarray reads the consolidated ``zarr.json`` and then
every coordinate, one array after another: over a gateway that is one round
trip per coordinate on top of the metadata's. When a read-only store first
returns a group's ``zarr.json`` with consolidated metadata, this asks for the
chunks of every small array in it (each array at most ``max_array_bytes``,
all together at most ``budget_bytes``) at once, in the background; the reads
xarray then makes are answered from them.

Edges: a prefetch that fails is forgotten, and the read it would have served
is made again for real, so its error surfaces there; a chunk that is absent
is ``None``, as the store would answer. Prefetched values stay (they are the
small arrays, within ``budget_bytes``) and answer every later read of their
key: xarray reads some coordinates more than once. Prefetches run on the
event loop that read the metadata; a read on another loop does not wait for
them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final

from py_hamt.errors import PyHamtError

__all__ = ["DEFAULT_PREFETCH_BYTES", "Prefetcher"]

DEFAULT_PREFETCH_BYTES: Final = 8 * 2**20
DEFAULT_MAX_ARRAY_BYTES: Final = 2**20
_MAX_CHUNKS_PER_ARRAY: Final = 64
_ITEMSIZE: Final = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "float16": 2,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}


def _chunk_keys(
    group: str, path: str, meta: dict[str, Any], max_bytes: int
) -> tuple[list[str], int]:
    """Every chunk key of a small array described in consolidated metadata
    and its size in bytes, or ``([], 0)`` when it is large, irregular, or not
    understood."""
    try:
        shape = [int(s) for s in meta["shape"]]
        grid = meta["chunk_grid"]
        if grid.get("name") != "regular":
            return [], 0
        chunks = [int(c) for c in grid["configuration"]["chunk_shape"]]
        dtype = meta.get("data_type")
        itemsize = _ITEMSIZE.get(dtype, 8) if isinstance(dtype, str) else 8
        nbytes = math.prod(shape) * itemsize
        if nbytes > max_bytes:
            return [], 0
        encoding = meta.get("chunk_key_encoding") or {"name": "default"}
        if encoding.get("name") != "default":
            return [], 0
        sep = (encoding.get("configuration") or {}).get("separator", "/")
        per_dim = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    except (KeyError, TypeError, ValueError, AttributeError):
        return [], 0
    if math.prod(per_dim) > _MAX_CHUNKS_PER_ARRAY:
        return [], 0
    base = "/".join(p for p in (group, path) if p)
    head = f"{base}/c" if base else "c"
    coords: Iterator[tuple[int, ...]] = itertools.product(*(range(n) for n in per_dim))
    return [head + "".join(f"{sep}{i}" for i in c) for c in coords], nbytes


class Prefetcher:
    """Background reads of small arrays, keyed by zarr key.

    ``fetch(key)`` is the store's own uncached read (bytes, or ``None`` when
    the key is absent).
    """

    def __init__(
        self,
        fetch: Callable[[str], Coroutine[Any, Any, bytes | None]],
        *,
        budget_bytes: int = DEFAULT_PREFETCH_BYTES,
        max_array_bytes: int = DEFAULT_MAX_ARRAY_BYTES,
    ) -> None:
        self._fetch = fetch
        self.budget_bytes = budget_bytes
        self.max_array_bytes = max_array_bytes
        self._planned: set[str] = set()
        self._tasks: dict[str, asyncio.Task[bytes | None]] = {}
        self.started = 0
        self.served = 0

    def saw_document(self, key: str, document: bytes) -> None:
        """``document`` was read under ``key``: if it is a group's
        ``zarr.json`` with consolidated metadata, start prefetching (once per
        group)."""
        if not (key == "zarr.json" or key.endswith("/zarr.json")) or key in self._planned:
            return
        self._planned.add(key)
        try:
            meta = json.loads(document)
            members = meta["consolidated_metadata"]["metadata"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            return
        if not isinstance(members, dict):
            return
        group = key[: -len("zarr.json")].rstrip("/")
        keys: list[str] = []
        budget = self.budget_bytes
        for path, member in sorted(members.items()):
            if isinstance(member, dict) and member.get("node_type") == "array":
                found, nbytes = _chunk_keys(group, str(path), member, self.max_array_bytes)
                if found and nbytes <= budget:
                    keys += found
                    budget -= nbytes
        loop = asyncio.get_running_loop()
        for chunk_key in keys:
            if chunk_key not in self._tasks:
                task: asyncio.Task[bytes | None] = loop.create_task(self._fetch(chunk_key))
                task.add_done_callback(_retrieve)
                self._tasks[chunk_key] = task
                self.started += 1

    async def take(self, key: str) -> tuple[bool, bytes | None]:
        """``(True, value)`` if ``key`` was prefetched (waiting for it if it
        is still in flight), else ``(False, None)``: read it for real."""
        task = self._tasks.get(key)
        if task is None:
            return False, None
        if not task.done() and task.get_loop() is not asyncio.get_running_loop():
            return False, None
        try:
            value = await asyncio.shield(task) if not task.done() else task.result()
        except PyHamtError:
            self._tasks.pop(key, None)
            return False, None  # read again for real, where the error belongs
        self.served += 1
        return True, value

    def cancel(self) -> None:
        """Drop every prefetch not yet taken."""
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()


def _retrieve(task: asyncio.Task[bytes | None]) -> None:
    """Mark a prefetch's failure as seen: the real read reports it, if any."""
    if not task.cancelled():
        task.exception()
