"""``py-hamt copy``: a dataset from one store to another."""

from __future__ import annotations

import argparse

from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import (
    STORE_HELP,
    check_ref_name,
    check_root_store,
    close_store,
    open_store,
    parse_root,
    require_local,
    resolve_root,
    set_ref,
)

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
    from py_hamt.jobs.copy import copy_dag

    wanted = parse_root(args.root)
    check_root_store(wanted, args.source, "--from")
    if args.ref is not None:
        require_local(args.destination, "--ref")
    source = open_store(args.source, create=False)
    try:
        destination = open_store(args.destination)
        try:
            root = await resolve_root(source, wanted)
            if args.ref is not None:
                await check_ref_name(destination, args.ref)
            bar = ProgressBar("copying")
            try:
                done = await copy_dag(source, destination, root, progress=bar)
            finally:
                bar.close()
            # Copied, root last: say so before anything else can fail.
            print(
                f"{root}: {done.copied} blocks copied, {done.skipped} already there, "
                f"{done.bytes_copied} bytes moved",
                flush=True,
            )
            if args.ref is not None:
                await set_ref(destination, args.ref, root)
        finally:
            await close_store(destination)
    finally:
        await close_store(source)
    return 0
