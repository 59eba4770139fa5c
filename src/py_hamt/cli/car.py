"""``py-hamt car export|import``."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
from pathlib import Path

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
from py_hamt.errors import CARFormatError, InvalidArgumentError, one_line

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("car", help="export a dataset to a CAR v1 file, or import one")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    ex = verbs.add_parser(
        "export",
        help="write the DAG under ROOT to FILE",
        description="Writes the DAG under ROOT to FILE, verifying every block. FILE appears "
        "only when it is complete: a failed export leaves no file behind.",
    )
    ex.add_argument("root", help="a root CID, or ref:NAME in a local store")
    ex.add_argument("file", type=Path)
    ex.add_argument("--store", required=True, help=f"where the dataset is: {STORE_HELP}")
    ex.set_defaults(func=run_export)
    im = verbs.add_parser("import", help="load FILE into a store, verifying every block")
    im.add_argument("file", type=Path)
    im.add_argument("--store", required=True, help=f"where to load it: {STORE_HELP}")
    im.add_argument("--ref", help="in a local store, point this ref at the CAR's root")
    im.set_defaults(func=run_import)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writable_folder(target: Path) -> Path:
    """The folder ``target`` goes in; raise now if it cannot be written there."""
    folder = target.parent
    if not folder.is_dir():
        raise InvalidArgumentError(f"cannot write {target}: folder {folder} does not exist")
    if target.is_dir():
        raise InvalidArgumentError(f"cannot write {target}: it is a directory")
    return folder


async def run_export(args: argparse.Namespace) -> int:
    from py_hamt.jobs.car import export_car

    wanted = parse_root(args.root)
    check_root_store(wanted, args.store)
    target: Path = args.file
    folder = _writable_folder(target)
    cas = open_store(args.store, create=False)
    bar = ProgressBar("exporting")
    # The CAR goes to a temporary file beside FILE, is flushed to disk, and is
    # renamed to FILE only when complete; on any failure the temporary file goes.
    temp = folder / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        root = await resolve_root(cas, wanted)
        with open(temp, "xb") as out:  # noqa: ASYNC230 - export_car writes it synchronously too
            done = await export_car(cas, root, out, progress=bar)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    finally:
        bar.close()
        await close_store(cas)
    print(f"{done.root_cid}: {done.blocks} blocks, {done.bytes} bytes -> {target}")
    return 0


def _car_roots(path: Path) -> int:
    """How many roots the CAR file's header names (read before importing)."""
    from py_hamt.codec.car import CARReader

    with open(path, "rb") as stream:
        try:
            return len(CARReader(stream).roots)
        except CARFormatError as exc:
            raise CARFormatError(f"{path}: {one_line(exc)}") from exc


async def run_import(args: argparse.Namespace) -> int:
    from py_hamt.jobs.car import import_car

    if args.ref is not None:
        require_local(args.store, "--ref")
        roots = _car_roots(args.file)
        if roots != 1:
            raise InvalidArgumentError(f"--ref needs a CAR with one root; {args.file} has {roots}")
    cas = open_store(args.store)
    try:
        if args.ref is not None:
            await check_ref_name(cas, args.ref)
        bar = ProgressBar("importing")
        try:
            done = await import_car(cas, args.file, progress=bar)
        finally:
            bar.close()
        # Imported: the roots are printed before anything else can fail.
        for root in done.roots:
            print(root, flush=True)
        if args.ref is not None:
            await set_ref(cas, args.ref, done.roots[0])
    finally:
        await close_store(cas)
    return 0
