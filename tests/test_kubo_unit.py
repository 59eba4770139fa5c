"""KuboCAS through httpx.MockTransport: request shapes, verification,
retries and client ownership. Time is patched, never slept."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from multiformats import CID, multihash

from py_hamt import (
    BlockNotFoundError,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    KuboCAS,
    NodeUnreachableError,
    RequestTimeoutError,
)
from py_hamt.cas import http as http_mod

B3 = multihash.get("blake3")
SHA = multihash.get("sha2-256")
RPC = "http://rpc.test:5001"
GW = "http://gw.test:8080"

# What httpx.MockTransport takes: a plain or an async function.
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
)


def raw_cid(data: bytes, hasher: Any = B3, codec: str = "raw") -> CID:
    size = 32 if hasher is B3 else None
    digest = hasher.digest(data, size=size) if size else hasher.digest(data)
    return CID("base32", 1, codec, digest)


def add_answer(
    cid: CID, size: int, *, base: str = "base32", size_as_str: bool = True
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "Name": "block",
            "Hash": cid.encode(base),
            "Size": str(size) if size_as_str else size,
        },
    )


class Recorder:
    """A MockTransport handler serving scripted answers and recording requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            result = answer(request)
            response: httpx.Response = await result if asyncio.iscoroutine(result) else result
            return response
        return answer  # type: ignore[no-any-return]


def kubo(handler: Handler, **kwargs: Any) -> KuboCAS:
    kwargs.setdefault("rpc_base_url", RPC)
    kwargs.setdefault("gateway_base_url", GW)
    return KuboCAS(transport=httpx.MockTransport(handler), **kwargs)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(http_mod, "_sleep", fake_sleep)
    return waited


# ------------------------------------------------------------------ writes
async def test_save_posts_multipart_with_the_add_parameters() -> None:
    data = b"\x99\x01\x00" + b"\xa0" * 256
    rec = Recorder(lambda req: add_answer(raw_cid(data), len(data)))
    async with kubo(rec, chunker="size-262144", pin_on_add=True) as cas:
        cid = await cas.save(data, "dag-cbor")
    (req,) = rec.requests
    assert req.method == "POST"
    assert str(req.url).startswith(f"{RPC}/api/v0/add?")
    assert dict(req.url.params) == {
        "hash": "blake3",
        "chunker": "size-262144",
        "pin": "true",
        "cid-version": "1",
        "raw-leaves": "true",
        "cid-base": "base32",
    }
    body = req.read()
    assert b"Content-Type: application/octet-stream" in body
    assert data in body
    # relabelled from raw to dag-cbor, same multihash
    assert cid.codec.name == "dag-cbor"
    assert str(cid).startswith("bafyr4i")
    assert cid.digest == raw_cid(data).digest


async def test_save_raw_keeps_raw_and_accepts_base58_and_numeric_size() -> None:
    data = b"value bytes"
    rec = Recorder(add_answer(raw_cid(data), len(data), base="base58btc", size_as_str=False))
    async with kubo(rec) as cas:
        cid = await cas.save(data, "raw")
    assert cid == raw_cid(data)
    assert str(cid).startswith("bafkr4i")


async def test_save_with_sha2_256() -> None:
    data = b"sha block"
    rec = Recorder(add_answer(raw_cid(data, SHA), len(data)))
    async with kubo(rec, hasher="sha2-256") as cas:
        cid = await cas.save(data, "raw")
    assert rec.requests[0].url.params["hash"] == "sha2-256"
    assert cid.hashfun.name == "sha2-256"


async def test_save_rejects_a_cid_that_is_not_of_the_bytes_sent() -> None:
    data = b"what we sent"
    rec = Recorder(add_answer(raw_cid(b"something else"), len(data)))
    async with kubo(rec) as cas:
        with pytest.raises(IntegrityError, match="did not store what was sent") as info:
            await cas.save(data, "raw")
    assert info.value.block_id == raw_cid(b"something else")


async def test_save_rejects_a_wrong_size() -> None:
    data = b"twelve bytes"
    rec = Recorder(add_answer(raw_cid(data), 11))
    async with kubo(rec) as cas:
        with pytest.raises(IntegrityError, match=r"reports 11 bytes .* but 12 were sent"):
            await cas.save(data, "raw")


