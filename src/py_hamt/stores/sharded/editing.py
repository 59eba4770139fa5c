"""The editing methods of ShardedZarrStore beyond zarr's ``Store``: grafting,
resizing, migrating v1, removing folders. Each hands its work to ``edits``
or ``legacy``."""

from __future__ import annotations

from collections.abc import Sequence

from multiformats import CID

from py_hamt.codec.cids import coerce_cid
from py_hamt.stores.sharded import edits, legacy
from py_hamt.stores.sharded.session import Session
from py_hamt.stores.sharded.shard_cache import ShardCache

__all__ = ["EditingMixin"]


class EditingMixin:
    """Needs ``_session`` and ``_check_writable`` from the store."""

    _session: Session

    def _check_writable(self) -> None:  # pragma: no cover - the store's own
        raise NotImplementedError

    async def delete_dir(self, prefix: str) -> None:
        """Remove every key under ``prefix`` and the chunk indexes of the
        arrays there (``""``: everything)."""
        self._check_writable()
        await edits.delete_dir(self._session, prefix)

    async def clear(self) -> None:
        """Remove every key (commit with :meth:`flush`)."""
        self._check_writable()
        await edits.clear(self._session)

    async def graft_store(
        self,
        root_cid: CID | str,
        chunk_offset: Sequence[int],
        *,
        source_array_path: str | None = None,
        target_array_path: str | None = None,
    ) -> dict[str, int]:
        """Splice another sharded root's chunks into this store, shifted by
        ``chunk_offset`` (in chunks), by pointer: no chunk is read or written.

        With ``source_array_path`` (and optionally ``target_array_path``),
        that one array; otherwise every array both stores have with the
        offset's rank. Returns the number of chunks grafted per array.

        Raises:
            InvalidArgumentError: a named array is missing, the offset's rank
                differs from it, or the chunk shapes differ.
        """
        self._check_writable()
        other = Session(self._session.cas, ShardCache(self._session.cache.max_bytes), "full")
        other.root_cid = coerce_cid(root_cid, "root_cid")
        return await edits.graft(
            self._session,
            other,
            chunk_offset,
            source_array_path=source_array_path,
            target_array_path=target_array_path,
        )

    async def resize_store(
        self, new_shape: Sequence[int], *, array_path: str | None = None
    ) -> None:
        """Resize chunk indexes: ``array_path``'s, or a v1 grid, or in v2
        every array with the largest array's shape. ``zarr.json`` is not
        touched (see :meth:`resize_variable`)."""
        self._check_writable()
        await edits.resize_store(self._session, new_shape, array_path=array_path)

    async def resize_variable(self, name: str, new_shape: Sequence[int]) -> None:
        """Set ``<name>/zarr.json``'s shape (and consolidated metadata's);
        the chunk index follows. ``KeyNotFoundError`` if there is no such array."""
        self._check_writable()
        await edits.resize_variable(self._session, name, new_shape)

    async def migrate_v1_to_v2(self, primary_array_path: str) -> str:
        """Rewrite a ``sharded_zarr_v1`` root as v2 (py-hamt 3.6's migration):
        the grid becomes ``primary_array_path``'s index. Commits and returns
        the new root CID."""
        self._check_writable()
        return str(await legacy.migrate_v1_to_v2(self._session, primary_array_path))
