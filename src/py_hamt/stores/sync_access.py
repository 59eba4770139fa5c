"""zarr's optional synchronous store protocol, for any async store here."""

from __future__ import annotations

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync

__all__ = ["SyncAccessMixin"]


class SyncAccessMixin(Store):
    """``get_sync``/``set_sync``/``delete_sync`` run the async methods on
    zarr's own I/O loop, so they must not be called from inside it."""

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