async def test_save_returns_dag_pb_for_multi_block_files() -> None:
    pb = CID("base32", 1, "dag-pb", B3.digest(b"a unixfs root", size=32))
    rec = Recorder(add_answer(pb, 3 * 2**20))
    async with kubo(rec) as cas:
        assert await cas.save(b"x" * 10, "raw") == pb


async def test_save_with_bad_json_is_an_integrity_error() -> None:
    rec = Recorder(httpx.Response(200, text="not json"))
    async with kubo(rec) as cas:
        with pytest.raises(IntegrityError, match="invalid JSON"):
            await cas.save(b"x", "raw")


# ------------------------------------------------------------------- reads
async def test_load_asks_for_the_raw_block_and_verifies_it() -> None:
    data = b"node bytes"
    cid = raw_cid(data, codec="dag-cbor")
    rec = Recorder(httpx.Response(200, content=data))
    async with kubo(rec) as cas:
        assert await cas.load(cid) == data
    (req,) = rec.requests
    assert str(req.url) == f"{GW}/ipfs/{cid.encode('base32')}"
    assert req.headers["accept"] == "application/vnd.ipld.raw"


@pytest.mark.parametrize("hasher", [B3, SHA])
@pytest.mark.parametrize(
    "served", [b"tampered!!", b"node byte", b""], ids=["wrong", "truncated", "empty"]
)
async def test_load_never_returns_wrong_bytes(hasher: Any, served: bytes) -> None:
    cid = raw_cid(b"node bytes", hasher)
    async with kubo(Recorder(httpx.Response(200, content=served))) as cas:
        with pytest.raises(IntegrityError, match=f"do not hash to {cid}") as info:
            await cas.load(cid)
    assert info.value.block_id == cid


async def test_load_dag_pb_reads_the_file_without_raw_accept() -> None:
    pb = CID("base32", 1, "dag-pb", B3.digest(b"root", size=32))
    rec = Recorder(httpx.Response(200, content=b"file content"))
    async with kubo(rec) as cas:
        assert await cas.load(pb) == b"file content"
    assert (
        "accept" not in rec.requests[0].headers
        or "ipld.raw" not in rec.requests[0].headers["accept"]
    )


async def test_load_accepts_cid_strings_and_rejects_other_ids() -> None:
    data = b"abc"
    cid = raw_cid(data)
    async with kubo(Recorder(httpx.Response(200, content=data))) as cas:
        assert await cas.load(cid.encode("base58btc")) == data
        with pytest.raises(TypeError, match="KuboCAS ids are CIDs, got int"):
            await cas.load(5)
        with pytest.raises(InvalidArgumentError, match="not a CID: 'bogus'"):
            await cas.load("bogus")


@pytest.mark.parametrize(
    ("kwargs", "header"),
    [
        ({"offset": 2, "length": 3}, "bytes=2-4"),
        ({"offset": 5}, "bytes=5-"),
        ({"suffix": 4}, "bytes=-4"),
        ({"length": 2}, "bytes=0-1"),
    ],
)
async def test_ranges_become_range_headers(kwargs: dict[str, int], header: str) -> None:
    data = b"0123456789"
    expected = data[2:5] if "length" in kwargs and "offset" in kwargs else None

    def answer(req: httpx.Request) -> httpx.Response:
        first, _, last = req.headers["range"].removeprefix("bytes=").partition("-")
        if first == "":
            start, stop = len(data) - int(last), len(data)
        else:
            start, stop = int(first), (int(last) + 1 if last else len(data))
        return httpx.Response(
            206,
            content=data[start:stop],
            headers={"content-range": f"bytes {start}-{stop - 1}/{len(data)}"},
        )

    rec = Recorder(answer)
    async with kubo(rec) as cas:
        got = await cas.load(raw_cid(data), **kwargs)
    assert rec.requests[0].headers["range"] == header
    assert (
        "accept" not in rec.requests[0].headers
        or "ipld.raw" not in rec.requests[0].headers["accept"]
    )
    if expected is not None:
        assert got == expected


