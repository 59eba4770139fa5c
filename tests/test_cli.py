"""The ``py-hamt`` command, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from py_hamt.cli.main import main


def test_demo_writes_reads_back_and_prints_the_root(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--time", "24", "--lat", "10", "--lon", "20"]) == 0
    out = capsys.readouterr().out
    root_line = next(line for line in out.splitlines() if line.startswith("root: "))
    assert root_line.removeprefix("root: ").startswith("1e20")
    assert "identical to what was written" in out


def test_demo_root_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    roots = []
    for _ in range(2):
        main(["demo", "--time", "12", "--lat", "6", "--lon", "8"])
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
