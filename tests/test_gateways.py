"""KuboCAS reading through several gateways: failover, hedging, deadlines,
credential scoping, against simulated gateways on loopback (real HTTP)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from multiformats import CID, multihash

from py_hamt import BlockNotFoundError, InvalidArgumentError, KuboCAS, TransportError
from tests.gateway_sim import Faults, GatewaySim

_B3 = multihash.get("blake3")


def blocks(n: int, size: int = 2048) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = i.to_bytes(4, "big") + os.urandom(size)
        out[str(CID("base32", 1, "raw", _B3.digest(data, size=32)))] = data
    return out


@pytest.fixture
def data() -> dict[str, bytes]:
    return blocks(40)


@pytest.fixture
def sims(data: dict[str, bytes]) -> Iterator[list[GatewaySim]]:
    made: list[GatewaySim] = []
    yield made
    for sim in made:
        sim.stop()


def start(sims: list[GatewaySim], data: dict[str, bytes], **faults: Any) -> GatewaySim:
    sim = GatewaySim(data, Faults(**faults))
    sim.start()
    sims.append(sim)
    return sim


async def read_all(cas: KuboCAS, data: dict[str, bytes]) -> None:
    got = await asyncio.gather(*(cas.load(CID.decode(k)) for k in data))
    assert got == list(data.values())


async def test_a_gateway_answering_503_fails_over_to_a_healthy_one(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    flaky = start(sims, data, error_rate=0.3, seed=1)
    healthy = start(sims, data)
    async with KuboCAS(gateway_base_urls=[flaky.url, healthy.url], initial_delay=5.0) as cas:
        await read_all(cas, data)
    assert flaky.requests > 0
    assert healthy.served > 0


async def test_lying_bytes_are_a_failure_never_an_answer(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    liar = start(sims, data, lie_rate=1.0)
    honest = start(sims, data)
    async with KuboCAS(gateway_base_urls=[liar.url, honest.url]) as cas:
        await read_all(cas, data)
        # The liar is cooling down, so it is asked again only as a last resort.
        assert cas._router.ranked()[0].url == honest.url
    assert liar.requests >= 1


async def test_a_stalled_gateway_is_hedged_on_the_next_one(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    stalling = start(sims, data, stall_rate=1.0)
    healthy = start(sims, data)
    async with KuboCAS(
        gateway_base_urls=[stalling.url, healthy.url], request_deadline=30.0, hedge_budget=1.0
    ) as cas:
        cas._router.hedge = type(cas._router.hedge)(max_delay=0.2, request_deadline=30.0)
        cid = next(iter(data))
        assert await cas.load(CID.decode(cid)) == data[cid]
        assert cas._router.hedged_requests == 1
    assert healthy.served == 1


async def test_the_request_deadline_catches_a_gateway_that_never_answers(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    stalling = start(sims, data, stall_rate=1.0)
    async with KuboCAS(
        gateway_base_url=stalling.url,
        request_deadline=0.3,
        hedge=False,
        max_retries=1,
        initial_delay=0.01,
    ) as cas:
        with pytest.raises(TransportError, match=r"not found or not available.*within 0\.3 s"):
            await cas.load(CID.decode(next(iter(data))))
    assert stalling.requests == 2  # one try and one retry, each cut at 0.3 s


async def test_hedges_stay_within_their_budget(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    slow = start(sims, data, latency=0.05)
    async with KuboCAS(gateway_base_url=slow.url, hedge_budget=0.1) as cas:
        cas._router.hedge = type(cas._router.hedge)(min_delay=0.001, max_delay=0.001)
        for key in data:
            await cas.load(CID.decode(key))
        router = cas._router
        assert router.hedged_requests <= 4 + 0.1 * router.primary_requests


async def test_a_block_no_gateway_has_is_block_not_found(sims: list[GatewaySim]) -> None:
    first, second = start(sims, {}), start(sims, {})
    missing = CID.decode(next(iter(blocks(1))))
    async with KuboCAS(gateway_base_urls=[first.url, second.url]) as cas:
        with pytest.raises(BlockNotFoundError, match=str(missing)):
            await cas.load(missing)


async def test_credentials_go_only_to_their_own_origin(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    private = start(sims, data, error_rate=1.0)  # always 503: every read fails over
    public = start(sims, data)
    async with KuboCAS(
        gateway_base_urls=[private.url, public.url.replace("127.0.0.1", "localhost")],
        headers={"X-Api-Key": "secret"},
        auth=("user", "pass"),
        max_retries=0,
    ) as cas:
        await cas.load(CID.decode(next(iter(data))))
    assert private.headers_seen[0]["x-api-key"] == "secret"
    assert "authorization" in private.headers_seen[0]
    assert public.headers_seen
    for seen in public.headers_seen:
        assert "x-api-key" not in seen
        assert "authorization" not in seen


async def test_client_factory_makes_one_client_per_loop_and_kubocas_closes_it(
    data: dict[str, bytes], sims: list[GatewaySim]
) -> None:
    gateway = start(sims, data)
    made: list[httpx.AsyncClient] = []

    def factory() -> httpx.AsyncClient:
        client = httpx.AsyncClient(headers={"X-Factory": "yes"})
        made.append(client)
        return client

    async with KuboCAS(gateway_base_url=gateway.url, client_factory=factory) as cas:
        await read_all(cas, data)
    assert len(made) == 1
    assert made[0].is_closed
    assert gateway.headers_seen[0]["x-factory"] == "yes"


def test_gateway_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="exclusive"):
        KuboCAS(gateway_base_url="http://a", gateway_base_urls=["http://b"])
    with pytest.raises(InvalidArgumentError, match="non-empty list"):
        KuboCAS(gateway_base_urls=[])
    with pytest.raises(InvalidArgumentError, match="client and client_factory are exclusive"):
        KuboCAS(client=httpx.AsyncClient(), client_factory=httpx.AsyncClient)
    with pytest.raises(InvalidArgumentError, match="hedge_budget"):
        KuboCAS(hedge_budget=2.0)
    with pytest.raises(InvalidArgumentError, match="request_deadline"):
        KuboCAS(request_deadline=0)