async def test_short_ranged_body_is_an_integrity_error() -> None:
    answer = httpx.Response(206, content=b"23", headers={"content-range": "bytes 2-4/10"})
    async with kubo(Recorder(answer)) as cas:
        with pytest.raises(IntegrityError, match="sent 2 bytes for range 2-4"):
            await cas.load(raw_cid(b"0123456789"), offset=2, length=3)


async def test_gateway_ignoring_range_is_verified_then_sliced() -> None:
    data = b"0123456789"
    async with kubo(Recorder(httpx.Response(200, content=data))) as cas:
        assert await cas.load(raw_cid(data), offset=3, length=2) == b"34"
    async with kubo(Recorder(httpx.Response(200, content=b"9876543210"))) as cas:
        with pytest.raises(IntegrityError, match="do not hash to"):
            await cas.load(raw_cid(data), offset=3, length=2)


async def test_range_past_the_end_is_empty() -> None:
    async with kubo(Recorder(httpx.Response(416))) as cas:
        assert await cas.load(raw_cid(b"abc"), offset=10) == b""


async def test_empty_ranges_make_no_request() -> None:
    rec = Recorder(httpx.Response(500))
    async with kubo(rec) as cas:
        assert await cas.load(raw_cid(b"abc"), suffix=0) == b""
        assert await cas.load(raw_cid(b"abc"), offset=1, length=0) == b""
    assert rec.requests == []


async def test_verified_ranges_fetch_check_and_cache_the_block() -> None:
    data = bytes(range(100))
    rec = Recorder(httpx.Response(200, content=data))
    async with kubo(rec, verify_ranges=True) as cas:
        assert await cas.load(raw_cid(data), offset=10, length=5) == data[10:15]
        assert await cas.load(raw_cid(data), suffix=3) == data[-3:]
    assert len(rec.requests) == 1
    assert rec.requests[0].headers["accept"] == "application/vnd.ipld.raw"
    assert "range" not in rec.requests[0].headers

    async with kubo(Recorder(httpx.Response(200, content=data[::-1])), verify_ranges=True) as cas:
        with pytest.raises(IntegrityError, match="do not hash to"):
            await cas.load(raw_cid(data), offset=0, length=1)


async def test_verified_cache_stays_within_its_byte_limit() -> None:
    blocks = [bytes([i]) * 40 for i in range(5)]
    served = {raw_cid(b).encode("base32"): b for b in blocks}
    rec = Recorder(lambda req: httpx.Response(200, content=served[req.url.path.rsplit("/", 1)[1]]))
    async with kubo(rec, verify_ranges=True, verified_cache_bytes=100) as cas:
        for b in blocks:
            await cas.load(raw_cid(b), offset=0, length=1)
        assert cas._verified_bytes <= 100
        assert len(cas._verified) == 2


async def test_missing_block_is_block_not_found() -> None:
    cid = raw_cid(b"absent")
    async with kubo(Recorder(httpx.Response(404, text="not found"))) as cas:
        with pytest.raises(BlockNotFoundError, match=f"no block with id {cid}: 404 from {GW}"):
            await cas.load(cid)


# ----------------------------------------------------------------- retries
async def test_5xx_and_429_are_retried_with_exponential_backoff(sleeps: list[float]) -> None:
    data = b"payload"
    rec = Recorder(
        httpx.Response(503),
        httpx.Response(429),
        httpx.Response(502),
        httpx.Response(200, content=data),
    )
    async with kubo(rec, initial_delay=0.5, backoff_factor=3.0) as cas:
        assert await cas.load(raw_cid(data)) == data
    assert len(rec.requests) == 4
    assert len(sleeps) == 3
    for attempt, waited in enumerate(sleeps):
        base = 0.5 * 3.0**attempt
        assert base * 0.75 <= waited <= base * 1.25


async def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    data = b"x"
    rec = Recorder(
        httpx.Response(429, headers={"retry-after": "7"}), httpx.Response(200, content=data)
    )
    async with kubo(rec) as cas:
        assert await cas.load(raw_cid(data)) == data
    assert sleeps == [7.0]


