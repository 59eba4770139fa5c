"""What py_hamt's Zarr stores share beyond zarr's ``Store``: batched partial
reads and zarr's optional synchronous protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["StoreMixin"]


class StoreMixin(Store):
    """``get_partial_values`` as concurrent ``get`` calls; ``get_sync``,
    ``set_sync`` and ``delete_sync`` run the async methods on zarr's own I/O
    loop, so they must not be called from inside it."""

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
        return sync(self.get(key, prototype or default_buffer_prototype(), byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        """Blocking :meth:`set`."""
        sync(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        """Blocking :meth:`delete`."""
        sync(self.delete(key))
