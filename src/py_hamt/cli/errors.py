"""The one error handler of both console commands (``py-hamt`` and
``sharded-converter``).

What reaches the user:

- a :class:`~py_hamt.errors.PyHamtError`, or an ``OSError`` (a file that is
  missing, a full disk): one line ``PROG: error: MESSAGE`` on stderr, exit 1;
- ``KeyboardInterrupt`` (Ctrl-C): one line ``PROG: interrupted``, exit 130;
- stdout closed by its reader (``py-hamt info ... | head -1``): nothing more
  is printed, exit 141 (128 + SIGPIPE, as a shell reports a tool killed by a
  broken pipe);
- anything else is a bug and keeps its traceback.

Usage errors (a bad option or value) are argparse's: one line, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from py_hamt.errors import PyHamtError, one_line

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_INTERRUPTED", "handle_errors"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit
    does not fail again on the closed pipe (Python's documented recipe)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing will flush to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _say(prog: str, message: str) -> None:
    with contextlib.suppress(OSError):  # stderr is gone too: the exit code is all that is left
        print(f"{prog}: {message}", file=sys.stderr, flush=True)


def handle_errors(
    prog: str | Callable[[], str],
    body: Callable[[], int],
    *,
    interrupted: str = "interrupted",
) -> int:
    """Run ``body`` and return its exit code, turning the expected failures
    into one line on stderr and an exit code (see the module docstring).

    ``prog`` names the command in messages; a callable is asked only when a
    message is printed (so it can name a subcommand parsed inside ``body``).
    Stdout is flushed before returning, so a closed pipe is noticed here.
    """
    try:
        code = body()
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (PyHamtError, OSError) as exc:
        _say(prog() if callable(prog) else prog, f"error: {one_line(exc)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say(prog() if callable(prog) else prog, interrupted)
        return EXIT_INTERRUPTED
    return code
