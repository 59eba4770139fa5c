"""The py-hamt v3 layout, byte for byte: roots of the fixed scenarios.

The scenarios mirror ``shared/vectors/scenarios.py``; the expected roots are a
copy of ``hamt_v3_roots.json``. When the shared folder sits beside the
checkout, its script is also run as-is.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from multiformats import CID

from py_hamt import HAMT, ContentAddressedStore, InMemoryCAS
from tests.conftest import CIDCAS

EXPECTED: dict[str, str] = json.loads(
    (Path(__file__).parent / "vectors" / "hamt_v3_roots.json").read_text()
)
SHARED_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "scenarios.py"


def scenarios() -> dict[str, tuple[int, bool, list[tuple[Any, ...]]]]:
    out: dict[str, tuple[int, bool, list[tuple[Any, ...]]]] = {}
    out["empty"] = (4, True, [])
    out["one"] = (4, True, [("set", "zarr.json", b'{"zarr_format":3}')])
    out["k1000_b4"] = (4, True, [("set", f"k{i}", f"v{i}".encode()) for i in range(1000)])
    rng = random.Random(7)
    keys = [f"temp/c/{i}/{j}/{k}" for i in range(6) for j in range(10) for k in range(12)]
    rng.shuffle(keys)
    out["zarrkeys_b4"] = (4, True, [("set", k, k.encode() * 3) for k in keys])
    out["zarrkeys_b1"] = (1, True, [("set", k, k.encode()) for k in keys[:300]])
    out["zarrkeys_b8"] = (8, True, [("set", k, k.encode()) for k in keys])
    values: list[Any] = [
        0,
        1,
        -5,
        2**40,
        "s",
        "ü",
        b"\x00\x01",
        None,
        True,
        False,
        [1, "a"],
        {"x": 1, "yy": [2]},
        1.5,
    ] * 20
    out["ipld_values"] = (4, False, [("set", f"key-{i}", v) for i, v in enumerate(values)])
    out["overwrite"] = (4, True, [("set", f"k{i % 50}", f"v{i}".encode()) for i in range(400)])
    return out


def render(root: object) -> str:
    # HAMT ids are typed ``object``: here a CID or (InMemoryCAS) bytes.
    return str(root) if isinstance(root, CID) else cast("bytes", root).hex()


@pytest.mark.parametrize("flavour", ["mem", "cid"])
@pytest.mark.parametrize("name", sorted(scenarios()))
async def test_scenario_root_matches_v3(name: str, flavour: str) -> None:
    bucket, vab, ops = scenarios()[name]
    cas: ContentAddressedStore = InMemoryCAS() if flavour == "mem" else CIDCAS()
    hamt = await HAMT.build(cas=cas, max_bucket_size=bucket, values_are_bytes=vab)
    for _, key, value in ops:
        await hamt.set(key, value)
    await hamt.make_read_only()
    assert render(hamt.root_node_id) == EXPECTED[f"{name}/{flavour}"]


def test_expected_roots_cover_every_scenario() -> None:
    assert len(EXPECTED) == 16
    assert {k.split("/")[0] for k in EXPECTED} == set(scenarios())


@pytest.mark.skipif(
    not SHARED_SCRIPT.exists(), reason=f"{SHARED_SCRIPT} is not beside this checkout"
)
def test_shared_scenarios_script_prints_all_match() -> None:
    done = subprocess.run(
        [sys.executable, str(SHARED_SCRIPT), "check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "format vectors: 16/16 match" in done.stdout
