"""The ``py-hamt`` command, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from py_hamt import HAMT, LocalCAS, ZarrHAMTStore
from py_hamt.cli.main import main
from py_hamt.datasets import climate_dataset


def test_demo_writes_reads_back_and_prints_the_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--time", "24", "--lat", "10", "--lon", "20"]) == 0
    out = capsys.readouterr().out
    root_line = next(line for line in out.splitlines() if line.startswith("root: "))
    assert root_line.removeprefix("root: ").startswith("bafyr4i")
    assert "identical to what was written" in out


def test_demo_root_is_deterministic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    roots = []
    for n in range(2):
        main(["demo", "--dir", str(tmp_path / str(n)), "--time", "12", "--lat", "6", "--lon", "8"])
        roots.append(next(x for x in capsys.readouterr().out.splitlines() if x.startswith("root")))
    assert roots[0] == roots[1]


def test_console_script_is_installed() -> None:
    exe = shutil.which("py-hamt") or shutil.which("py-hamt", path=sys.prefix + "/bin")
    assert exe is not None, "the py-hamt console script is not on PATH"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("py-hamt ")


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


# --------------------------------------------------- the data-moving commands
def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("py-hamt"))
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_twice_reads_back_what_the_first_run_wrote(tmp_path: Path) -> None:
    first = run_cli(["demo", "--time", "24", "--lat", "9", "--lon", "18"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "an earlier run" not in first.stdout
    root = next(x for x in first.stdout.splitlines() if x.startswith("root: ")).split()[1]
    assert (tmp_path / "py-hamt-data" / "refs" / "demo").read_text() == root
    second = run_cli(["demo", "--time", "24", "--lat", "9", "--lon", "18"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"an earlier run left {root} in py-hamt-data: read back, identical" in second.stdout
    assert "wrote 0 new blocks" in second.stdout


def test_publish_info_car_and_copy(tmp_path: Path) -> None:
    ds = climate_dataset(n_time=24, n_lat=9, n_lon=18)
    ds.to_netcdf(tmp_path / "in.nc", engine="h5netcdf")
    ds.to_zarr(tmp_path / "in.zarr", zarr_format=3)

    published = run_cli(["publish", "in.nc", "--store", "st", "--ref", "nc"], tmp_path)
    assert published.returncode == 0, published.stderr
    root = published.stdout.strip()
    assert root.startswith("bafyr4i")
    assert "publishing [" in published.stderr
    from_zarr = run_cli(["publish", "in.zarr", "--store", "st", "--layout", "sharded"], tmp_path)
    assert from_zarr.returncode == 0, from_zarr.stderr

    info = run_cli(["info", "ref:nc", "--store", "st", "--json"], tmp_path)
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["layout"] == "hamt"
    assert described["root"] == root
    assert set(described["variables"]) == {
        "temperature",
        "precipitation",
        "pressure",
        "time",
        "lat",
        "lon",
    }
    sharded = json.loads(
        run_cli(["info", from_zarr.stdout.strip(), "--store", "st", "--json"], tmp_path).stdout
    )
    assert sharded["layout"].startswith("sharded")

    assert run_cli(["car", "export", root, "x.car", "--store", "st"], tmp_path).returncode == 0
    imported = run_cli(["car", "import", "x.car", "--store", "other", "--ref", "got"], tmp_path)
    assert imported.stdout.strip() == root
    copied = run_cli(["copy", "ref:got", "--from", "other", "--to", "third"], tmp_path)
    assert " 0 already there" in copied.stdout
    again = run_cli(["copy", "ref:got", "--from", "other", "--to", "third"], tmp_path)
    assert " 0 blocks copied" in again.stdout

    async def read() -> xr.Dataset:
        cas = LocalCAS(tmp_path / "third")
        hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
        back: xr.Dataset = xr.open_zarr(ZarrHAMTStore(hamt, read_only=True), chunks=None).load()
        return back

    xr.testing.assert_identical(asyncio.run(read()), ds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "bafy-not-a-cid", "--store", "st"], "py-hamt info: error: not a CID"),
        (["info", "ref:nothing", "--store", "st"], "no ref 'nothing'"),
        (["publish", "missing.nc", "--store", "st"], "missing.nc does not exist"),
        (
            ["copy", "ref:x", "--from", "kubo:http://127.0.0.1:9", "--to", "st"],
            "refs live in local stores",
        ),
        (["car", "import", "bogus.car", "--store", "st"], "bogus.car"),
    ],
)
def test_failures_exit_non_zero_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bogus.car").write_bytes(b"\x05junk")
    LocalCAS(tmp_path / "st")  # an empty store: the read-only commands need one
    done = run_cli(args, tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert message in done.stderr
