"""Shared fixtures and helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from multiformats import CID, multihash

from py_hamt import HAMT, ContentAddressedStore, InMemoryCAS
from py_hamt.cas.base import check_range, slice_range

if TYPE_CHECKING:
    from py_hamt import WriteResult
    from py_hamt.cas.base import Codec, IPLDKind
    from py_hamt.cas.write_result import DigestAlgorithm

T = TypeVar("T")

_B3 = multihash.get("blake3")


class CIDCAS(ContentAddressedStore):
    """An in-memory store returning CIDv1(codec, blake3), as a Kubo node does
    for small blocks; used to check the CID flavour of the format."""

    def __init__(self) -> None:
        self.blocks: dict[CID, bytes] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"blocks": {bytes(c): b for c, b in self.blocks.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.blocks = {CID.decode(c): b for c, b in state["blocks"].items()}

    async def save(self, data: bytes, codec: Any) -> CID:
        cid = CID("base32", 1, codec, _B3.digest(data, size=32))
        self.blocks[cid] = bytes(data)
        return cid

    async def load(
        self,
        id: Any,  # noqa: A002
        offset: int | None = None,
        length: int | None = None,
        suffix: int | None = None,
    ) -> bytes:
        check_range(offset, length, suffix)
        return slice_range(self.blocks[id], offset, length, suffix)

    if TYPE_CHECKING:
        # A py-hamt 3.x store (save/load): ContentAddressedStore.__init_subclass__
        # builds put and _load over them at runtime, which mypy cannot see.
        async def put(
            self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
        ) -> WriteResult: ...

        async def _load(
            self,
            id: IPLDKind,  # noqa: A002
            offset: int | None,
            length: int | None,
            suffix: int | None,
        ) -> bytes: ...


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine from a synchronous (e.g. hypothesis) test."""
    return asyncio.run(coro)  # type: ignore[arg-type]


class CountingCAS(InMemoryCAS):
    """An in-memory store that counts loads and lets a test disturb them:
    each load first yields to the loop (so concurrent loads interleave);
    while ``failures`` is positive a load fails with ``ConnectionError``
    (a store that went away); while ``gate`` is set, loads wait for it to
    open, after setting ``waiting``."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.failures = 0
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def load(
        self,
        id: Any,  # noqa: A002 - the CAS method's public name
        offset: Any = None,
        length: Any = None,
        suffix: Any = None,
    ) -> bytes:
        self.loads += 1
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("gateway went away")
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        return await super().load(id, offset, length, suffix)


async def build_from(
    items: Iterable[tuple[str, bytes]],
    cas: ContentAddressedStore | None = None,
    max_bucket_size: int = 4,
) -> HAMT:
    """A committed HAMT holding exactly ``items``."""
    hamt = await HAMT.build(
        cas=cas or InMemoryCAS(), values_are_bytes=True, max_bucket_size=max_bucket_size
    )
    for k, v in items:
        await hamt.set(k, v)
    await hamt.make_read_only()
    return hamt


@pytest.fixture
def cas() -> InMemoryCAS:
    return InMemoryCAS()


@pytest.fixture
def cid_cas() -> CIDCAS:
    return CIDCAS()


@pytest.fixture(params=["mem", "cid"])
def any_cas(request: pytest.FixtureRequest) -> ContentAddressedStore:
    return InMemoryCAS() if request.param == "mem" else CIDCAS()


AsyncFn = Callable[..., Awaitable[Any]]


# ------------------------------------------------------- a real IPFS node
SHARED_NODE = Path(__file__).resolve().parents[2] / "shared" / "ipfs-node" / "start.sh"


@dataclass(frozen=True)
class IpfsNode:
    rpc: str
    gateway: str
    pid: int


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    """A real IPFS node (js-ipfs speaking Kubo's RPC) for the integration tier.

    Started once per test run with ``shared/ipfs-node/start.sh`` in a fresh
    directory (so a fresh repo). Its npm install is kept in
    ``$PY_HAMT_IPFS_WORKDIR`` (default ``~/.cache/py-hamt/ipfs-node``) and
    linked in, so only the first run on a machine pays for ``npm ci``.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"real-node tests need {' and '.join(missing)} on PATH (not found)")
    if not SHARED_NODE.exists():
        pytest.skip(f"real-node tests need {SHARED_NODE} beside the checkout")
    cache = Path(
        os.environ.get("PY_HAMT_IPFS_WORKDIR", Path.home() / ".cache" / "py-hamt" / "ipfs-node")
    )
    cached_modules = cache / "node_modules"
    work = tmp_path_factory.mktemp("ipfs-node")
    if (cached_modules / "ipfs-daemon").is_dir():
        (work / "node_modules").symlink_to(cached_modules, target_is_directory=True)
    started = subprocess.run(
        ["bash", str(SHARED_NODE), str(work)], capture_output=True, text=True, timeout=1200
    )
    if started.returncode != 0:
        pytest.fail(f"start.sh failed ({started.returncode}): {started.stderr[-2000:]}")
    env = dict(
        line.split("=", 1)
        for line in (work / "endpoints.env").read_text().splitlines()
        if "=" in line
    )
    node = IpfsNode(env["IPFS_RPC"], env["IPFS_GATEWAY"], int(env["IPFS_PID"]))
    try:
        yield node
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGTERM)
        installed = work / "node_modules"
        if not installed.is_symlink() and (installed / "ipfs-daemon").is_dir():
            with contextlib.suppress(OSError):
                cache.mkdir(parents=True, exist_ok=True)
                if not cached_modules.exists():
                    shutil.move(str(installed), str(cached_modules))
