"""``py-hamt copy``: a dataset from one store to another."""

from __future__ import annotations

import argparse

from py_hamt.cas.local import LocalCAS
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import STORE_HELP, close_store, open_store, resolve_root
from py_hamt.errors import InvalidArgumentError
from py_hamt.jobs.copy import copy_dag

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "copy",
        help="copy the DAG under ROOT between stores (skips what is there; resumable)",
    )
    p.add_argument("root", help="a root CID, or ref:NAME in the source (a local store)")
    p.add_argument("--from", dest="source", required=True, help=f"source: {STORE_HELP}")
    p.add_argument("--to", dest="destination", required=True, help=f"destination: {STORE_HELP}")
    p.add_argument("--ref", help="in a local destination, point this ref at the root")
    p.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    source = open_store(args.source)
    destination = open_store(args.destination)
    bar = ProgressBar("copying")
    try:
        root = await resolve_root(source, args.root)
        done = await copy_dag(source, destination, root, progress=bar)
        if args.ref:
            if not isinstance(destination, LocalCAS):
                raise InvalidArgumentError("--ref needs a local destination")
            await destination.set_ref(args.ref, root)
    finally:
        bar.close()
        await close_store(source)
        await close_store(destination)
    print(
        f"{root}: {done.copied} blocks copied, {done.skipped} already there, "
        f"{done.bytes_copied} bytes moved"
    )
    return 0
