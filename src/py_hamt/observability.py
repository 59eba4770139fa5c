"""OpenTelemetry traces and metrics, and an in-process snapshot, free when off.

Instrumented code does ``if observability.ACTIVE: ...`` and nothing else, so
with instrumentation off a hot path pays one module-attribute read: nothing is
allocated and :mod:`opentelemetry` is never imported.

Whether it is on is decided once, on the first instrumented call: on when the
``PY_HAMT_TRACE`` environment variable is set (non-empty), or when
``opentelemetry`` is already imported and an SDK tracer or meter provider is
installed (the API's proxy and no-op providers do not count). An SDK
configured *after* that first call is not noticed: call :func:`enable` then.
:func:`enable` and :func:`disable` override the decision at any time.

When on, every measurement goes to the in-process snapshot (:func:`stats`)
and, if an SDK is configured, to OpenTelemetry instruments of the meter
``py_hamt``; spans are started as children of the current span.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "ACTIVE",
    "add",
    "disable",
    "enable",
    "is_enabled",
    "record",
    "reset_stats",
    "span",
    "stats",
    "timed",
]

T = TypeVar("T")
Attributes = Mapping[str, str | bool | int | float]

ACTIVE: bool = True
"""Read by hot paths. ``True`` until the decision is made (so the first
instrumented call makes it), then whether instrumentation is on."""

_decided = False
_otel: _Otel | None = None

_MAX_SAMPLES = 100_000
"""Samples kept per histogram for the snapshot's percentiles (the count and
sum stay exact past it; the percentiles then describe the first samples)."""

_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "py_hamt.cas.load.requests": ("{request}", "CAS block loads"),
    "py_hamt.cas.load.response_bytes": ("By", "bytes returned by CAS loads"),
    "py_hamt.cas.load.retries": ("{retry}", "HTTP requests retried"),
    "py_hamt.cas.load.duration": ("s", "CAS load time"),
    "py_hamt.gateway.failovers": ("{failover}", "gateway failures moved past"),
    "py_hamt.gateway.hedges": ("{hedge}", "hedged gateway requests"),
    "py_hamt.hamt.lookup.requests": ("{lookup}", "HAMT key lookups"),
    "py_hamt.hamt.lookup.duration": ("s", "HAMT lookup time (value load included)"),
    "py_hamt.hamt.lookup.depth": ("{node}", "nodes traversed by a lookup"),
    "py_hamt.hamt.node_load.requests": ("{node}", "HAMT child nodes needed"),
    "py_hamt.hamt.node_load.bytes": ("By", "encoded HAMT node bytes loaded"),
    "py_hamt.hamt.node_load.duration": ("s", "HAMT node load and decode time"),
    "py_hamt.zarr.get.requests": ("{request}", "Zarr store gets"),
    "py_hamt.zarr.get.duration": ("s", "Zarr store get time"),
    "py_hamt.sharded_store.shard_load.requests": ("{shard}", "shards loaded"),
    "py_hamt.sharded_store.shard_load.duration": ("s", "shard load and decode time"),
    "py_hamt.sharded_store.shard_entries": ("{entry}", "entries per loaded shard"),
}


class _Histogram:
    __slots__ = ("count", "samples", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.samples: list[float] = []


_counters: dict[str, float] = {}
_histograms: dict[str, _Histogram] = {}
_cid_loads: Counter[str] = Counter()


class _Otel:
    """The OpenTelemetry tracer and instruments (only built with an SDK)."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        self.trace = trace
        self.tracer = trace.get_tracer("py_hamt")
        self.meter = metrics.get_meter("py_hamt")
        self.instruments: dict[str, Any] = {}

    def instrument(self, name: str, histogram: bool) -> Any:
        inst = self.instruments.get(name)
        if inst is None:
            unit, description = _DESCRIPTIONS.get(name, ("1", name))
            make = self.meter.create_histogram if histogram else self.meter.create_counter
            inst = self.instruments[name] = make(name, unit=unit, description=description)
        return inst


