"""A simulated IPFS path gateway on loopback, for tests and benchmarks.

It serves ``GET /ipfs/<cid>`` from a dict of blocks over real HTTP/1.1
(keep-alive, ``Range``), on 127.0.0.1 only, from a thread of its own, with
faults injected on purpose: latency, bandwidth, a share of 503s, stalls (the
request is accepted and never answered), resets, and lying bodies (the right
length, the wrong bytes). Faults are drawn from a seeded generator, so a run
is repeatable.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multiformats import CID

__all__ = ["Faults", "GatewaySim"]


@dataclass
class Faults:
    """What goes wrong, per request. Rates are probabilities in [0, 1]."""

    latency: float = 0.0  # seconds before the first byte of every answer
    bandwidth: float | None = None  # bytes per second of body, None: unlimited
    error_rate: float = 0.0  # answered 503
    stall_rate: float = 0.0  # never answered
    reset_rate: float = 0.0  # connection closed without an answer
    lie_rate: float = 0.0  # 200 with bytes that are not the block
    seed: int = 0


@dataclass
class GatewaySim:
    """One gateway. ``start()`` returns its base URL; ``stop()`` ends it."""

    blocks: Mapping[str, bytes]
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    served: int = 0
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _port: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.faults.seed)
        self._by_bytes = {bytes(CID.decode(k)): v for k, v in self.blocks.items()}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("gateway simulator did not start")
        return self.url

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        await asyncio.wait(pending, timeout=5) if pending else None

    def __enter__(self) -> GatewaySim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self._port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # answers go out whole: no Nagle delay on loopback
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if not await self._answer(request, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(self, request: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; ``False`` when the connection must end."""
        lines = request.decode("latin-1").split("\r\n")
        _, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        self.requests += 1
        self.headers_seen.append(headers)
        f, draw = self.faults, self._rng.random()
        if f.latency:
            await asyncio.sleep(f.latency)
        if draw < f.stall_rate:
            await self._closing.wait()  # until the simulator stops
            return False
        draw -= f.stall_rate
        if draw < f.reset_rate:
            transport: Any = writer.transport
            transport.abort()
            return False
        draw -= f.reset_rate
        if draw < f.error_rate:
            await self._send(writer, 503, b"busy", {})
            return True
        draw -= f.error_rate
        data = self._block(path)
        if data is None:
            await self._send(writer, 404, b"not found", {})
            return True
        if draw < f.lie_rate:
            data = bytes(self._rng.getrandbits(8) for _ in range(len(data)))
        status, extra = 200, {}
        wanted = headers.get("range")
        if wanted and wanted.startswith("bytes="):
            first_text, _, last_text = wanted[6:].partition("-")
            if first_text == "":
                first, last = max(len(data) - int(last_text), 0), len(data) - 1
            else:
                first = int(first_text)
                last = min(int(last_text), len(data) - 1) if last_text else len(data) - 1
            if first >= len(data):
                await self._send(writer, 416, b"", {})
                return True
            extra = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
            status, data = 206, data[first : last + 1]
        self.served += 1
        await self._send(writer, status, data, extra)
        return True

    def _block(self, path: str) -> bytes | None:
        if not path.startswith("/ipfs/"):
            return None
        try:
            return self._by_bytes.get(bytes(CID.decode(path[6:].split("?", 1)[0])))
        except (ValueError, KeyError):
            return None

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str]
    ) -> None:
        reason = {200: "OK", 206: "Partial Content", 404: "Not Found", 416: "Range Not Satisfiable"}
        head = [f"HTTP/1.1 {status} {reason.get(status, 'Service Unavailable')}"]
        head += [f"Content-Length: {len(body)}", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode()
        rate = self.faults.bandwidth
        if not rate:
            writer.write(head_bytes + body)
            await writer.drain()
            return
        writer.write(head_bytes)
        step = max(int(rate / 100), 1)
        for start in range(0, len(body), step):
            writer.write(body[start : start + step])
            await writer.drain()
            await asyncio.sleep(step / rate)
