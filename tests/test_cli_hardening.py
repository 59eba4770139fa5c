"""The CLI's hardening: bad numbers, option combinations, one-line errors,
no leftovers or side effects, lazy imports, one error handler.

Most tests run ``main([...])`` in this process. A few need a process of
their own: what an interpreter prints while it shuts down (a full disk),
a signal (Ctrl-C) and a closed pipe.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from py_hamt import HAMT, InMemoryCAS, LocalCAS, PyHamtError
from py_hamt.cli import sharded_converter
from py_hamt.cli.errors import handle_errors
from py_hamt.cli.main import main
from py_hamt.cli.progress_bar import ProgressBar
from py_hamt.datasets import climate_dataset
from py_hamt.errors import InvalidArgumentError, InvalidTypeError
from py_hamt.jobs.progress import Progress
from py_hamt.jobs.publish import DEFAULT_CHUNK_BYTES, auto_chunks, publish_dataset

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("py-hamt"))
SMALL = {"n_time": 24, "n_lat": 9, "n_lon": 18}


PROGRESS = re.compile(r"^[a-z]+ (\[[#-]+\] +\d+% )?\d+(/\d+)? \w+$")


def one_line(err: str) -> str:
    """The single line of ``err`` besides progress bars (failing the test if
    there are more)."""
    lines = [line for line in err.splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, err
    return lines[0]


def python(script: str, *args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (with this checkout's package)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=cwd,
        text=True,
        timeout=300,
        **kwargs,
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A local store holding a small published dataset (ref ``main``), and its root."""
    folder = tmp_path_factory.mktemp("published")
    climate_dataset(**SMALL).to_netcdf(folder / "in.nc", engine="h5netcdf")

    async def write() -> str:
        cas = LocalCAS(folder / "store")
        with xr.open_dataset(folder / "in.nc", engine="h5netcdf") as ds:
            done = await publish_dataset(cas, ds)
        await cas.set_ref("main", done.root_cid)
        return str(done.root_cid)

    return folder, asyncio.run(write())


