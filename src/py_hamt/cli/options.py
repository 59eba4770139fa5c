"""What both commands share on the command line: a parser whose usage errors
are one line, and argument types that reject a bad number at parse time
(exit 2), before anything is read or written."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

__all__ = ["Parser", "positive_float", "positive_int"]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr,
    ``PROG: error: MESSAGE (see PROG --help)``, and exit 2. Subcommand
    parsers made from it are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--chunk-kib``, ``--chunks-per-shard``, sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--timeout`` in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value
