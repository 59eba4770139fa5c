"""The synchronous passes over the trie: find, set and delete.

A pass is a plain function: it cannot ``await``, so concurrent coroutines on
one event loop never see a half-made change and no lock is needed. When a
pass needs a child that is not in memory it raises :class:`NeedsLoad`; the
caller (:meth:`py_hamt.trie.loading.Loader.run`) loads the child and runs
the pass again from the root, handing it the loaded nodes through
``fetch``.

Set and delete work on :class:`~py_hamt.trie.node.Draft` nodes: the root
must be a draft, and each clean child on the way is thawed into one (and
put into its parent's slot) before it is changed. Every slot change goes
through the :class:`~py_hamt.trie.commit.WriteBuffer`, which accounts for
the memory drafts hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from py_hamt import observability
from py_hamt.codec.packed_node import (
    LINK_HEAD,
    Pair,
    bucket_lookup,
    bucket_pairs,
    encode_bucket,
    entry_at,
)
from py_hamt.errors import HashExhaustedError, KeyNotFoundError, MalformedNodeError
from py_hamt.trie.commit import WriteBuffer
from py_hamt.trie.node import PROMOTE_AFTER, VIEW_DEPTH, Draft, Node, invalid_node

__all__ = [
    "Fetch",
    "NeedsLoad",
    "delete_pass",
    "find_pass",
    "set_pass",
]

Fetch = Callable[[bytes], "Node | None"]
"""A child by raw id if it is in memory (loaded for this pass, or cached)."""
HashKey = Callable[[bytes], bytes]


class NeedsLoad(Exception):
    """A pass met a child that is not in memory."""

    def __init__(self, raw_id: bytes, parent: Node | Draft, slot: int) -> None:
        super().__init__(raw_id)
        self.raw_id, self.parent, self.slot = raw_id, parent, slot


def pairs_of(node: Node | Draft, slot: int, entry: bytes) -> list[Pair]:
    """Decode the bucket in ``slot``; ``MalformedNodeError`` names the node."""
    try:
        return bucket_pairs(entry)
    except (ValueError, IndexError) as exc:
        raise invalid_node(node, f"the bucket in slot {slot} is malformed ({exc})") from exc


def find_pass(root: Node | Draft, h: bytes, kb: bytes, key: str, fetch: Fetch) -> bytes:
    """The raw id stored under ``kb``; ``KeyNotFoundError`` if absent."""
    node = root
    depth = 0
    levels = len(h)
    while True:
        if depth >= levels:
            raise MalformedNodeError(
                f"the HAMT is deeper than the {levels}-byte hash allows (looking up {key!r})"
            )
        slot = h[depth]
        e: bytes | Draft | None
        if type(node) is Node:
            hot = node.hot
            if type(hot) is list:  # a decoded view
                v = hot[slot]
                if v is None:
                    raise KeyNotFoundError(key)
                if type(v) is dict:
                    raw = v.get(kb)
                    if raw is None:
                        raise KeyNotFoundError(key)
                    if observability.ACTIVE:
                        observability.record("py_hamt.hamt.lookup.depth", depth + 1)
                    return raw
                child = fetch(v)  # type: ignore[arg-type]
                if child is None:
                    raise NeedsLoad(v, node, slot)  # type: ignore[arg-type]
                node = child
                depth += 1
                continue
            if depth < VIEW_DEPTH:
                hot += 1  # type: ignore[operator]
                node.hot = hot
                if hot == PROMOTE_AFTER:
                    # A malformed bucket gets no view: the packed path names it.
                    with contextlib.suppress(ValueError, IndexError):
                        node.promote()
            bitmap = node.bitmap
            if not (bitmap >> slot) & 1:
                raise KeyNotFoundError(key)
            e = entry_at(node.packed, node.offsets, (bitmap & ((1 << slot) - 1)).bit_count())
        else:
            e = node.slots.get(slot)  # type: ignore[union-attr]
            if e is None:
                raise KeyNotFoundError(key)
            if type(e) is Draft:
                node = e
                depth += 1
                continue
        if e[0] == LINK_HEAD:  # type: ignore[index]
            child = fetch(e[1:])  # type: ignore[index]
            if child is None:
                raise NeedsLoad(e[1:], node, slot)  # type: ignore[index]
            node = child
            depth += 1
            continue
        try:
            raw = bucket_lookup(e, kb)  # type: ignore[arg-type]
        except (ValueError, IndexError):
            pairs_of(node, slot, e)  # type: ignore[arg-type]  # raises, naming the node
            raise
        if raw is None:
            raise KeyNotFoundError(key)
        if observability.ACTIVE:
            observability.record("py_hamt.hamt.lookup.depth", depth + 1)
        return raw


def _child_draft(
    buf: WriteBuffer, node: Draft, slot: int, e: bytes | Draft, fetch: Fetch
) -> Draft | None:
    """The child in ``slot`` as a draft (thawed and put in place), or
    ``None`` when ``e`` is a bucket; ``NeedsLoad`` if it is not in memory."""
    if type(e) is Draft:
        return e
    if e[0] != LINK_HEAD:  # type: ignore[index]
        return None
    child = fetch(e[1:])  # type: ignore[index]
    if child is None:
        raise NeedsLoad(e[1:], node, slot)  # type: ignore[index]
    draft = buf.thaw(child)
    buf.put(node, slot, draft)
    return draft


def _exhausted(key: bytes, h: bytes, max_bucket_size: int) -> HashExhaustedError:
    return HashExhaustedError(
        f"key {key.decode('utf-8', 'replace')!r} needs more than {len(h)} levels, but "
        f"hash_fn gives only {len(h)} bytes: too many keys share a hash prefix for "
        f"max_bucket_size={max_bucket_size}"
    )


def set_pass(
    buf: WriteBuffer,
    root: Draft,
    h: bytes,
    kb: bytes,
    raw: bytes,
    max_bucket_size: int,
    hash_key: HashKey,
    fetch: Fetch,
    depth: int = 0,
) -> None:
    """Put ``kb -> raw`` into the tree under ``root``, which is at ``depth``
    (a split puts each of a full bucket's keys into its new child with this
    same pass, one level down)."""
    node = root
    while True:
        if depth >= len(h):
            raise _exhausted(kb, h, max_bucket_size)
        slot = h[depth]
        e = node.slots.get(slot)
        if e is None:
            buf.put(node, slot, encode_bucket([(kb, raw)]))
            return
        child = _child_draft(buf, node, slot, e, fetch)
        if child is not None:
            node = child
            depth += 1
            continue
        pairs = pairs_of(node, slot, e)  # type: ignore[arg-type]
        for i, (k, _) in enumerate(pairs):
            if k == kb:
                pairs[i] = (kb, raw)
                break
        else:
            pairs.append((kb, raw))
        if len(pairs) <= max_bucket_size:
            buf.put(node, slot, encode_bucket(pairs))
            return
        # Too many keys for one bucket: the slot becomes a child node. That
        # fails, at some depth, only if all of them share the whole hash; say
        # so now, naming the key being set, before anything is changed.
        hashes = [hash_key(k) for k, _ in pairs]
        if hashes.count(hashes[0]) == len(hashes):
            raise _exhausted(kb, h, max_bucket_size)
        split = buf.new_draft()
        for (k, r), hk in zip(pairs, hashes, strict=True):
            set_pass(buf, split, hk, k, r, max_bucket_size, hash_key, fetch, depth + 1)
        buf.put(node, slot, split)
        return


def delete_pass(
    buf: WriteBuffer,
    root: Draft,
    h: bytes,
    kb: bytes,
    key: str,
    max_bucket_size: int,
    fetch: Fetch,
) -> None:
    """Remove ``kb``, restoring canonical form on the way up: a non-root
    node with no links and at most ``max_bucket_size`` keys becomes a
    bucket in its parent's slot (or an empty slot), level by level."""
    node = root
    path: list[tuple[Draft, int]] = []  # (draft, slot taken in it)
    depth = 0
    while True:
        if depth >= len(h):
            raise KeyNotFoundError(key)
        slot = h[depth]
        e = node.slots.get(slot)
        path.append((node, slot))
        if e is None:
            raise KeyNotFoundError(key)
        child = _child_draft(buf, node, slot, e, fetch)
        if child is not None:
            node = child
            depth += 1
            continue
        pairs = pairs_of(node, slot, e)  # type: ignore[arg-type]
        kept = [p for p in pairs if p[0] != kb]
        if len(kept) == len(pairs):
            raise KeyNotFoundError(key)
        buf.put(node, slot, encode_bucket(kept) if kept else None)
        break
    for level in range(len(path) - 1, 0, -1):
        child = path[level][0]
        if child.has_links() or child.key_count() > max_bucket_size:
            break
        parent, slot = path[level - 1]
        moved = child.pairs()
        buf.put(parent, slot, encode_bucket(moved) if moved else None)
        buf.release(child)
        if child.checked is None:
            parent.checked = None  # unchecked keys moved up: check again
