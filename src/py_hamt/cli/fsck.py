"""``py-hamt fsck``: check that every block under some roots is present and
matches its CID.

Prints one line per bad block (``corrupt CID: reason``, ``missing CID: ...``,
``malformed CID: ...``) and per damaged ref (``damaged ref NAME: reason``),
then a summary. Exit 0 when everything checked is sound, 1 otherwise (and 1,
with one error line, when the check itself cannot run).
"""

from __future__ import annotations

import argparse

from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import (
    STORE_HELP,
    check_root_store,
    close_store,
    open_store,
    parse_root,
    resolve_root,
)
from py_hamt.errors import InvalidArgumentError, one_line

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fsck",
        help="check that the blocks under ROOTs (default: every ref) are present and intact",
    )
    p.add_argument(
        "roots",
        nargs="*",
        metavar="ROOT",
        help="a root CID, or ref:NAME in a local store (none: every ref in the store)",
    )
    p.add_argument("--store", required=True, help=f"the store to check: {STORE_HELP}")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from py_hamt.cas.local import LocalCAS
    from py_hamt.jobs.fsck import fsck

    roots = [parse_root(text) for text in args.roots]
    for root in roots:
        check_root_store(root, args.store)
    cas = open_store(args.store, create=False)
    bar = ProgressBar("checking")
    bad_refs: dict[str, str] = {}
    try:
        if roots:
            cids = [await resolve_root(cas, root) for root in roots]
        elif isinstance(cas, LocalCAS):
            cids = list(dict.fromkeys(cas.refs().values()))
            bad_refs = {name: one_line(exc) for name, exc in cas.damaged_refs().items()}
        else:
            raise InvalidArgumentError(
                f"give the ROOTs to check: {args.store!r} is not a local store with refs"
            )
        done = await fsck(cas, cids, progress=bar)
    finally:
        bar.close()
        await close_store(cas)
    for name, reason in bad_refs.items():
        print(f"damaged ref {name}: {reason}")
    for kind, cids_found in (
        ("corrupt", done.corrupt),
        ("missing", done.missing),
        ("malformed", done.malformed),
    ):
        for cid in cids_found:
            print(f"{kind} {cid}: {done.problems.get(cid, kind)}")
    if not cids and not bad_refs:
        print(f"nothing to check: no refs in {args.store}")
        return 0
    print(
        f"{done.checked} blocks checked under {len(cids)} roots: {len(done.corrupt)} corrupt, "
        f"{len(done.missing)} missing, {len(done.malformed)} malformed"
        + (f", {len(bad_refs)} damaged refs" if bad_refs else "")
    )
    return 0 if done.ok and not bad_refs else 1
