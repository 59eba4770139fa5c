"""``py-hamt car export|import``."""

from __future__ import annotations

import argparse
from pathlib import Path

from py_hamt.cas.local import LocalCAS
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import STORE_HELP, close_store, open_store, resolve_root
from py_hamt.errors import InvalidArgumentError
from py_hamt.jobs.car import export_car, import_car

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("car", help="export a dataset to a CAR v1 file, or import one")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    ex = verbs.add_parser("export", help="write the DAG under ROOT to FILE")
    ex.add_argument("root", help="a root CID, or ref:NAME in a local store")
    ex.add_argument("file", type=Path)
    ex.add_argument("--store", required=True, help=f"where the dataset is: {STORE_HELP}")
    ex.set_defaults(func=run_export)
    im = verbs.add_parser("import", help="load FILE into a store, verifying every block")
    im.add_argument("file", type=Path)
    im.add_argument("--store", required=True, help=f"where to load it: {STORE_HELP}")
    im.add_argument("--ref", help="in a local store, point this ref at the CAR's root")
    im.set_defaults(func=run_import)


async def run_export(args: argparse.Namespace) -> int:
    cas = open_store(args.store)
    bar = ProgressBar("exporting")
    try:
        root = await resolve_root(cas, args.root)
        done = await export_car(cas, root, args.file, progress=bar)
    finally:
        bar.close()
        await close_store(cas)
    print(f"{done.root_cid}: {done.blocks} blocks, {done.bytes} bytes -> {args.file}")
    return 0


async def run_import(args: argparse.Namespace) -> int:
    cas = open_store(args.store)
    bar = ProgressBar("importing")
    try:
        done = await import_car(cas, args.file, progress=bar)
        if args.ref:
            if not isinstance(cas, LocalCAS) or len(done.roots) != 1:
                raise InvalidArgumentError("--ref needs a local store and a CAR with one root")
            await cas.set_ref(args.ref, done.roots[0])
    finally:
        bar.close()
        await close_store(cas)
    for root in done.roots:
        print(root)
    return 0
