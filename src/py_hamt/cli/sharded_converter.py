"""``sharded-converter``: turn a HAMT dataset into a sharded one."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from py_hamt.cas.kubo import DEFAULT_GATEWAY_URL, DEFAULT_RPC_URL, KuboCAS
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.cli.stores import STORE_HELP, close_store, open_store, resolve_root
from py_hamt.errors import PyHamtError, one_line
from py_hamt.jobs.convert import convert_hamt_to_sharded

__all__ = ["console", "main", "sharded_converter_cli"]

DEFAULT_CHUNKS_PER_SHARD = 6250


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
        type=int,
        default=DEFAULT_CHUNKS_PER_SHARD,
        help=f"chunk CIDs per shard (default {DEFAULT_CHUNKS_PER_SHARD})",
    )
    p.add_argument(
        "--rpc-url", default=DEFAULT_RPC_URL, help=f"Kubo RPC (default {DEFAULT_RPC_URL})"
    )
    p.add_argument(
        "--gateway-url",
        default=DEFAULT_GATEWAY_URL,
        help=f"gateway for reads (default {DEFAULT_GATEWAY_URL})",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument(
        "--store",
        help=f"convert in this store instead of the Kubo node: {STORE_HELP} "
        "(a local directory works offline)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


async def _run(args: argparse.Namespace) -> str:
    bar = None if args.quiet else ProgressBar("converting")
    cas = (
        open_store(args.store, timeout=args.timeout)
        if args.store
        else KuboCAS(
            rpc_base_url=args.rpc_url, gateway_base_url=args.gateway_url, timeout=args.timeout
        )
    )
    try:
        root = await resolve_root(cas, args.hamt_cid)
        return await convert_hamt_to_sharded(cas, root, args.chunks_per_shard, progress=bar)
    finally:
        if bar is not None:
            bar.close()
        await close_store(cas)


def main(argv: Sequence[str] | None = None) -> int:
    """Convert; print the root CID (stdout) or a one-line error (stderr)."""
    args = build_parser().parse_args(argv)
    try:
        root = asyncio.run(_run(args))
    except (PyHamtError, OSError, ValueError, KeyError) as exc:
        print(f"sharded-converter: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sharded-converter: interrupted; nothing was published", file=sys.stderr)
        return 130
    print(root)
    return 0


def console() -> None:
    """Entry point of the ``sharded-converter`` script."""
    sys.exit(main())


sharded_converter_cli = console


if __name__ == "__main__":  # pragma: no cover
    console()