# ------------------------------------------- 8. numbers are checked at parse time
@pytest.mark.parametrize(
    ("command", "args", "option"),
    [
        (main, ["publish", "in.nc", "--store", "st", "--chunk-kib", "0"], "--chunk-kib"),
        (main, ["publish", "in.nc", "--store", "st", "--chunk-kib", "-1"], "--chunk-kib"),
        (main, ["publish", "in.nc", "--store", "st", "--chunk-kib", "1.5"], "--chunk-kib"),
        (
            main,
            ["publish", "in.nc", "--store", "st", "--layout", "sharded", "--chunks-per-shard", "0"],
            "--chunks-per-shard",
        ),
        (main, ["demo", "--dir", "d", "--time", "-3"], "--time"),
        (main, ["demo", "--dir", "d", "--lat", "0"], "--lat"),
        (main, ["demo", "--dir", "d", "--lon", "x"], "--lon"),
        (sharded_converter.main, ["ref:x", "--store", "st", "--timeout", "0"], "--timeout"),
        (sharded_converter.main, ["ref:x", "--store", "st", "--timeout", "-2"], "--timeout"),
        (sharded_converter.main, ["ref:x", "--store", "st", "--timeout", "nan"], "--timeout"),
        (sharded_converter.main, ["ref:x", "--store", "st", "--timeout", "inf"], "--timeout"),
        (
            sharded_converter.main,
            ["ref:x", "--store", "st", "--chunks-per-shard", "0"],
            "--chunks-per-shard",
        ),
    ],
)
def test_bad_numbers_are_usage_errors_before_any_work(
    command: Callable[[list[str]], int],
    args: list[str],
    option: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        command(args)
    assert exit_info.value.code == 2
    assert re.search(rf"error: argument {option}: .*got", one_line(capsys.readouterr().err))
    assert list(tmp_path.iterdir()) == []  # nothing was created


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target_chunk_bytes": 0}, InvalidArgumentError, "target_chunk_bytes must be an int >= 1"),
        ({"target_chunk_bytes": -1024}, InvalidArgumentError, "target_chunk_bytes must be"),
        ({"target_chunk_bytes": 1.5}, InvalidTypeError, "target_chunk_bytes must be an int"),
        ({"chunks_per_shard": 0}, InvalidArgumentError, "chunks_per_shard must be an int >= 1"),
        ({"chunks_per_shard": True}, InvalidTypeError, "chunks_per_shard must be an int"),
        ({"chunks": {"temperature": (0, 1, 1)}}, InvalidArgumentError, "must be 3 ints >= 1"),
        ({"chunks": {"nope": (1,)}}, InvalidArgumentError, "names no array variable"),
    ],
)
async def test_publish_dataset_checks_its_numbers_before_writing(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    cas = InMemoryCAS()
    with pytest.raises(error, match=message):
        await publish_dataset(cas, climate_dataset(n_time=4, n_lat=3, n_lon=5), **kwargs)
    assert not cas.store  # nothing written


def test_auto_chunks_rejects_a_target_below_one_byte() -> None:
    with pytest.raises(InvalidArgumentError, match="target must be an int >= 1, got 0"):
        auto_chunks((100, 100), 8, 0)
    assert auto_chunks((100, 100), 8, 8 * 50 * 100) == (50, 100)


def test_cli_default_chunk_size_is_the_library_default() -> None:
    from py_hamt.cli import publish

    assert publish.DEFAULT_CHUNK_KIB * 1024 == DEFAULT_CHUNK_BYTES


# ------------------------------------ 9. combinations are checked before any work
@pytest.fixture
def no_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("publish_dataset ran although the command line was wrong")

    monkeypatch.setattr("py_hamt.jobs.publish.publish_dataset", refuse)


@pytest.mark.usefixtures("no_publish")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--store", "kubo:http://127.0.0.1:9", "--ref", "x"], "--ref needs a local store"),
        (["--store", "st", "--chunks-per-shard", "8"], "--chunks-per-shard applies to"),
        (["--store", "st", "--ref", "not/a/name"], "ref names are"),
    ],
)
def test_publish_checks_option_combinations_first(
    published: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["publish", str(published[0] / "in.nc"), *extra]) == 1
    out, err = capsys.readouterr()
    assert message in one_line(err)
    assert out == ""
    st = tmp_path / "st"
    assert not st.exists() or LocalCAS(st).block_files() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["copy", "ref:main", "--to", "kubo:http://127.0.0.1:9", "--ref", "x"], "--ref needs"),
        (["car", "import", "IN.car", "--store", "kubo:http://127.0.0.1:9", "--ref", "x"], "--ref"),
    ],
)
def test_copy_and_import_check_ref_before_moving_blocks(
    published: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    folder, root = published
    car = tmp_path / "in.car"
    assert main(["car", "export", root, str(car), "--store", str(folder / "store")]) == 0
    capsys.readouterr()
    args = [str(car) if a == "IN.car" else a for a in args]
    if args[0] == "copy":
        args += ["--from", str(folder / "store")]
    assert main(args) == 1
    err = one_line(capsys.readouterr().err)
    assert message in err
    assert "connect" not in err  # the node was never asked


def test_the_root_is_printed_even_when_setting_the_ref_fails(
    published: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def no_refs(self: LocalCAS, name: str, root: object) -> None:
        raise OSError(errno.EACCES, "Permission denied", str(self.path / "refs" / name))

    monkeypatch.setattr(LocalCAS, "set_ref", no_refs)
    source = str(published[0] / "in.nc")
    assert main(["publish", source, "--store", str(tmp_path / "st"), "--ref", "x"]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == published[1]  # the same data, the same root
    assert "Permission denied" in one_line(err)


# ------------------------------------------------ 10. one line, never a traceback
@pytest.mark.parametrize(
    "args",
    [
        ["info", "b", "--store", "STORE"],
        ["car", "export", "b", "x.car", "--store", "STORE"],
        ["copy", "b", "--from", "STORE", "--to", "other"],
        ["info", "ref:", "--store", "STORE"],
    ],
)
def test_bad_cid_text_is_one_line_naming_it(
    published: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    store = str(published[0] / "store")
    assert main([store if a == "STORE" else a for a in args]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"py-hamt {args[0]}: error: ")
    assert "'b'" in err or "'ref:'" in err
    assert list(tmp_path.iterdir()) == []


def test_sharded_converter_bad_cid_text_is_one_line(
    published: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sharded_converter.main(["b", "--store", str(published[0] / "store"), "--quiet"]) == 1
    assert "not a CID: 'b'" in one_line(capsys.readouterr().err)


def test_sharded_converter_checks_option_combinations_first(
    published: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(published[0] / "store")
    args = ["ref:main", "--store", store, "--rpc-url", "http://127.0.0.1:9"]
    assert sharded_converter.main(args) == 1
    assert "would be ignored" in one_line(capsys.readouterr().err)
    assert sharded_converter.main(["ref:main", "--quiet"]) == 1
    assert "refs live in local stores" in one_line(capsys.readouterr().err)


CTRL_C_WHILE_IMPORTING = """
    import os, signal, sys

    class CtrlCWhileImporting:
        # A real SIGINT, sent the moment xarray starts to load: the user
        # pressing Ctrl-C while the command is still importing.
        def find_spec(self, name, path=None, target=None):
            if name == "xarray":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlCWhileImporting())
    sys.argv = ["py-hamt", *sys.argv[1:]]
    from py_hamt.cli.main import console
    console()
"""


def test_ctrl_c_while_importing_exits_130_with_one_line(
    published: tuple[Path, str], tmp_path: Path
) -> None:
    source = str(published[0] / "in.nc")
    done = python(
        CTRL_C_WHILE_IMPORTING,
        *["publish", source, "--store", "st"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert done.returncode == 130, done.stderr
    assert one_line(done.stderr) == "py-hamt publish: interrupted"


FULL_DISK = """
    import errno, sys
    from py_hamt.cas.local import LocalCAS
    from py_hamt.cli.main import main

    real_put = LocalCAS.put
    calls = 0

    async def put(self, data, codec, **kwargs):
        # The disk fills up after 40 blocks.
        global calls
        calls += 1
        if calls > 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_put(self, data, codec, **kwargs)

    LocalCAS.put = put
    sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_is_one_line_and_nothing_after_it(tmp_path: Path) -> None:
    climate_dataset(n_time=48, n_lat=45, n_lon=90).to_netcdf(tmp_path / "in.nc", engine="h5netcdf")
    # 4 KiB chunks: hundreds of them, written concurrently when the disk fills.
    args = ["publish", "in.nc", "--store", "st", "--chunk-kib", "4"]
    done = python(FULL_DISK, *args, cwd=tmp_path, capture_output=True)
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if not x.startswith("publishing ")]
    assert lines == ["py-hamt publish: error: [Errno 28] No space left on device"], done.stderr
    assert done.stderr.endswith(lines[0] + "\n")  # nothing printed after the error


def test_the_handler_turns_expected_failures_into_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail(exc: BaseException) -> Callable[[], int]:
        def body() -> int:
            raise exc

        return body

    assert handle_errors("cmd", fail(InvalidArgumentError("bad\nthing"))) == 1
    assert one_line(capsys.readouterr().err) == "cmd: error: bad thing"
    assert handle_errors("cmd", fail(FileNotFoundError(2, "No such file", "x.nc"))) == 1
    assert "x.nc" in one_line(capsys.readouterr().err)
    assert handle_errors(lambda: "cmd sub", fail(KeyboardInterrupt())) == 130
    assert one_line(capsys.readouterr().err) == "cmd sub: interrupted"
    assert handle_errors("cmd", lambda: 3) == 3
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bug", [TypeError, ValueError, KeyError, IndexError, AttributeError])
def test_bugs_keep_their_traceback_in_both_commands(
    published: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, bug: type[Exception]
) -> None:
    async def buggy(*args: object, **kwargs: object) -> None:
        raise bug("a bug")

    store = str(published[0] / "store")
    monkeypatch.setattr("py_hamt.cli.info._hamt_info", buggy)
    with pytest.raises(bug, match="a bug"):
        main(["info", "ref:main", "--store", store])
    monkeypatch.setattr("py_hamt.jobs.convert.convert_hamt_to_sharded", buggy)
    with pytest.raises(bug, match="a bug"):
        sharded_converter.main(["ref:main", "--store", store, "--quiet"])


def test_library_errors_are_one_line_in_both_commands(
    published: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise PyHamtError("the store is broken")

    store = str(published[0] / "store")
    monkeypatch.setattr("py_hamt.cli.info._hamt_info", broken)
    assert main(["info", "ref:main", "--store", store]) == 1
    assert one_line(capsys.readouterr().err) == "py-hamt info: error: the store is broken"
    monkeypatch.setattr("py_hamt.jobs.convert.convert_hamt_to_sharded", broken)
    assert sharded_converter.main(["ref:main", "--store", store, "--quiet"]) == 1
    assert one_line(capsys.readouterr().err) == "sharded-converter: error: the store is broken"


# ----------------------------------------------- 11. no leftovers, no side effects
def test_a_failed_car_export_leaves_no_file(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = published
    store = tmp_path / "store"
    assert main(["copy", root, "--from", str(folder / "store"), "--to", str(store)]) == 0
    # Lose one block of the copy: the export fails part way through.
    victim = max(LocalCAS(store).block_files(), key=lambda f: f.stat().st_size)
    victim.unlink()
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    assert main(["car", "export", root, str(out / "x.car"), "--store", str(store)]) == 1
    assert "error" in one_line(capsys.readouterr().err)
    assert list(out.iterdir()) == []  # neither x.car nor a temporary file


def test_a_car_export_that_succeeds_replaces_the_file(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = published
    car = tmp_path / "x.car"
    car.write_bytes(b"old")
    assert main(["car", "export", "ref:main", str(car), "--store", str(folder / "store")]) == 0
    assert capsys.readouterr().out.startswith(f"{root}: ")
    assert [p.name for p in tmp_path.iterdir()] == ["x.car"]
    assert main(["car", "import", str(car), "--store", str(tmp_path / "other")]) == 0
    assert capsys.readouterr().out.strip() == root


@pytest.mark.parametrize(
    "args",
    [
        ["info", "ROOT", "--store", "nosuchdir"],
        ["car", "export", "ROOT", "x.car", "--store", "nosuchdir"],
        ["copy", "ROOT", "--from", "nosuchdir", "--to", "other"],
    ],
)
def test_read_only_commands_do_not_create_a_store(
    published: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([published[1] if a == "ROOT" else a for a in args]) == 1
    assert "no store at nosuchdir" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "plain").mkdir()  # a folder that is not a store stays untouched
    assert main(["info", published[1], "--store", "plain"]) == 1
    assert "plain is not a py-hamt store" in one_line(capsys.readouterr().err)
    assert list((tmp_path / "plain").iterdir()) == []


def test_sharded_converter_needs_an_existing_store(
    published: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sharded_converter.main([published[1], "--store", "nosuchdir", "--quiet"]) == 1
    assert "no store at nosuchdir" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_closed_stdout_pipe_is_quiet(published: tuple[Path, str], tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: `| head -0`
    try:
        done = subprocess.run(
            [EXE, "info", "ref:main", "--json", "--store", str(published[0] / "store")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_publish_progress_never_passes_its_total(published: tuple[Path, str]) -> None:
    seen: list[Progress] = []

    async def write() -> tuple[int, int]:
        cas = InMemoryCAS()
        with xr.open_dataset(published[0] / "in.nc", engine="h5netcdf") as ds:
            done = await publish_dataset(cas, ds, progress=seen.append)
        assert done.root is not None
        hamt = await HAMT.build(
            cas=cas, root_node_id=done.root.id, read_only=True, values_are_bytes=True
        )
        return done.keys, len([k async for k in hamt.keys()])

    keys, stored = asyncio.run(write())
    # zarr rewrites each zarr.json once it knows its attributes: a key written
    # twice is still one key, so the plan holds from first report to last.
    assert keys == stored == 13
    assert {p.total for p in seen} == {13}
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == 13


def test_progress_bar_draws_the_end_once_and_never_past_the_total() -> None:
    stream = io.StringIO()
    bar = ProgressBar("job", stream=stream)
    for done in (1, 2, 3, 3, 3):
        bar(Progress(done, 3))
    bar(Progress(5, 3))  # a job that found more work than it reported
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [
        "job [##########--------------------]  33% 1/3 keys",
        "job [####################----------]  66% 2/3 keys",
        "job [##############################] 100% 3/3 keys",
    ]
    assert lines[3:] == ["job [##############################] 100% 5/5 keys"]


def test_progress_bar_logs_unknown_totals_sparsely_and_ends_with_the_last() -> None:
    stream = io.StringIO()
    bar = ProgressBar("copying", stream=stream)
    for done in range(1, 101):
        bar(Progress(done, None, "blocks"))
    bar.close()
    counts = [int(line.split()[1]) for line in stream.getvalue().splitlines()]
    assert counts == [1, 2, 4, 8, 16, 32, 64, 100]
    assert len(counts) <= 2 + math.log2(100)


def test_cli_publish_shows_each_tenth_once(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(published[0] / "in.nc"), "--store", str(tmp_path / "st")]) == 0
    err = capsys.readouterr().err
    counts = re.findall(r"(\d+)/(\d+) keys", err)
    assert {total for _, total in counts} == {"13"}  # the plan, kept: 6 arrays, 6 chunks, 1 group
    assert all(int(done) <= 13 for done, _ in counts)
    assert err.count("100%") == 1


# ---------------------------------------------------- 12. --help imports little
HEAVY = ("xarray", "dask", "pandas", "h5netcdf", "h5py")
LIGHT_ONLY = ("zarr", "numpy", "httpx")


def test_help_and_usage_errors_import_no_heavy_library(tmp_path: Path) -> None:
    done = python(
        f"""
        import contextlib, io, json, sys
        from py_hamt.cli import main, sharded_converter
        runs = [
            (main.main, ["--help"]),
            *((main.main, [c, "--help"]) for c in ("demo", "publish", "info", "car", "copy")),
            (main.main, ["publish", "x.nc", "--store", "st", "--chunk-kib", "0"]),
            (sharded_converter.main, ["--help"]),
        ]
        quiet = io.StringIO()
        after_py_hamt = None
        for run, argv in runs:
            if run is sharded_converter.main and after_py_hamt is None:
                after_py_hamt = [m for m in {LIGHT_ONLY!r} if m in sys.modules]
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                try:
                    run(argv)
                except SystemExit:
                    pass
        print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], after_py_hamt]))
        """,
        cwd=tmp_path,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    heavy, after_py_hamt = json.loads(done.stdout)
    assert heavy == []
    # ``py-hamt`` (import, --help, usage errors) does not even load zarr,
    # numpy or httpx: ``py_hamt`` exports its names lazily.
    assert after_py_hamt == []


def test_the_console_command_installs_its_handler_before_any_heavy_import(
    tmp_path: Path,
) -> None:
    done = python(
        f"""
        import json, sys
        import py_hamt.cli.main, py_hamt.cli.sharded_converter
        print(json.dumps([m for m in {LIGHT_ONLY + HEAVY!r} if m in sys.modules]))
        """,
        cwd=tmp_path,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# ------------------------------------------- 13. info names the right failure
def _odd_roots(store: Path) -> dict[str, str]:
    """Roots that read neither as a HAMT nor as a sharded dataset."""
    import dag_cbor

    from py_hamt.codec.node import NODE_WIDTH, Entry, Link, encode_node

    async def save() -> dict[str, str]:
        cas = LocalCAS(store)
        junk = await cas.save(dag_cbor.encode({"not": "a node"}), "dag-cbor")
        slots: list[Entry] = [None] * NODE_WIDTH
        slots[3] = Link(junk)
        roots = {
            "junk": junk,
            "hamt": await cas.save(encode_node(slots), "dag-cbor"),
            "sharded": await cas.save(
                dag_cbor.encode({"manifest_version": "sharded_zarr_v2", "chunks": 3}), "dag-cbor"
            ),
            "map": await cas.save(dag_cbor.encode({"hello": 1}), "dag-cbor"),
            "raw": await cas.save(b"\xff\x00 plain bytes", "raw"),
        }
        return {k: str(v) for k, v in roots.items()}

    return asyncio.run(save())


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # a HAMT root with a damaged child: the HAMT's error, naming the child
        ("hamt", r"block JUNK is not a valid HAMT node"),
        # a sharded root that is malformed: the sharded reader's error
        ("sharded", r"block ROOT is not a sharded Zarr root"),
        ("map", r"root ROOT is neither a HAMT nor a sharded root"),
        ("raw", r"root ROOT is neither a HAMT nor a sharded root"),
    ],
)
def test_info_reports_the_failure_of_the_layout_the_root_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, expected: str
) -> None:
    roots = _odd_roots(tmp_path / "st")
    assert main(["info", roots[kind], "--store", str(tmp_path / "st")]) == 1
    err = one_line(capsys.readouterr().err)
    pattern = expected.replace("JUNK", roots["junk"]).replace("ROOT", roots[kind])
    assert re.search(f"^py-hamt info: error: {pattern}", err), err


# ------------------------------------------------- 14. a damaged ref can be reset
def _damage_ref(store: Path, name: str) -> None:
    LocalCAS(store)  # creates the store's folders
    (store / "refs" / name).write_text("not a CID at all")


def test_ref_over_a_damaged_ref_replaces_it(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = published
    st = tmp_path / "st"
    _damage_ref(st, "x")
    assert main(["info", "ref:x", "--store", str(st)]) == 1  # reading it is an error
    assert "ref 'x' is damaged" in one_line(capsys.readouterr().err)
    assert main(["copy", root, "--from", str(folder / "store"), "--to", str(st), "--ref", "x"]) == 0
    capsys.readouterr()
    assert str(asyncio.run(LocalCAS(st).get_ref("x"))) == root


def test_publish_ref_over_a_damaged_ref_replaces_it(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = published
    st = tmp_path / "st"
    _damage_ref(st, "main")
    assert main(["publish", str(folder / "in.nc"), "--store", str(st), "--ref", "main"]) == 0
    assert capsys.readouterr().out.strip() == root
    assert str(asyncio.run(LocalCAS(st).get_ref("main"))) == root


def test_ref_over_a_directory_fails_before_any_block_moves(
    published: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, root = published
    st = tmp_path / "st"
    LocalCAS(st)
    (st / "refs" / "x").mkdir()
    assert main(["copy", root, "--from", str(folder / "store"), "--to", str(st), "--ref", "x"]) == 1
    err = one_line(capsys.readouterr().err)
    assert re.search(r"cannot write ref 'x': .* is a directory$", err), err
    assert LocalCAS(st).block_files() == []


# ------------------------------------------------------------------- tooling
def test_lint_and_type_tools_are_pinned_by_range() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    test_extra = project["project"]["optional-dependencies"]["test"]
    pins = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0]: r for r in test_extra}
    for tool in ("ruff", "mypy"):
        assert "<" in pins[tool], f"{tool} needs an upper bound: {pins[tool]}"
    ci = (ROOT / ".ci" / "run").read_text()
    for step in ("ruff check", "ruff format --check", "mypy"):
        assert step in ci