def _sdk_configured() -> bool:
    """Whether an SDK provider is installed; never imports opentelemetry."""
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return False
    try:
        from opentelemetry import metrics, trace
    except ImportError:  # pragma: no cover - a broken install
        return False
    tp = trace.get_tracer_provider()
    if not isinstance(tp, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return True
    mp = metrics.get_meter_provider()
    return not isinstance(mp, metrics.NoOpMeterProvider) and type(mp).__name__ != (
        "_ProxyMeterProvider"
    )


def _decide() -> None:
    global _decided
    if not _decided:
        _decided = True
        if _sdk_configured():
            _set(True, _Otel())
        else:
            _set(bool(os.environ.get("PY_HAMT_TRACE")), None)


def _set(on: bool, otel: _Otel | None) -> None:
    global ACTIVE, _otel
    ACTIVE, _otel = on, otel


def enable(otel: bool | None = None) -> None:
    """Turn instrumentation on. ``otel=None`` sends to OpenTelemetry when an
    SDK provider is installed; ``True`` sends to OpenTelemetry's current
    providers regardless (raises ``ImportError`` without ``opentelemetry-api``);
    ``False`` keeps only the in-process snapshot."""
    global _decided
    _decided = True
    use = _sdk_configured() if otel is None else otel
    _set(True, _Otel() if use else None)


def disable() -> None:
    """Turn instrumentation off; the snapshot keeps what it holds."""
    global _decided
    _decided = True
    _set(False, None)


def is_enabled() -> bool:
    """Whether instrumentation is on (making the decision if not yet made)."""
    _decide()
    return ACTIVE


def add(name: str, value: float = 1, attributes: Attributes | None = None) -> None:
    """Add ``value`` to counter ``name``; nothing when off."""
    _decide()
    if not ACTIVE:
        return
    _counters[name] = _counters.get(name, 0) + value
    if _otel is not None:
        _otel.instrument(name, False).add(value, attributes)


def record(name: str, value: float, attributes: Attributes | None = None) -> None:
    """Record ``value`` in histogram ``name``; nothing when off."""
    _decide()
    if not ACTIVE:
        return
    h = _histograms.get(name)
    if h is None:
        h = _histograms[name] = _Histogram()
    h.count += 1
    h.total += value
    if len(h.samples) < _MAX_SAMPLES:
        h.samples.append(value)
    if _otel is not None:
        _otel.instrument(name, True).record(value, attributes)


def wrote(codec: str, size: int) -> None:
    """A block was written: ``py_hamt.cas.write.blocks`` and ``.bytes``, by
    codec. Call only when :data:`ACTIVE`."""
    if not is_enabled():
        return
    attrs = {"py_hamt.cid.codec": codec}
    add("py_hamt.cas.write.blocks", 1, attrs)
    add("py_hamt.cas.write.bytes", size, attrs)


def cid_loaded(cid: str) -> None:
    """Count one load of ``cid`` (for the snapshot's duplicate loads)."""
    if ACTIVE:
        _cid_loads[cid] += 1


@contextmanager
def span(name: str, attributes: Attributes | None = None) -> Iterator[Any]:
    """A span ``name``, child of the current span, current inside the block;
    yields it (``None`` without OpenTelemetry). An exception escaping the
    block is recorded on the span (status ERROR) and re-raised."""
    _decide()
    if _otel is None:
        yield None
        return
    with _otel.tracer.start_as_current_span(name, attributes=attributes) as s:
        yield s


def set_attribute(s: Any, key: str, value: str | bool | int | float) -> None:
    """Set an attribute on a span from :func:`span` (nothing for ``None``)."""
    if s is not None:
        s.set_attribute(key, value)


async def timed(
    span_name: str | None,
    requests: str,
    duration: str,
    call: Callable[[], Awaitable[T]],
    attributes: Attributes | None = None,
) -> T:
    """Await ``call()`` inside span ``span_name`` (none if ``None``), counting
    ``requests`` and recording the seconds taken in ``duration`` (failures
    included, with ``py_hamt.status`` naming the exception type)."""
    if not is_enabled():
        return await call()
    add(requests, 1, attributes)
    start = time.perf_counter()
    status = "ok"
    try:
        if span_name is None:
            return await call()
        with span(span_name, attributes):
            return await call()
    except BaseException as exc:
        status = type(exc).__name__
        raise
    finally:
        attrs = {**(attributes or {}), "py_hamt.status": status}
        record(duration, time.perf_counter() - start, attrs)


def cid_text(block_id: object) -> str:
    """A block id as text: a CID's string form, bytes as hex."""
    if isinstance(block_id, bytes | bytearray):
        return bytes(block_id).hex()
    return str(block_id)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted, non-empty ``ordered``."""
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def stats() -> dict[str, Any]:
    """A snapshot of what was recorded while on: ``{"enabled", "counters":
    {name: total}, "histograms": {name: {"count", "sum", "p50", "p95",
    "p99"}}, "duplicate_cid_loads": {cid: loads}}`` (only CIDs loaded more
    than once, most loaded first). Empty sections when nothing was recorded."""
    hists: dict[str, dict[str, float]] = {}
    for name, h in sorted(_histograms.items()):
        ordered = sorted(h.samples)
        hists[name] = {
            "count": h.count,
            "sum": h.total,
            "p50": _percentile(ordered, 50) if ordered else 0.0,
            "p95": _percentile(ordered, 95) if ordered else 0.0,
            "p99": _percentile(ordered, 99) if ordered else 0.0,
        }
    return {
        "enabled": ACTIVE and _decided,
        "counters": dict(sorted(_counters.items())),
        "histograms": hists,
        "duplicate_cid_loads": {c: n for c, n in _cid_loads.most_common() if n > 1},
    }


def reset_stats() -> None:
    """Forget the snapshot's counters, histograms and CID load counts."""
    _counters.clear()
    _histograms.clear()
    _cid_loads.clear()
