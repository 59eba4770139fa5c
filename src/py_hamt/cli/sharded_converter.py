"""``sharded-converter``: turn a HAMT dataset into a sharded one."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from py_hamt.cli import verbose
from py_hamt.cli.errors import handle_errors
from py_hamt.cli.options import Parser, positive_float, positive_int
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import (
    STORE_HELP,
    check_root_store,
    close_store,
    open_store,
    parse_root,
    resolve_root,
)
from py_hamt.errors import InvalidArgumentError

__all__ = ["console", "main", "sharded_converter_cli"]

DEFAULT_CHUNKS_PER_SHARD = 6250


def build_parser() -> argparse.ArgumentParser:
    from py_hamt.cas.kubo import DEFAULT_GATEWAY_URL, DEFAULT_RPC_URL

    p = Parser(
        prog="sharded-converter",
        description=(
            "Convert a ZarrHAMTStore dataset into a ShardedZarrStore by pointer (no chunk "
            "bytes are re-uploaded) and print the new root CID."
        ),
    )
    p.add_argument(
        "hamt_cid", metavar="HAMT_CID", help="root CID of the HAMT dataset (or ref:NAME)"
    )
    p.add_argument(
        "--chunks-per-shard",
        type=positive_int,
        default=DEFAULT_CHUNKS_PER_SHARD,
        help=f"chunk CIDs per shard, >= 1 (default {DEFAULT_CHUNKS_PER_SHARD})",
    )
    p.add_argument("--rpc-url", help=f"Kubo RPC (default {DEFAULT_RPC_URL})")
    p.add_argument("--gateway-url", help=f"gateway for reads (default {DEFAULT_GATEWAY_URL})")
    p.add_argument(
        "--timeout", type=positive_float, default=30.0, help="seconds per request (default 30)"
    )
    p.add_argument(
        "--store",
        help=f"convert in this store instead of the Kubo node: {STORE_HELP} "
        "(a local directory works offline)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--verbose", action="store_true", help="print py_hamt's counters and latencies at the end"
    )
    return p


async def _run(args: argparse.Namespace) -> int:
    from py_hamt.cas.kubo import KuboCAS
    from py_hamt.jobs.convert import convert_hamt_to_sharded

    # Checked before anything is opened or read.
    wanted = parse_root(args.hamt_cid, "HAMT_CID")
    if args.store is not None:
        if args.rpc_url is not None or args.gateway_url is not None:
            raise InvalidArgumentError(
                "--rpc-url and --gateway-url name the Kubo node; with --store they would be "
                "ignored (use --store kubo:RPC_URL,GATEWAY_URL)"
            )
        check_root_store(wanted, args.store)
    elif wanted.ref is not None:
        raise InvalidArgumentError(f"{wanted.text!r}: refs live in local stores; give --store DIR")
    bar = None if args.quiet else ProgressBar("converting")
    cas = (
        # The HAMT is read from the store: it must exist (the new root is written there too).
        open_store(args.store, timeout=args.timeout, create=False, cleanup=True)
        if args.store is not None
        else KuboCAS(
            rpc_base_url=args.rpc_url, gateway_base_url=args.gateway_url, timeout=args.timeout
        )
    )
    try:
        root = await resolve_root(cas, wanted)
        try:
            new_root = await convert_hamt_to_sharded(cas, root, args.chunks_per_shard, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        # Committed: the root is printed before anything else can fail.
        print(new_root, flush=True)
    finally:
        await close_store(cas)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Convert; print the root CID (stdout) or a one-line error (stderr)."""

    def run() -> int:
        args = build_parser().parse_args(argv)
        if args.verbose:
            verbose.start()
        try:
            code: int = asyncio.run(_run(args))
        finally:
            if args.verbose:
                verbose.report()
        return code

    return handle_errors("sharded-converter", run, interrupted="interrupted; nothing was published")


def console() -> None:
    """Entry point of the ``sharded-converter`` script."""
    sys.exit(main())


sharded_converter_cli = console


if __name__ == "__main__":  # pragma: no cover
    console()
