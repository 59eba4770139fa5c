"""The write buffer (drafts and the memory they hold) and the commit that
writes them, children before parents."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from py_hamt.cas.base import Codec, ContentAddressedStore
from py_hamt.cas.write_result import WriteResult
from py_hamt.codec.node import encode_id
from py_hamt.codec.packed_node import LINK_HEAD
from py_hamt.trie.node import Draft, Node

if TYPE_CHECKING:
    from py_hamt.trie.node_cache import NodeCache

__all__ = ["Saved", "WriteBuffer", "write_draft", "write_slot"]

NODE_CODEC: Codec = "dag-cbor"
_LINK = bytes((LINK_HEAD,))


class WriteBuffer:
    """Accounts for the drafts of a HAMT in write mode.

    ``nbytes`` is the memory the drafts hold (their slot lists and encoded
    entries, CPython sizes), kept exact as every slot change goes through
    :meth:`put`.
    """

    __slots__ = ("drafts", "nbytes")

    def __init__(self) -> None:
        self.nbytes = 0
        self.drafts = 0

    def new_draft(self) -> Draft:
        draft = Draft.empty()
        self._adopt(draft)
        return draft

    def thaw(self, node: Node) -> Draft:
        """A draft of ``node``, counted here. The draft's entries are written
        again as they are, so a node no walk has checked has its buckets
        checked first (:meth:`Node.check_buckets`): a bad one is a
        ``MalformedNodeError``, and nothing is thawed."""
        if node.checked is None:
            node.check_buckets()
        draft = Draft.thaw(node)
        self._adopt(draft)
        return draft

    def _adopt(self, draft: Draft) -> None:
        self.nbytes += draft.held
        self.drafts += 1

    def put(self, draft: Draft, slot: int, value: bytes | Draft | None) -> None:
        self.nbytes += draft.put(slot, value)

    def release(self, draft: Draft) -> None:
        """``draft`` is written or gone: stop counting it."""
        self.nbytes -= draft.held
        self.drafts -= 1

    def clear(self) -> None:
        self.nbytes = self.drafts = 0


Saved = tuple[Node, int, "WriteResult | None"]
"""A written draft: its clean node, the version written, and (for the root)
the store's WriteResult."""


async def write_draft(
    cas: ContentAddressedStore,
    buf: WriteBuffer,
    cache: NodeCache,
    draft: Draft,
    is_root: bool,
) -> Saved:
    """Write ``draft`` and every draft below it, children first.

    Independent subtrees are written concurrently. Below the root they are
    written inside one :meth:`~ContentAddressedStore.write_batch`, so a
    durable store may sync them together; the root is written after the
    batch has closed (so after everything it links is durable), with
    ``put`` for its :class:`WriteResult`.

    A written child replaces itself in its parent's slot by a link, and its
    clean node goes to ``cache``, unless it changed while it was written
    (a concurrent set): then it stays a draft and the loop goes round
    again. The returned version lets the caller make the same check.
    """
    while True:
        kids: list[tuple[int, Draft]] = [(slot, draft.slots[slot]) for slot in sorted(draft.kids)]  # type: ignore[misc]
        if kids:
            if is_root:
                async with cas.write_batch():
                    done = await _write_all(cas, buf, cache, kids)
            else:
                done = await _write_all(cas, buf, cache, kids)
            for (slot, kid), saved in zip(kids, done, strict=True):
                _link_written(buf, cache, draft, slot, kid, saved)
            if draft.kids:
                continue  # a child changed while it was written
        version = draft.version
        data, snapshot = draft.encode()
        written: WriteResult | None = None
        if is_root:
            written = await cas.put(data, NODE_CODEC)
            block_id = written.id
        else:
            block_id = await cas.save(data, NODE_CODEC)
        if draft.version == version:
            return Draft.freeze(encode_id(block_id), snapshot), version, written


async def write_slot(
    cas: ContentAddressedStore, buf: WriteBuffer, cache: NodeCache, parent: Draft, slot: int
) -> None:
    """Write the draft in ``parent``'s ``slot`` and everything below it,
    and link it there in its place (the parent stays a draft). Nothing is
    linked if the slot changed meanwhile; the new contents stay changed."""
    kid = parent.slots.get(slot)
    if type(kid) is not Draft:
        return
    saved = await write_draft(cas, buf, cache, kid, False)
    _link_written(buf, cache, parent, slot, kid, saved)


def _link_written(
    buf: WriteBuffer, cache: NodeCache, parent: Draft, slot: int, kid: Draft, saved: Saved
) -> None:
    """Put the link to the written ``kid`` in ``parent``'s ``slot``, unless
    the slot or the kid changed while it was written."""
    node, version, _ = saved
    if parent.slots.get(slot) is kid and kid.version == version:
        buf.put(parent, slot, _LINK + node.raw_id)
        buf.release(kid)
        cache.put(node.raw_id, node)


async def _write_all(
    cas: ContentAddressedStore,
    buf: WriteBuffer,
    cache: NodeCache,
    kids: list[tuple[int, Draft]],
) -> list[Saved]:
    if len(kids) == 1:
        return [await write_draft(cas, buf, cache, kids[0][1], False)]
    return list(
        await asyncio.gather(*(write_draft(cas, buf, cache, kid, False) for _, kid in kids))
    )