async def test_retries_run_out_with_the_status_error(sleeps: list[float]) -> None:
    cid = raw_cid(b"y")
    rec = Recorder(httpx.Response(504, text="gateway timeout"))
    async with kubo(rec, max_retries=2) as cas:
        with pytest.raises(HTTPStatusError, match=f"HTTP 504 for {cid} from {GW}/ipfs/") as info:
            await cas.load(cid)
    assert info.value.status_code == 504
    assert len(rec.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 500])
async def test_other_errors_fail_at_once_naming_cid_and_url(
    sleeps: list[float], status: int
) -> None:
    cid = raw_cid(b"z")
    rec = Recorder(httpx.Response(status, text="nope"))
    async with kubo(rec) as cas:
        with pytest.raises(
            HTTPStatusError, match=f"HTTP {status} for {cid} from {GW}/ipfs/{cid}: nope"
        ):
            await cas.load(cid)
    assert len(rec.requests) == 1
    assert sleeps == []


async def test_connection_refused_is_reported_as_such(sleeps: list[float]) -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    rec = Recorder(refused)
    async with kubo(rec, max_retries=1) as cas:
        with pytest.raises(NodeUnreachableError, match="connection refused") as info:
            await cas.save(b"x", "raw")
    assert not isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(rec.requests) == 2


async def test_timeouts_are_retried_then_reported(sleeps: list[float]) -> None:
    cid = raw_cid(b"slow")
    rec = Recorder(httpx.ReadTimeout("read timed out"))
    async with kubo(rec, max_retries=2) as cas:
        with pytest.raises(
            RequestTimeoutError, match=f"timed out \\(ReadTimeout\\) fetching {cid}"
        ):
            await cas.load(cid)
    assert len(rec.requests) == 3


async def test_resets_and_truncated_bodies_are_retried(sleeps: list[float]) -> None:
    data = b"after a reset"
    rec = Recorder(
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.Response(200, content=data),
    )
    async with kubo(rec) as cas:
        assert await cas.load(raw_cid(data)) == data
    assert len(sleeps) == 2


async def test_a_real_closed_port_is_connection_refused(sleeps: list[float]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KuboCAS(rpc_base_url=f"http://127.0.0.1:{port}", max_retries=1) as cas:
        with pytest.raises(NodeUnreachableError, match="connection refused"):
            await cas.save(b"x", "raw")


# ------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunker": "size-0"}, "chunker must be"),
        ({"chunker": "buzhash"}, "chunker must be"),
        ({"chunker": "rabin-1-2"}, "chunker must be"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"initial_delay": 0}, "initial_delay must be > 0"),
        ({"backoff_factor": 0.5}, "backoff_factor must be >= 1"),
        ({"hasher": "md5"}, "hasher must be one of"),
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"rpc_base_url": "ftp://x"}, "rpc_base_url must be an http\\(s\\) URL"),
        ({"gateway_base_url": "localhost:8080"}, "gateway_base_url must be an http\\(s\\) URL"),
        ({"client": object()}, "client must be an httpx.AsyncClient"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        KuboCAS(**kwargs)


@pytest.mark.parametrize("chunker", ["size-1048576", "rabin", "rabin-262144-524288-1048576"])
def test_valid_chunkers(chunker: str) -> None:
    assert KuboCAS(chunker=chunker).chunker == chunker


@pytest.mark.parametrize(
    ("given", "rpc", "gateway"),
    [
        ((None, None), "http://127.0.0.1:5001", "http://127.0.0.1:8080"),
        (("http://n:5001/", "https://gw.io/"), "http://n:5001", "https://gw.io"),
        (("http://n:5001/api/v0", "https://gw.io/ipfs/"), "http://n:5001", "https://gw.io"),
        (
            ("http://n/prefix/api/v0/", "https://gw.io/ipfs/bafyabc/x"),
            "http://n/prefix",
            "https://gw.io",
        ),
    ],
)
def test_urls_are_normalised(given: tuple[str | None, str | None], rpc: str, gateway: str) -> None:
    cas = KuboCAS(rpc_base_url=given[0], gateway_base_url=given[1])
    assert cas.rpc_base_url == rpc
    assert cas.gateway_base_url == gateway


# --------------------------------------------------------- clients, limits
async def test_a_client_passed_in_is_used_and_never_closed() -> None:
    data = b"mine"
    rec = Recorder(httpx.Response(200, content=data))
    client = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    async with KuboCAS(client=client, gateway_base_url=GW, headers={"X-Extra": "1"}) as cas:
        assert await cas.load(raw_cid(data)) == data
    assert not client.is_closed
    assert rec.requests[0].headers["x-extra"] == "1"
    await client.aclose()


async def test_own_clients_apply_headers_and_auth_and_are_closed() -> None:
    data = b"secret"
    rec = Recorder(httpx.Response(200, content=data))
    cas = kubo(rec, headers={"Authorization-Extra": "t"}, auth=("user", "pw"))
    assert await cas.load(raw_cid(data)) == data
    req = rec.requests[0]
    assert req.headers["authorization-extra"] == "t"
    assert req.headers["authorization"].startswith("Basic ")
    client = cas._pool.client()
    await cas.aclose()
    assert client.is_closed


def test_each_event_loop_gets_its_own_client() -> None:
    data = b"loops"
    rec = Recorder(httpx.Response(200, content=data))
    cas = kubo(rec)
    seen: list[httpx.AsyncClient] = []

    async def use() -> None:
        assert await cas.load(raw_cid(data)) == data
        seen.append(cas._pool.client())
        await cas.aclose()

    asyncio.run(use())
    asyncio.run(use())
    assert seen[0] is not seen[1]
    assert all(c.is_closed for c in seen)


async def test_concurrency_bounds_requests_in_flight() -> None:
    data = b"c"
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, content=data)

    async with kubo(slow, concurrency=3) as cas:
        await asyncio.gather(*(cas.load(raw_cid(data)) for _ in range(20)))
    assert peak == 3


