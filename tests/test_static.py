"""ruff, and mypy --strict over the package and its tests, as part of the
test suite.

``python -m pytest`` alone (the README's test command) runs them. CI runs the
same commands as steps of their own before pytest (``.ci/run``) and sets
``PY_HAMT_STATIC_CHECKED=1``, so they are not run twice there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("PY_HAMT_STATIC_CHECKED") == "1",
    reason="ruff and mypy already ran as CI steps (.ci/run)",
)


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_and_format() -> None:
    lint = run_tool("ruff", "check", "src", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run_tool("ruff", "format", "--check", "src", "tests", "benchmarks")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict_on_the_package() -> None:
    """``python -m mypy`` as configured in pyproject.toml: strict, over the
    package and tests/ (CI's mypy step runs the same command)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert {"py_hamt", "tests"} <= set(config["packages"])
    done = run_tool("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
