"""Reads through simulated gateways (loopback only): ours against py-hamt 3.6.0.

The dataset is float32 ``temp(730, 90, 180)`` in (73, 30, 30) chunks, written
once into memory as a HAMT and as a sharded store, and served by
``tests/gateway_sim.py`` gateways with injected latency and faults. Each
measurement runs in a child process with no block cached (ours, and 3.6.0's
where its venv from ``tests/test_upstream_36.py`` exists), after the same
tiny in-memory zarr round trip in both to warm the libraries; the median of
``--runs`` is shown.

    python -m benchmarks.gateway_reads                 # every scenario, 3 runs
    python -m benchmarks.gateway_reads --runs 1 --only one-50ms

Scenarios: one gateway at 50 and 150 ms (open with each layout, a point
series and a time slice), and two gateways where the first answers 30% 503s
or stalls on 20% of requests (full read). Requests and hedges are counted at
the gateways.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD_TIMEOUT = 90
ORACLE = Path(
    os.environ.get("PY_HAMT_ORACLE_DIR", Path.home() / ".cache" / "py-hamt" / "oracle-3.6")
)

CHILD = r"""
import asyncio, json, sys, time, warnings
warnings.simplefilter("ignore")
import xarray as xr
from multiformats import CID
from py_hamt import HAMT, KuboCAS, ShardedZarrStore, ZarrHAMTStore

spec = json.loads(sys.argv[1])

# Warm the libraries (imports, zarr's codec and dtype registries) with a tiny
# in-memory round trip, identically for both implementations, so the phases
# time the network and the store, not a cold interpreter.
import numpy as np
from zarr.storage import MemoryStore
_warm = xr.Dataset({"temp": (("time", "lat", "lon"), np.zeros((2, 2, 2), "float32"))})
_mem = MemoryStore()
_warm.to_zarr(_mem, mode="w", zarr_format=3)
xr.open_zarr(_mem, chunks=None).temp.values

async def main():
    out = {}
    kwargs = {"gateway_base_urls": spec["gateways"]}
    async with KuboCAS(**kwargs) as cas:
        t = time.perf_counter()
        if spec["layout"] == "hamt":
            hamt = await HAMT.build(cas=cas, root_node_id=CID.decode(spec["root"]),
                                    read_only=True, values_are_bytes=True)
            store = ZarrHAMTStore(hamt, read_only=True)
        else:
            store = await ShardedZarrStore.open(cas, True, spec["root"])
        ds = await asyncio.to_thread(xr.open_zarr, store, chunks=None)
        out["open"] = time.perf_counter() - t
        for phase in spec["phases"]:
            t = time.perf_counter()
            if phase == "point":
                await asyncio.to_thread(lambda: ds.temp[:, 45, 90].values)
            elif phase == "slice":
                await asyncio.to_thread(lambda: ds.temp[0].values)
            elif phase == "full":
                await asyncio.to_thread(lambda: ds.temp.values)
            out[phase] = time.perf_counter() - t
    print(json.dumps(out))

asyncio.run(main())
"""

SCENARIOS: dict[str, dict[str, Any]] = {
    "one-50ms": {"gateways": [{"latency": 0.05}], "phases": ["point", "slice"]},
    "one-150ms": {"gateways": [{"latency": 0.15}], "phases": ["point", "slice"]},
    "503-30pct": {
        "gateways": [{"latency": 0.05, "error_rate": 0.3}, {"latency": 0.05}],
        "phases": ["full"],
    },
    "stall-20pct": {
        "gateways": [{"latency": 0.05, "stall_rate": 0.2}, {"latency": 0.05}],
        "phases": ["full"],
    },
    "healthy-pair": {"gateways": [{"latency": 0.05}, {"latency": 0.05}], "phases": ["full"]},
}


def build() -> tuple[dict[str, bytes], str, str]:
    import numpy as np
    import pandas as pd
    import xarray as xr
    from tests.conftest import CIDCAS

    from py_hamt import HAMT, ShardedZarrStore, ZarrHAMTStore

    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"temp": (("time", "lat", "lon"), rng.random((730, 90, 180), dtype="float32"))},
        coords={
            "time": pd.date_range("2000-01-01", periods=730),
            "lat": np.linspace(-89, 89, 90),
            "lon": np.linspace(-180, 178, 180),
        },
    )
    enc = {"temp": {"chunks": (73, 30, 30)}}
    cas = CIDCAS()

    async def write() -> tuple[str, str]:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        await asyncio.to_thread(
            ds.to_zarr, ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=enc
        )
        await hamt.make_read_only()
        sharded = await ShardedZarrStore.open(cas, False, chunks_per_shard=64)
        await asyncio.to_thread(ds.to_zarr, sharded, mode="w", zarr_format=3, encoding=enc)
        return str(hamt.root_node_id), await sharded.flush()

    hamt_root, sharded_root = asyncio.run(write())
    return {str(k): v for k, v in cas.blocks.items()}, hamt_root, sharded_root


def run_child(python: str, spec: dict[str, Any]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        done = subprocess.run(
            [python, "-c", CHILD, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            env=env,
            cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"unfinished after {CHILD_TIMEOUT} s"}  # type: ignore[dict-item]
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}  # type: ignore[dict-item]
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from tests.gateway_sim import Faults, GatewaySim

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--ours-only", action="store_true", help="skip py-hamt 3.6.0")
    args = parser.parse_args()

    blocks, hamt_root, sharded_root = build()
    impls = {"ours": sys.executable}
    oracle_python = ORACLE / "venv" / "bin" / "python"
    if (ORACLE / "ready").exists() and not args.ours_only:
        impls["3.6.0"] = str(oracle_python)
    report: dict[str, Any] = {}
    for name in args.only:
        scenario = SCENARIOS[name]
        for impl, python in impls.items():
            for layout, root in (("hamt", hamt_root), ("sharded", sharded_root)):
                runs, requests = [], []
                for run in range(args.runs):
                    sims = [
                        GatewaySim(blocks, Faults(seed=run, **faults))
                        for faults in scenario["gateways"]
                    ]
                    urls = [sim.start() for sim in sims]
                    t = time.perf_counter()
                    spec = {**scenario, "gateways": urls, "layout": layout, "root": root}
                    result = run_child(python, spec)
                    result["wall"] = time.perf_counter() - t
                    requests.append(sum(sim.requests for sim in sims))
                    for sim in sims:
                        sim.stop()
                    runs.append(result)
                    if "error" in result:
                        break
                key = f"{name} {impl} {layout}"
                if any("error" in r for r in runs):
                    report[key] = {"error": next(r["error"] for r in runs if "error" in r)}
                else:
                    phases = [p for p in runs[0] if p != "wall"]
                    report[key] = {p: statistics.median(r[p] for r in runs) for p in phases}
                    report[key]["requests"] = statistics.median(requests)
                print(key, json.dumps(report[key]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
