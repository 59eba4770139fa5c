"""How the CLI names stores and roots.

A store is a directory (a :class:`LocalCAS`), ``kubo`` (Kubo's default local
endpoints) or ``kubo:RPC_URL[,GATEWAY_URL]``. Commands that write create the
directory if needed; commands that only read require an existing store. A
root is a CID, or ``ref:NAME`` for a ref kept in a local store.

Roots and option combinations are checked before any store is opened or any
data is read (:func:`parse_root`, :func:`require_local`), so a mistake never
costs an upload. Store classes are imported when a store is opened, not when
the command line is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from py_hamt.errors import IntegrityError, InvalidArgumentError, one_line

if TYPE_CHECKING:
    from multiformats import CID

    from py_hamt.cas.base import ContentAddressedStore

__all__ = [
    "STORE_HELP",
    "Root",
    "check_ref_name",
    "check_root_store",
    "close_store",
    "is_local",
    "open_store",
    "parse_root",
    "require_local",
    "resolve_root",
    "set_ref",
]

STORE_HELP = "a directory (local store), 'kubo', or 'kubo:RPC_URL[,GATEWAY_URL]'"


def is_local(spec: str) -> bool:
    """Whether ``spec`` names a local store (a directory) rather than Kubo."""
    return not (spec == "kubo" or spec.startswith("kubo:"))


def require_local(spec: str, what: str) -> None:
    """Raise unless ``spec`` is a local store; ``what`` is the option that needs one."""
    if not is_local(spec):
        raise InvalidArgumentError(f"{what} needs a local store (a directory), not {spec!r}")


def open_store(
    spec: str, *, timeout: float = 30.0, create: bool = True, cleanup: bool | None = None
) -> ContentAddressedStore:
    """The store ``spec`` names (see the module docstring).

    With ``create=False`` a local store must already exist: nothing is
    created, and the error names the directory. ``cleanup`` (default: the
    same as ``create``) removes temporary files that dead writers left in a
    local store; commands that only read leave the store as it is.
    """
    if not spec.strip():
        raise InvalidArgumentError("the store is empty: give a directory or 'kubo'")
    if not is_local(spec):
        from py_hamt.cas.kubo import KuboCAS

        urls = spec[5:].split(",") if spec.startswith("kubo:") else []
        rpc = urls[0] if urls and urls[0] else None
        gateway = urls[1] if len(urls) > 1 and urls[1] else None
        return KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway, timeout=timeout)
    from py_hamt.cas.local import LocalCAS

    path = Path(spec)
    if not create:
        if not path.is_dir():
            raise InvalidArgumentError(f"no store at {spec}: the directory does not exist")
        if not (path / "blocks").is_dir():
            raise InvalidArgumentError(f"{spec} is not a py-hamt store: it has no blocks/ folder")
    cas = LocalCAS(path)
    if create if cleanup is None else cleanup:
        cas.cleanup()
    return cas


async def close_store(cas: ContentAddressedStore) -> None:
    """Close a store's network clients (a no-op for local stores)."""
    from py_hamt.cas.kubo import KuboCAS

    if isinstance(cas, KuboCAS):
        await cas.aclose()


@dataclass(frozen=True)
class Root:
    """A root argument, parsed: a CID, or the name of a ref in a local store."""

    text: str
    cid: CID | None = None
    ref: str | None = None


def parse_root(text: str, what: str = "root") -> Root:
    """Parse a root argument up front; the error names it (and ``what`` it is).

    Raises:
        InvalidArgumentError: neither CID text nor ``ref:NAME``.
    """
    if text.startswith("ref:"):
        if not text[4:]:
            raise InvalidArgumentError(f"{what} {text!r} names no ref: write ref:NAME")
        return Root(text, ref=text[4:])
    from py_hamt.codec.cids import cid_from_text

    try:
        return Root(text, cid=cid_from_text(text))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        # multiformats raises any of these for malformed text (IndexError for "b").
        raise InvalidArgumentError(f"not a CID: {text!r} ({one_line(exc)})") from exc


def check_root_store(root: Root, spec: str, option: str = "--store") -> None:
    """A ``ref:NAME`` root needs a local store; raise before any work if not."""
    if root.ref is not None and not is_local(spec):
        raise InvalidArgumentError(
            f"{root.text!r}: refs live in local stores, not {option} {spec!r}"
        )


async def check_ref_name(cas: ContentAddressedStore, name: str) -> None:
    """Raise now if ref ``name`` of ``cas`` could not be set (before a long
    job would end by failing to set it). Nothing is read or written.

    The ref's current content does not matter: a ref that is damaged (its
    file does not hold a CID) is replaced by :meth:`LocalCAS.set_ref` like
    any other; only reading a damaged ref is an error.

    Raises:
        InvalidArgumentError: ``cas`` is not a local store, or ``name`` is
            not a valid ref name.
        IntegrityError: a directory sits where the ref's file goes (which
            ``set_ref`` cannot replace).
    """
    from py_hamt.cas.local import LocalCAS

    if not isinstance(cas, LocalCAS):
        raise InvalidArgumentError(f"ref {name!r} needs a local store, not {cas!r}")
    path = cas._ref_path(name)  # checks the name
    if path.is_dir():
        raise IntegrityError(f"cannot write ref {name!r}: {path} is a directory")


async def set_ref(cas: ContentAddressedStore, name: str, cid: CID) -> None:
    """Point ref ``name`` of the local store ``cas`` at ``cid``."""
    from py_hamt.cas.local import LocalCAS

    if not isinstance(cas, LocalCAS):
        raise InvalidArgumentError(f"ref {name!r} needs a local store, not {cas!r}")
    await cas.set_ref(name, cid)


async def resolve_root(cas: ContentAddressedStore, root: Root) -> CID:
    """The CID ``root`` stands for in ``cas`` (looking a ref up)."""
    if root.cid is not None:
        return root.cid
    from py_hamt.cas.local import LocalCAS

    name = root.ref or ""
    if not isinstance(cas, LocalCAS):
        raise InvalidArgumentError(f"{root.text!r}: refs live in local stores, not {cas!r}")
    cid = await cas.get_ref(name)
    if cid is None:
        raise InvalidArgumentError(f"no ref {name!r} in {cas.path}")
    return cid
