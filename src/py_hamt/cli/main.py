"""The ``py-hamt`` console command.

Building the parser imports no heavy library (xarray, zarr, dask): each
subcommand imports what it needs inside its run function, so ``--help`` and
usage errors are quick, and a Ctrl-C while those load is handled like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import warnings
from collections.abc import Sequence

from py_hamt import __version__
from py_hamt.cli import car, copy, demo, fsck, info, publish, verbose
from py_hamt.cli.errors import handle_errors
from py_hamt.cli.options import Parser

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="py-hamt", description="Zarr datasets in a content-addressed HAMT.")
    parser.add_argument("--version", action="version", version=f"py-hamt {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="print py_hamt's counters and latencies at the end"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, publish, info, car, copy, fsck):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; errors print one line to stderr and exit non-zero
    (see :mod:`py_hamt.cli.errors`); usage errors exit 2 (``SystemExit``)."""
    prog = "py-hamt"

    def run() -> int:
        nonlocal prog
        args = build_parser().parse_args(argv)
        prog = f"py-hamt {args.command}"
        # xarray writes consolidated metadata (fewer reads when opening over
        # IPFS); zarr warns that it is not in the v3 spec on every write.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        if args.verbose:
            verbose.start()
        try:
            result = args.func(args)
            code: int = asyncio.run(result) if inspect.iscoroutine(result) else result
        finally:
            if args.verbose:
                verbose.report()
        return code

    return handle_errors(lambda: prog, run)


def console() -> None:
    """Entry point of the ``py-hamt`` script."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console()
