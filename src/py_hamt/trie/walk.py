"""Walking the whole trie: every node once, with bounded memory.

The walk is depth first. Each node's children that are not in memory are
loaded together, at most :data:`MAX_CONCURRENT_LOADS` at a time, before the
walk goes down into the first of them, so a remote store serves a node's
children in one round trip's time. What the walk holds is bounded by the
path it is on: at most 256 children per level, never the whole trie.

Hostile or damaged input stays bounded too: each block is visited at most
once (in a HAMT every node has one parent, so a second link to a block is
malformed), never deeper than the hash allows, and each node's bucket keys
are checked against their hashes (one hash per key, once per node: walks
pay it, lookups never do) before the node is yielded, so ``keys()`` never
lists a key that ``get()`` cannot find.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from py_hamt.codec.packed_node import Misplaced, NodeContents, node_contents, node_summary
from py_hamt.errors import BlockNotFoundError, MalformedNodeError
from py_hamt.trie.loading import Loader, missing
from py_hamt.trie.node import (
    Draft,
    Node,
    invalid_node,
    node_id,
    node_name,
    raw_name,
    raw_to_id,
)

__all__ = ["MAX_CONCURRENT_LOADS", "walk"]

MAX_CONCURRENT_LOADS = 32

Tree = Node | Draft


async def walk(
    root: Tree,
    loader: Loader,
    levels: int,
    hash_key: Callable[[bytes], bytes],
    *,
    keys: bool = True,
) -> AsyncIterator[tuple[Tree, int, NodeContents]]:
    """Every node under ``root`` with its depth (the root is 0) and its
    contents, depth first in slot order, checked (see the module
    docstring). With ``keys=False`` the contents of a node checked before
    hold only its links and key count (its keys are not decoded again)."""
    seen: set[bytes] = set()
    if type(root) is Node:
        seen.add(root.raw_id)
    stack: list[tuple[Tree, bytes]] = [(root, b"")]
    limit = asyncio.Semaphore(MAX_CONCURRENT_LOADS)
    while stack:
        node, path = stack.pop()
        drafts: list[tuple[int, Tree | bytes]]
        if not keys and node.checked == path and type(node) is Node:
            contents, drafts = node_summary(node.bitmap, node.packed, node.offsets), []
        else:
            contents, drafts = _decode(node, path, None if node.checked == path else hash_key)
            node.checked = path
        depth = len(path)
        yield node, depth, contents
        if not contents.links and not drafts:
            continue
        if depth + 1 >= levels:
            slot = min([s for s, _ in contents.links] + [s for s, _ in drafts])
            raise MalformedNodeError(
                f"node {node_name(node)} links a child in slot {slot} at depth {depth + 1}, "
                f"deeper than the {levels}-byte hash allows",
                node_id(node),
            )
        children: list[tuple[int, Tree | bytes]] = list(drafts)
        for slot, raw in contents.links:
            if raw in seen:
                raise MalformedNodeError(
                    f"node {raw_name(raw)} is linked again from slot {slot} of node "
                    f"{node_name(node)}: a HAMT node has one parent",
                    raw_to_id(raw),
                )
            seen.add(raw)
            cached = loader.cached(raw)
            children.append((slot, raw if cached is None else cached))
        if drafts:
            children.sort(key=_slot_of)
        wanted = [(slot, c) for slot, c in children if isinstance(c, bytes)]
        if wanted:
            loaded = await _load_children(loader, node, wanted, limit)
            children = [(slot, loaded.get(slot, c)) for slot, c in children]
        stack.extend((c, path + bytes((slot,))) for slot, c in reversed(children))  # type: ignore[misc]


def _slot_of(child: tuple[int, object]) -> int:
    return child[0]


def _decode(
    node: Tree, path: bytes, hash_key: Callable[[bytes], bytes] | None
) -> tuple[NodeContents, list[tuple[int, Tree | bytes]]]:
    """A node's contents (keys checked against ``hash_key`` unless it is
    ``None``), and (for a draft) its draft children."""
    try:
        if type(node) is Node:
            return node_contents(node.bitmap, node.packed, node.offsets, path, hash_key), []
        contents = NodeContents()
        drafts: list[tuple[int, Tree | bytes]] = []
        for slot, e in sorted(node.slots.items()):  # type: ignore[union-attr]
            if type(e) is bytes:
                contents.add_entry(slot, e, 0, len(e), path, hash_key)
            else:
                drafts.append((slot, e))
        return contents, drafts
    except Misplaced as exc:
        raise MalformedNodeError(f"node {node_name(node)} {exc}", node_id(node)) from exc
    except (ValueError, IndexError) as exc:
        raise invalid_node(node, exc) from exc


async def _load_children(
    loader: Loader, parent: Tree, wanted: list[tuple[int, bytes]], limit: asyncio.Semaphore
) -> dict[int, Tree]:
    async def one(slot: int, raw: bytes) -> Node:
        async with limit:
            try:
                return await loader.child(raw, parent, slot)
            except BlockNotFoundError as exc:
                raise missing(exc, f"the child in slot {slot} of node {node_name(parent)}") from exc

    if len(wanted) == 1:
        slot, raw = wanted[0]
        return {slot: await one(slot, raw)}
    nodes = await asyncio.gather(*(one(slot, raw) for slot, raw in wanted))
    return {slot: n for (slot, _), n in zip(wanted, nodes, strict=True)}
