"""Compatibility with dClimate's py-hamt 3.6.0, both ways.

- Every dataset in ``../shared/vectors/py-hamt-3.6/`` (written by 3.6.0)
  opens here and equals its ``.npz``.
- The oracle tier runs the real 3.6.0 package in a venv of its own (it
  declares Python >= 3.12 but runs on 3.11): it opens what we write, and we
  open what it writes; blocks move as files named by CID. The venv is built
  once into ``~/.cache/py-hamt/oracle-3.6`` (``$PY_HAMT_ORACLE_DIR``); the
  tier is skipped, with the reason, only when it cannot be built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, cast

import dag_cbor
import numpy as np
import pytest
import xarray as xr
from multiformats import CID

from py_hamt import (
    HAMT,
    LocalCAS,
    ShardedZarrStore,
    ShardedZarrV1DeprecationWarning,
    SimpleEncryptedZarrHAMTStore,
    ZarrHAMTStore,
    import_car,
)
from tests.conftest import CIDCAS
from tests.oracle.datasets36 import dataset, encoding

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "py-hamt-3.6"
ORACLE_DIR = Path(
    os.environ.get("PY_HAMT_ORACLE_DIR", Path.home() / ".cache" / "py-hamt" / "oracle-3.6")
)
DRIVER = Path(__file__).parent / "oracle" / "py_hamt_36.py"
# What 3.6.0 needs, as wheels for Python 3.11 (its own pins: zarr==3.0.9;
# multiformats without the "full" extra, whose pyskein has no wheel).
ORACLE_PINS = [
    "zarr==3.0.9",
    "numpy>=2.0,<2.3",
    "xarray>=2025.1",
    "pandas>=2.2",
    "dag-cbor==0.3.3",
    "multiformats==0.3.1.post4",
    "blake3>=1.0,<2",
    "httpx[http2]>=0.28.1,<1",
    "msgspec>=0.18.6",
    "opentelemetry-api>=1.30",
    "pycryptodome>=3.21",
]

pytestmark = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"{VECTORS} is not beside the checkout"
)


def _open_dataset(store: Any, group: str | None) -> xr.Dataset:
    # 3.6.0 drops consolidated metadata from the groups of a grouped v2 root,
    # so xarray falls back to reading each zarr.json, and warns that it does.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Failed to open Zarr store", RuntimeWarning)
        back: xr.Dataset = xr.open_zarr(store=store, group=group, chunks=None).load()
        return back


# ----------------------------------------------------------------- fixtures
def _fixtures() -> dict[str, Any]:
    if not VECTORS.is_dir():
        return {}
    fixtures: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text())["fixtures"]
    return fixtures


async def _open_fixture(cas: LocalCAS, fx: dict[str, Any]) -> Any:
    root = CID.decode(fx["root"])
    if fx["open_with"].startswith("ShardedZarrStore"):
        return await ShardedZarrStore.open(cas, True, root)
    hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
    if "Encrypted" in fx["open_with"]:
        return SimpleEncryptedZarrHAMTStore(hamt, True, bytes(range(32)), b"py-hamt-fixture")
    return ZarrHAMTStore(hamt, read_only=True)


@pytest.mark.parametrize("name", sorted(_fixtures()))
async def test_every_fixture_written_by_py_hamt_36_reads_back_exactly(
    name: str, tmp_path: Path
) -> None:
    fx = _fixtures()[name]
    cas = LocalCAS(tmp_path)
    with (VECTORS / fx["car"]).open("rb") as car:
        await import_car(cas, car)
    store = await _open_fixture(cas, fx)
    if fx["manifest_version"]:
        assert store.manifest_version == fx["manifest_version"]
    ds = _open_dataset(store, fx.get("xarray_group"))
    with np.load(VECTORS / fx["expected"]) as want:  # an .npz keeps its file open
        for variable, meta in fx["variables"].items():
            assert ds[variable].dtype == np.dtype(meta["dtype"])
            np.testing.assert_array_equal(ds[variable].values, want[variable])
        for coord in ds.coords:
            np.testing.assert_array_equal(ds[coord].values, want[f"coord_{coord}"])


def test_the_shared_check_script_reads_every_fixture() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "check.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7/7 upstream py-hamt 3.6 fixtures read correctly" in result.stdout


# ------------------------------------------------------------- the oracle
def _build_oracle() -> Path:
    python = ORACLE_DIR / "venv" / "bin" / "python"
    marker = ORACLE_DIR / "ready"
    if marker.exists() and python.exists():
        return python
    ORACLE_DIR.mkdir(parents=True, exist_ok=True)
    wheels = ORACLE_DIR / "wheels"

    def pip(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, text=True, timeout=900)

    pip(sys.executable, "-m", "venv", "--clear", str(ORACLE_DIR / "venv"))
    pip(
        sys.executable, "-m", "pip", "download", "--no-deps", "--python-version", "3.12",
        "--only-binary=:all:", "-d", str(wheels), "py-hamt==3.6.0",
    )  # fmt: skip
    pip(str(python), "-m", "pip", "install", "-q", "--only-binary=:all:", *ORACLE_PINS)
    wheel = next(wheels.glob("py_hamt-3.6.0-*.whl"))
    pip(
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--ignore-requires-python",
        str(wheel),
    )
    marker.write_text("py-hamt 3.6.0\n")
    return python


@pytest.fixture(scope="session")
def oracle() -> Path:
    try:
        return _build_oracle()
    except (subprocess.SubprocessError, OSError, StopIteration) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.skip(f"py-hamt 3.6.0 oracle venv could not be built: {exc} {detail[-300:]}")


def _run_oracle(python: Path, verb: str, folder: Path, spec: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [str(python), "-W", "ignore", str(DRIVER), verb, str(folder), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=folder,
    )
    assert result.returncode == 0, f"py-hamt 3.6.0 failed to {verb}:\n{result.stderr[-3000:]}"


def _dump(cas: CIDCAS, root: str, folder: Path) -> None:
    (folder / "blocks").mkdir(parents=True)
    for cid, data in cas.blocks.items():
        (folder / "blocks" / str(cid)).write_bytes(data)
    (folder / "root").write_text(root)


def _load(folder: Path) -> tuple[CIDCAS, CID]:
    cas = CIDCAS()
    for path in (folder / "blocks").iterdir():
        cas.blocks[CID.decode(path.name)] = path.read_bytes()
    return cas, CID.decode((folder / "root").read_text().strip())


def _assert_same(arrays: Any, ds: xr.Dataset) -> None:
    for name in [*ds.data_vars, *ds.coords]:
        np.testing.assert_array_equal(arrays[name], ds[name].values, err_msg=str(name))


TWO_GRIDS = {"t2m": [10, 6, 8], "precip": [20, 9, 12]}
THREE = {"t2m": [10, 6, 8], "u10": [10, 6, 8], "precip": [20, 9, 12]}

OURS_TO_36 = [
    pytest.param({"layout": "v2", "group": None, "variables": {"t2m": [10, 6, 8]}}, id="v2-one"),
    pytest.param({"layout": "v2", "group": None, "variables": TWO_GRIDS}, id="v2-two-grids"),
    pytest.param({"layout": "v2", "group": "0", "variables": THREE}, id="v2-group-three"),
    pytest.param({"layout": "v1", "group": None, "variables": {"t2m": [10, 6, 8]}}, id="v1-one"),
    pytest.param({"layout": "hamt", "group": "g", "variables": TWO_GRIDS}, id="hamt-group"),
]


@pytest.mark.parametrize("spec", OURS_TO_36)
async def test_py_hamt_36_opens_what_we_write(
    spec: dict[str, Any], oracle: Path, tmp_path: Path
) -> None:
    variables = spec["variables"]
    ds = dataset(variables)
    cas = CIDCAS()
    if spec["layout"] == "hamt":
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ds.to_zarr(
            ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=encoding(variables),
            group=spec["group"],
        )  # fmt: skip
        await hamt.make_read_only()
        root = str(hamt.root_node_id)
    else:
        kwargs: dict[str, Any] = {"chunks_per_shard": 4}
        if spec["layout"] == "v1":
            first = next(iter(variables))
            kwargs.update(
                manifest_version="sharded_zarr_v1",
                array_shape=ds[first].shape,
                chunk_shape=tuple(variables[first]),
            )
            with pytest.warns(ShardedZarrV1DeprecationWarning):
                store = await ShardedZarrStore.open(cas, False, **kwargs)
        else:
            store = await ShardedZarrStore.open(cas, False, **kwargs)
        ds.to_zarr(
            store, mode="w", zarr_format=3, encoding=encoding(variables), group=spec["group"]
        )
        root = await store.flush()
        layout = cast("dict[str, Any]", dag_cbor.decode(cas.blocks[CID.decode(root)]))
        assert layout["manifest_version"] == f"sharded_zarr_{spec['layout']}"
    _dump(cas, root, tmp_path)
    _run_oracle(oracle, "read", tmp_path, {**spec, "chunks_per_shard": 4})
    with np.load(tmp_path / "arrays.npz") as read:
        _assert_same(read, ds)


THEIRS_TO_OURS = [
    pytest.param({"layout": "v1", "group": None, "variables": {"t2m": [10, 6, 8]}}, id="v1-one"),
    pytest.param(
        {"layout": "v1", "group": None, "variables": {"t2m": [10, 6, 8], "u10": [10, 6, 8]}},
        id="v1-same-grid",
    ),
    pytest.param({"layout": "v1", "group": None, "variables": TWO_GRIDS}, id="v1-two-grids"),
    pytest.param({"layout": "v2", "group": "0", "variables": TWO_GRIDS}, id="v2-group-two"),
    pytest.param({"layout": "v2", "group": "1", "variables": THREE}, id="v2-group-three"),
    pytest.param({"layout": "hamt", "group": None, "variables": THREE}, id="hamt-three"),
]


@pytest.mark.parametrize("spec", THEIRS_TO_OURS)
async def test_we_open_what_py_hamt_36_writes(
    spec: dict[str, Any], oracle: Path, tmp_path: Path
) -> None:
    _run_oracle(oracle, "write", tmp_path, {**spec, "chunks_per_shard": 4})
    cas, root = _load(tmp_path)
    if spec["layout"] == "hamt":
        hamt = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
        store: Any = ZarrHAMTStore(hamt, read_only=True)
    else:
        store = await ShardedZarrStore.open(cas, True, root)
        assert store.manifest_version == f"sharded_zarr_{spec['layout']}"
    back = _open_dataset(store, spec["group"])
    ds = dataset(spec["variables"])
    _assert_same({k: back[k].values for k in [*back.data_vars, *back.coords]}, ds)
    with np.load(tmp_path / "arrays.npz") as written:
        _assert_same(written, ds)  # the oracle wrote the same dataset we compare with
