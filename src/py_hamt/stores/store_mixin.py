"""What py_hamt's Zarr stores share beyond zarr's ``Store``: batched partial
reads and zarr's optional synchronous protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest, Store
from zarr.buffer import default_buffer_prototype

from py_hamt.errors import PyHamtError

__all__ = ["StoreMixin"]

T = TypeVar("T")

# The one private zarr import in py_hamt. zarr has no public way to run a
# coroutine on its own I/O loop (what its sync API does), and the optional
# ``*_sync`` store protocol below needs exactly that. If a zarr release moves
# it, only those three methods stop working (with a PyHamtError); importing
# py_hamt and the async store API are unaffected.
_zarr_sync: Callable[[Coroutine[Any, Any, Any]], Any] | None
try:
    from zarr.core.sync import sync as _zarr_sync
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    _zarr_sync = None


def _run_on_zarr_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on zarr's I/O loop thread.

    Raises:
        PyHamtError: this zarr has no ``zarr.core.sync.sync`` (the coroutine
            is closed unrun).
    """
    if _zarr_sync is None:
        coro.close()
        raise PyHamtError(
            "the *_sync store methods need zarr.core.sync.sync, which this zarr "
            "does not have; use the async methods (get, set, delete) instead"
        )
    result: T = _zarr_sync(coro)
    return result


class StoreMixin(Store):
    """``get_partial_values`` as concurrent ``get`` calls; ``get_sync``,
    ``set_sync`` and ``delete_sync`` run the async methods on zarr's own I/O
    loop, so they must not be called from inside it (and raise
    :class:`~py_hamt.errors.PyHamtError` on a zarr without that loop)."""

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Several reads at once; ``None`` for each missing key."""
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Blocking :meth:`get`."""
        return _run_on_zarr_loop(self.get(key, prototype or default_buffer_prototype(), byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        """Blocking :meth:`set`."""
        _run_on_zarr_loop(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`."""
        _run_on_zarr_loop(self.delete(key))