# -------------------------------------------------------------------- pins
async def test_pins_use_the_configured_rpc_unless_told_otherwise() -> None:
    a, b = raw_cid(b"a"), raw_cid(b"b")
    listing = json.dumps({"Keys": {a.encode("base58btc"): {"Type": "recursive"}}})
    rec = Recorder(
        lambda req: httpx.Response(200, text=listing if req.url.path.endswith("/ls") else "{}")
    )
    async with kubo(rec) as cas:
        await cas.pin_cid(a)
        await cas.unpin_cid(a)
        await cas.pin_update(a, b)
        assert await cas.pin_ls() == [a]
        await cas.pin_cid(b, target_rpc="http://other:5001/")
    urls = [str(r.url) for r in rec.requests]
    assert urls[0] == f"{RPC}/api/v0/pin/add?arg={a}&recursive=true"
    assert urls[1] == f"{RPC}/api/v0/pin/rm?arg={a}&recursive=true"
    assert urls[2] == f"{RPC}/api/v0/pin/update?arg={a}&arg={b}"
    assert urls[3] == f"{RPC}/api/v0/pin/ls?type=recursive"
    assert urls[4] == f"http://other:5001/api/v0/pin/add?arg={b}&recursive=true"
    assert all(r.method == "POST" for r in rec.requests)


async def test_aclose_also_closes_the_client_made_on_zarrs_loop() -> None:
    from zarr.core.sync import sync

    data = b"zarr thread"
    cas = kubo(Recorder(httpx.Response(200, content=data)))
    # zarr's sync API (to_zarr/open_zarr) runs the store on its own loop thread.
    assert await asyncio.to_thread(sync, cas.load(raw_cid(data))) == data
    made = list(cas._pool._clients.values())
    assert len(made) == 1
    await cas.aclose()
    assert made[0].is_closed


async def test_kubocas_pickles_as_its_configuration() -> None:
    import pickle

    data = b"travels"
    cas = kubo(Recorder(httpx.Response(200, content=data)), verify_ranges=True, concurrency=5)
    cid = raw_cid(data)
    assert await cas.load(cid, offset=0, length=3) == b"tra"
    clone = pickle.loads(pickle.dumps(cas))
    assert clone.gateway_base_url == GW
    assert clone.verify_ranges
    assert clone._verified == OrderedDict()
    assert await clone.load(cid) == data  # makes its own client on first use
    await clone.aclose()
    await cas.aclose()
    passed = httpx.AsyncClient()
    with pytest.raises(TypeError, match="cannot pickle a KuboCAS built with client"):
        pickle.dumps(KuboCAS(client=passed))
    await passed.aclose()
