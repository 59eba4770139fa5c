"""The ``py-hamt`` console command."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import warnings
from collections.abc import Sequence

from py_hamt import PyHamtError, __version__
from py_hamt.cli import car, copy, demo, info, publish
from py_hamt.errors import one_line

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="py-hamt", description="Zarr datasets in a content-addressed HAMT."
    )
    parser.add_argument("--version", action="version", version=f"py-hamt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, publish, info, car, copy):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; errors print one line to stderr and exit non-zero."""
    args = build_parser().parse_args(argv)
    # xarray writes consolidated metadata (fewer reads when opening over
    # IPFS); zarr warns that it is not in the v3 spec on every write.
    warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
    try:
        result = args.func(args)
        code: int = asyncio.run(result) if inspect.iscoroutine(result) else result
    except (PyHamtError, OSError, ValueError, KeyError, TypeError) as exc:
        print(f"py-hamt {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"py-hamt {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


def console() -> None:
    """Entry point of the ``py-hamt`` script."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console()
