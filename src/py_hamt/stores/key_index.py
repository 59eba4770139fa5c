"""A directory index of a committed HAMT's keys, for fast zarr listing."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["KeyIndex"]


class KeyIndex:
    """Keys sorted, and each directory's direct children.

    Built once from an immutable key set (a committed root), it answers
    ``list_prefix`` by bisection, O(matches), and ``list_dir`` in O(children).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = sorted(keys)
        self.children: dict[str, list[str]] = {}
        seen: dict[str, set[str]] = {}
        for key in self.keys:
            parts = key.split("/")
            for depth in range(len(parts)):
                folder = "/".join(parts[:depth])
                name = parts[depth]
                names = seen.setdefault(folder, set())
                if name not in names:
                    names.add(name)
                    self.children.setdefault(folder, []).append(name)

    def with_prefix(self, prefix: str) -> list[str]:
        start = bisect.bisect_left(self.keys, prefix)
        end = start
        while end < len(self.keys) and self.keys[end].startswith(prefix):
            end += 1
        return self.keys[start:end]

    def listing(self, kind: str, prefix: str) -> list[str]:
        """``with_prefix(prefix)`` for kind ``"prefix"``, else ``directory(prefix)``."""
        return self.with_prefix(prefix) if kind == "prefix" else self.directory(prefix)

    def directory(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (``"a"``, ``"a/"`` alike; ``""`` the root)."""
        return list(self.children.get(prefix.rstrip("/"), []))
