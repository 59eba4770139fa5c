"""Observability: OpenTelemetry spans and metrics, the in-process snapshot,
and that nothing is recorded (or imported) when off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import py_hamt
from py_hamt import HAMT, BlockNotFoundError, InMemoryCAS, observability

_PROVIDERS: tuple[InMemorySpanExporter, InMemoryMetricReader] | None = None


@pytest.fixture(scope="module")
def providers() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """The SDK providers, installed globally once per process."""
    global _PROVIDERS
    if _PROVIDERS is None:
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tp)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _PROVIDERS = (exporter, reader)
    return _PROVIDERS


@pytest.fixture
def otel(
    providers: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    exporter, reader = providers
    observability.enable()
    observability.reset_stats()
    reader.get_metrics_data()  # drain
    exporter.clear()
    try:
        yield exporter, reader
    finally:
        observability.disable()
        observability.reset_stats()


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:  # nothing recorded since the last collection
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


async def _depth2_key() -> tuple[InMemoryCAS, Any, str]:
    """A committed HAMT and a key stored two nodes deep."""
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True, max_bucket_size=1)
    keys = [f"k{i}" for i in range(60)]
    for k in keys:
        await hamt.set(k, k.encode())
    await hamt.make_read_only()
    observability.enable(otel=False)
    try:
        for k in keys:
            observability.reset_stats()
            cold = HAMT(cas, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True)
            await cold.get(k)
            if observability.stats()["histograms"]["py_hamt.hamt.lookup.depth"]["sum"] == 2:
                return cas, hamt.root_node_id, k
    finally:
        observability.disable()
        observability.reset_stats()
    raise AssertionError("no key at depth 2")


async def test_point_read_spans_and_metrics(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    exporter, reader = otel
    cas, root, key = await _depth2_key()
    observability.enable()
    exporter.clear()
    _points(reader)
    hamt = HAMT(cas, root_node_id=root, read_only=True, values_are_bytes=True)
    # Read-only HAMTs on one store object share their node cache, which the
    # readers in _depth2_key filled: empty it, so that this read is cold.
    await hamt.cache_vacate()
    assert await hamt.get(key) == key.encode()

    spans = exporter.get_finished_spans()
    lookup = [s for s in spans if s.name == "py_hamt.hamt.lookup"]
    loads = [s for s in spans if s.name == "py_hamt.cas.load"]
    assert len(lookup) == 1
    assert len(loads) == 3  # root, child, value
    assert lookup[0].context is not None
    for s in loads:
        assert s.parent is not None
        assert s.parent.span_id == lookup[0].context.span_id
        assert s.attributes is not None
        assert s.attributes["py_hamt.cas.has_range"] is False
        assert s.attributes["py_hamt.cas.status"] == "ok"
    cids = {s.attributes["py_hamt.cid"] for s in loads if s.attributes}
    assert observability.cid_text(root) in cids

    pts = _points(reader)
    node_loads = pts["py_hamt.hamt.node_load.requests"]
    assert sum(p.value for p in node_loads) == 2
    assert all(p.attributes["py_hamt.cache_hit"] is False for p in node_loads)
    assert pts["py_hamt.hamt.lookup.depth"][0].sum == 2
    assert sum(p.value for p in pts["py_hamt.cas.load.requests"]) == 3

    await hamt.get(key)  # root in memory, child from the cache
    pts = _points(reader)
    hits = [p for p in pts["py_hamt.hamt.node_load.requests"] if p.attributes["py_hamt.cache_hit"]]
    assert sum(p.value for p in hits) == 1
    snap = py_hamt.stats()
    assert snap["counters"]["py_hamt.hamt.lookup.requests"] == 2
    assert snap["counters"]["py_hamt.hamt.node_cache.hits"] == 1
    assert snap["histograms"]["py_hamt.hamt.lookup.duration"]["count"] == 2
    # the value block was loaded twice
    assert list(snap["duplicate_cid_loads"].values()) == [2]


async def test_missing_block_sets_status(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    exporter, _ = otel
    cas = InMemoryCAS()
    with pytest.raises(BlockNotFoundError, match=r"not found|no block|missing"):
        await cas.load(b"\x1e\x20" + b"\x00" * 32)
    (s,) = exporter.get_finished_spans()
    assert s.name == "py_hamt.cas.load"
    assert s.attributes is not None
    assert s.attributes["py_hamt.cas.status"] == "not_found"
    assert observability.stats()["histograms"]["py_hamt.cas.load.duration"]["count"] == 1


async def test_zarr_get_contains_lookup(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from zarr.core.buffer import default_buffer_prototype

    exporter, reader = otel
    cas = InMemoryCAS()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    store = py_hamt.ZarrHAMTStore(hamt, read_only=False)
    await hamt.set("a/c/0", b"xyz")
    exporter.clear()
    buf = await store.get("a/c/0", default_buffer_prototype())
    assert buf is not None
    assert buf.to_bytes() == b"xyz"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    get, lookup = spans["py_hamt.hamt_store.get"], spans["py_hamt.hamt.lookup"]
    assert get.context is not None
    assert lookup.parent is not None
    assert lookup.parent.span_id == get.context.span_id
    assert sum(p.value for p in _points(reader)["py_hamt.zarr.get.requests"]) == 1


async def test_off_records_nothing() -> None:
    observability.disable()
    observability.reset_stats()
    cas = InMemoryCAS()
    cid = await cas.save(b"x", "raw")
    assert await cas.load(cid) == b"x"
    snap = py_hamt.stats()
    assert snap == {
        "enabled": False,
        "counters": {},
        "histograms": {},
        "duplicate_cid_loads": {},
    }


def test_snapshot_percentiles() -> None:
    observability.enable(otel=False)
    try:
        observability.reset_stats()
        for v in range(1, 101):
            observability.record("py_hamt.test", float(v))
        h = observability.stats()["histograms"]["py_hamt.test"]
        assert (h["count"], h["sum"], h["p50"], h["p95"], h["p99"]) == (100, 5050.0, 50, 95, 99)
    finally:
        observability.disable()
        observability.reset_stats()


def test_import_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, py_hamt\n"
        "from py_hamt import InMemoryCAS, HAMT, observability\n"
        "assert not observability.is_enabled()\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PY_HAMT_TRACE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_env_var_turns_snapshot_on() -> None:
    code = (
        "import asyncio, py_hamt\n"
        "async def main():\n"
        "    cas = py_hamt.InMemoryCAS()\n"
        "    await cas.load(await cas.save(b'x', 'raw'))\n"
        "asyncio.run(main())\n"
        "assert py_hamt.stats()['counters']['py_hamt.cas.load.requests'] == 1\n"
    )
    env = {**__import__("os").environ, "PY_HAMT_TRACE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_verbose_clis_print_the_counters_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from py_hamt.cli.main import main
    from py_hamt.cli.sharded_converter import main as converter

    try:
        assert main(["--verbose", "demo", "--dir", str(tmp_path / "st"), "--time", "4"]) == 0
        err = capsys.readouterr().err
        assert "stats:" in err
        assert "py_hamt.cas.load.requests = " in err
        assert "py_hamt.zarr.get.duration: n=" in err
        args = ["--verbose", "--quiet", "ref:demo", "--store", str(tmp_path / "st")]
        assert converter(args) == 0
        err = capsys.readouterr().err
        assert "py_hamt.hamt.lookup.requests = " in err
    finally:
        observability.disable()
        observability.reset_stats()


@pytest.fixture
def counting() -> Iterator[None]:
    """Recording on, with no SDK needed: only ``stats()`` is read."""
    observability.enable(otel=False)
    observability.reset_stats()
    try:
        yield
    finally:
        observability.disable()
        observability.reset_stats()


async def test_writes_fsyncs_and_integrity_failures_are_counted(
    counting: None, tmp_path: Path
) -> None:
    from multiformats import CID

    from py_hamt import IntegrityError, LocalCAS
    from py_hamt.cas.base import verify_block

    cas = LocalCAS(tmp_path)
    written = await cas.put(b"twelve bytes", "raw")
    snap = observability.stats()
    assert snap["counters"]["py_hamt.cas.write.blocks"] == 1
    assert snap["counters"]["py_hamt.cas.write.bytes"] == 12
    assert snap["histograms"]["py_hamt.local.fsync.duration"]["count"] >= 2  # file and folder
    assert isinstance(written.id, CID)
    with pytest.raises(IntegrityError, match="do not hash"):
        verify_block(written.id, b"other bytes!")
    assert observability.stats()["counters"]["py_hamt.integrity.failures"] == 1


async def test_document_cache_and_shard_loads_are_counted(counting: None) -> None:
    import numpy as np
    import xarray as xr

    from py_hamt import ShardedZarrStore
    from tests.conftest import CIDCAS

    cas = CIDCAS()
    ds = xr.Dataset({"v": (("x", "y"), np.arange(64, dtype="float32").reshape(8, 8))})
    writer = await ShardedZarrStore.open(cas, False, chunks_per_shard=4)
    await asyncio.to_thread(
        ds.to_zarr, writer, mode="w", zarr_format=3, encoding={"v": {"chunks": (4, 4)}}
    )
    root = await writer.flush()
    observability.reset_stats()
    store = await ShardedZarrStore.open(cas, True, root, shard_read_mode="full")
    for _ in range(2):
        await asyncio.to_thread(lambda: xr.open_zarr(store, chunks=None).load())
    snap = observability.stats()
    assert snap["counters"]["py_hamt.sharded_store.shard_load.requests"] >= 1
    assert snap["histograms"]["py_hamt.sharded_store.shard_entries"]["sum"] == 4
    assert snap["counters"]["py_hamt.document_cache.hits"] >= 1
    assert snap["counters"]["py_hamt.zarr.get.requests"] >= 4


async def test_gateway_failovers_are_counted(counting: None) -> None:
    import httpx
    from multiformats import CID, multihash

    from py_hamt import KuboCAS

    data = b"a block"
    cid = CID("base32", 1, "raw", multihash.get("blake3").digest(data, size=32))

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.host == "busy.test":
            return httpx.Response(503, text="busy")
        return httpx.Response(200, content=data)

    async with KuboCAS(
        gateway_base_urls=["http://busy.test", "http://fine.test"],
        transport=httpx.MockTransport(gateway),
    ) as cas:
        assert await cas.load(cid) == data
    assert observability.stats()["counters"]["py_hamt.gateway.failovers"] == 1


async def test_commits_record_their_duration(counting: None) -> None:
    from py_hamt import ShardedZarrStore
    from tests.conftest import CIDCAS

    hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
    await hamt.set("k", b"v")
    await hamt.make_read_only()
    store = await ShardedZarrStore.open(CIDCAS(), False, chunks_per_shard=4)
    await store.flush()
    histograms = observability.stats()["histograms"]
    assert histograms["py_hamt.hamt.commit.duration"]["count"] == 1
    assert histograms["py_hamt.sharded_store.commit.duration"]["count"] == 1


async def test_the_remaining_names_are_recorded(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load bytes and durations, node bytes and durations, the sharded get span
    and shard load durations, RPC retries and gateway hedges."""
    import httpx
    import numpy as np
    import xarray as xr
    from multiformats import CID, multihash

    from py_hamt import KuboCAS, ShardedZarrStore
    from py_hamt.cas import gateways, http
    from tests.conftest import CIDCAS

    exporter, reader = otel
    cas, root, key = await _depth2_key()
    observability.enable()
    await HAMT(cas, root_node_id=root, read_only=True, values_are_bytes=True).get(key)

    scas = CIDCAS()
    ds = xr.Dataset({"v": (("x",), np.arange(1, 9, dtype="int32"))})
    writer = await ShardedZarrStore.open(scas, False, chunks_per_shard=4)
    await asyncio.to_thread(
        ds.to_zarr, writer, mode="w", zarr_format=3, encoding={"v": {"chunks": (2,)}}
    )
    store = await ShardedZarrStore.open(scas, True, await writer.flush(), shard_read_mode="full")
    await asyncio.to_thread(lambda: xr.open_zarr(store, chunks=None).load())

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(http, "_sleep", no_sleep)
    data = b"slow block"
    cid = CID("base32", 1, "raw", multihash.get("blake3").digest(data, size=32))
    calls = {"rpc": 0, "gateway": 0}

    async def node(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v0/"):
            calls["rpc"] += 1
            return httpx.Response(503 if calls["rpc"] == 1 else 200, json={})
        calls["gateway"] += 1
        if calls["gateway"] == 1:
            await asyncio.sleep(0.5)  # the first copy stalls: the hedge answers
        return httpx.Response(200, content=data)

    async with KuboCAS(transport=httpx.MockTransport(node)) as kubo:
        kubo._router.hedge = gateways.HedgeConfig(min_delay=0.01, max_delay=0.05)
        assert await kubo.has(cid)
        assert await kubo.load(cid) == data

    names = set(_points(reader)) | set(observability.stats()["counters"])
    names |= set(observability.stats()["histograms"])
    for name in (
        "py_hamt.cas.load.response_bytes",
        "py_hamt.hamt.node_load.bytes",
        "py_hamt.hamt.node_load.duration",
        "py_hamt.zarr.get.duration",
        "py_hamt.sharded_store.shard_load.duration",
        "py_hamt.cas.load.retries",
        "py_hamt.gateway.hedges",
    ):
        assert name in names, name
    assert any(s.name == "py_hamt.sharded_store.get" for s in exporter.get_finished_spans())
