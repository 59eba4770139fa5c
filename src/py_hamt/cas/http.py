"""HTTP plumbing for network stores: retries, per-loop clients, and the one
place where httpx's exceptions become py_hamt's.

Retried: timeouts, connection errors (refused, reset, truncated bodies) and
the statuses in :data:`RETRY_STATUSES`. Every other error status fails at
once. After the last try the error is raised with the URL (and the id being
fetched, if any) in its message, chained to the httpx exception.

A total deadline (:attr:`RetryPolicy.total_timeout`) bounds the time a call
that fetches or looks up a block (one made with a ``block_id``) may take
across all its tries and waits: each try's timeouts are cut to the time
left, and no retry starts (or is waited for) past the deadline. A block a
gateway does not have, answered with 504s or not at all, therefore fails
within ``total_timeout`` seconds, with a message saying the block is not
available. Uploads, imports and pins are bounded by the per-request timeout
and ``max_retries`` only, so a large upload is never cut short by it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from py_hamt import observability
from py_hamt.errors import (
    BlockNotFoundError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidTypeError,
    NodeUnreachableError,
    RequestTimeoutError,
    TransportError,
    format_id,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "RETRY_STATUSES",
    "ClientPool",
    "RetryPolicy",
    "capped_timeout",
    "origin_of",
    "send_once",
    "send_with_retries",
]

log = logging.getLogger("py_hamt.http")

RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
DEFAULT_TOTAL_TIMEOUT: Final = 30.0
MAX_RETRY_AFTER: Final = 120.0
MAX_REDIRECTS: Final = 5
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# Sent to origins the caller's credentials are not for. An allowlist: any
# other header the caller configured may carry a credential.
_FORWARDABLE_HEADERS: Final = frozenset(
    {"accept", "accept-encoding", "accept-language", "user-agent", "host"}
)
_CLOSE_TIMEOUT: Final = 10.0


async def _sleep(seconds: float) -> None:
    """Indirection so tests can replace the clock instead of sleeping."""
    await asyncio.sleep(seconds)


def _monotonic() -> float:
    """Indirection so tests can replace the clock the deadline is kept by."""
    return time.monotonic()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Try ``n`` (from 0) waits ``initial_delay * backoff_factor**n``, scaled by a
    random factor in ``[1 - jitter, 1 + jitter]``. A server's ``Retry-After``
    replaces the computed wait (capped at :data:`MAX_RETRY_AFTER` seconds).

    ``total_timeout`` (seconds, or ``None`` for no limit) bounds one block
    fetch across all its tries and waits (see the module docstring).
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    backoff_factor: float = 2.0
    jitter: float = 0.25
    total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        total = self.total_timeout
        if total is not None and (
            not isinstance(total, (int, float))
            or isinstance(total, bool)
            or not math.isfinite(total)
            or total <= 0
        ):
            raise InvalidArgumentError(
                f"total_timeout must be a number of seconds > 0 or None, got {total!r}"
            )
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InvalidArgumentError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if not self.initial_delay > 0:
            raise InvalidArgumentError(f"initial_delay must be > 0, got {self.initial_delay!r}")
        if not self.backoff_factor >= 1:
            raise InvalidArgumentError(f"backoff_factor must be >= 1, got {self.backoff_factor!r}")
        if not 0 <= self.jitter < 1:
            raise InvalidArgumentError(f"jitter must be in [0, 1), got {self.jitter!r}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        base = self.initial_delay * self.backoff_factor**attempt
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ClientPool:
    """Hands out an ``httpx.AsyncClient`` for the running event loop.

    A client passed in is used on every loop and never closed here: it is
    the caller's. Otherwise one client is made per event loop (httpx clients
    cannot cross loops): by ``client_factory`` when given (then it is ours to
    close, and its own headers and auth apply), else with ``headers``,
    ``auth`` and ``timeout`` applied. ``concurrency`` bounds requests in
    flight on each loop.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        *,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
        headers: Mapping[str, str] | None,
        auth: httpx.Auth | tuple[str, str] | None,
        timeout: httpx.Timeout | float,
        concurrency: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise InvalidArgumentError(
                f"client must be an httpx.AsyncClient, got {type(client).__name__}"
            )
        if client_factory is not None and not callable(client_factory):
            raise InvalidArgumentError(
                f"client_factory must be callable, got {type(client_factory).__name__}"
            )
        self._external = client
        self._factory = client_factory
        self._headers = dict(headers or {})
        self._auth = auth
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._concurrency = concurrency
        self._transport = transport
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only: clients and semaphores are per
        process and loop, and are made again on first use.

        Raises:
            InvalidTypeError: a caller's client cannot travel to another
                process (also a ``TypeError``, as pickle expects).
        """
        if self._external is not None:
            raise InvalidTypeError(
                "cannot pickle a KuboCAS built with client=...; let it make its own clients"
            )
        state = self.__dict__.copy()
        state.update(_clients={}, _limits={})
        return state

    def _forget_closed_loops(self) -> None:
        for loop in [lp for lp in self._limits if lp.is_closed()]:
            self._limits.pop(loop, None)
            self._clients.pop(loop, None)

    def client(self) -> httpx.AsyncClient:
        """The client for the running loop (made on first use)."""
        if self._external is not None:
            return self._external
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None and self._factory is not None:
            self._forget_closed_loops()
            client = self._factory()
            if not isinstance(client, httpx.AsyncClient):
                raise InvalidTypeError(
                    f"client_factory returned {type(client).__name__}, not an httpx.AsyncClient"
                )
            self._clients[loop] = client
        if client is None:
            self._forget_closed_loops()
            client = httpx.AsyncClient(
                headers=self._headers,
                auth=self._auth,
                timeout=self._timeout,
                transport=self._transport,
                limits=httpx.Limits(
                    max_connections=self._concurrency,
                    max_keepalive_connections=self._concurrency,
                ),
            )
            self._clients[loop] = client
        return client

    def limit(self) -> asyncio.Semaphore:
        """The semaphore bounding requests in flight on the running loop."""
        loop = asyncio.get_running_loop()
        sem = self._limits.get(loop)
        if sem is None:
            self._forget_closed_loops()
            sem = self._limits[loop] = asyncio.Semaphore(self._concurrency)
        return sem

    def request_headers(self) -> dict[str, str]:
        """Headers to add per request: those given, when the client is the caller's."""
        return self._headers if self._external is not None else {}

    async def aclose(self) -> None:
        """Close every client this pool made, on whichever loop made it.

        The running loop's client is closed here; a client made on another
        loop that is still running (zarr's I/O thread, for one) is closed on
        that loop. Clients of loops that have closed cannot be closed any
        more and are dropped. A caller's client is left open.
        """
        current = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        self._limits.clear()
        for loop, client in clients.items():
            if loop is current:
                await client.aclose()
            elif loop.is_running():
                done = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(done), _CLOSE_TIMEOUT)
                except TimeoutError:
                    log.warning("could not close an HTTP client on another event loop in time")


def _refused(exc: BaseException) -> bool:
    """Whether a connect error was a refusal, anywhere down its cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _what(block_id: object, url: str) -> str:
    return f"{format_id(block_id)} from {url}" if block_id is not None else url


def capped_timeout(timeout: httpx.Timeout, left: float) -> httpx.Timeout:
    """``timeout`` with every phase cut to at most ``left`` seconds."""

    def cap(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def _gave_up(failure: TransportError, block_id: object, tries: int, why: str) -> TransportError:
    """``failure`` again, saying why no more tries were made. Fetching a block,
    an error status or a timeout means the block is not available there; a
    node that cannot be reached says nothing about the block, so its message
    still starts with what happened to the connection."""
    if block_id is None or isinstance(failure, NodeUnreachableError):
        message = f"{failure} ({why} after {tries} tries)"
    else:
        message = (
            f"block {format_id(block_id)} not found or not available "
            f"({why} after {tries} tries): {failure}"
        )
    if isinstance(failure, HTTPStatusError):
        return HTTPStatusError(message, failure.url, failure.status_code, failure.block_id)
    return type(failure)(message, failure.url, failure.block_id)


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)``, the port defaulted from the scheme, so that
    ``https://h`` and ``https://h:443`` are one origin."""
    parts = httpx.URL(url)
    scheme = parts.scheme.lower()
    return scheme, parts.host.lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _foreign_headers(built: httpx.Headers, asked: Mapping[str, str] | None) -> httpx.Headers:
    """Headers for an origin the caller's credentials are not for: content
    negotiation and ``Host`` only, plus what this request itself asked for
    (``Range``, ``Accept``). Any other header may be a credential."""
    kept = [(k, v) for k, v in built.multi_items() if k.lower() in _FORWARDABLE_HEADERS]
    headers = httpx.Headers(kept)
    headers.update(dict(asked or {}))
    return headers


async def send_once(
    pool: ClientPool,
    method: str,
    url: str,
    *,
    block_id: object = None,
    not_found_is_missing_block: bool = False,
    credentialed: Callable[[str], bool] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One try: send a request and return the response if it succeeded.

    ``credentialed(url)`` says whether the caller's headers and auth may go to
    that URL's origin; when it says no, only content-negotiation headers are
    sent and no auth (``None``: everything goes everywhere, for the RPC
    endpoint). GET redirects are followed here, hop by hop, so that each
    target's origin is checked again (at most :data:`MAX_REDIRECTS`).

    Raises:
        NodeUnreachableError, RequestTimeoutError: as :func:`send_with_retries`.
        HTTPStatusError: an error status (``retry_after`` set from the header).
        BlockNotFoundError: 404 when ``not_found_is_missing_block`` is set.
    """
    extra_headers = pool.request_headers()
    if extra_headers:
        kwargs["headers"] = {**extra_headers, **kwargs.get("headers", {})}
    client = pool.client()
    asked = kwargs.get("headers")
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request(method, url, **kwargs)
        foreign = credentialed is not None and not credentialed(url)
        if foreign:
            request.headers = _foreign_headers(request.headers, asked)
        try:
            async with pool.limit():
                response = await client.send(
                    request,
                    auth=None if foreign else httpx.USE_CLIENT_DEFAULT,
                    follow_redirects=False,
                )
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(
                f"timed out ({type(exc).__name__}) fetching {_what(block_id, url)}", url, block_id
            ) from exc
        except httpx.ConnectError as exc:
            reason = "connection refused" if _refused(exc) else "cannot connect"
            raise NodeUnreachableError(
                f"{reason}: {_what(block_id, url)} ({exc})", url, block_id
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise NodeUnreachableError(
                f"connection broken ({type(exc).__name__}: {exc}) fetching {_what(block_id, url)}",
                url,
                block_id,
            ) from exc
        location = response.headers.get("location")
        if method == "GET" and response.is_redirect and location:
            url = str(response.url.join(location))
            continue
        status = response.status_code
        log.debug("%s %s -> %d", method, url, status)
        if status < 400:
            return response
        if status == 404 and not_found_is_missing_block:
            raise BlockNotFoundError(block_id, f"404 from {url}")
        body = " ".join(response.text[:200].split())
        raise HTTPStatusError(
            f"HTTP {status} for {_what(block_id, url)}" + (f": {body}" if body else ""),
            url,
            status,
            block_id,
            parse_retry_after(response.headers.get("retry-after")),
        )
    raise HTTPStatusError(
        f"more than {MAX_REDIRECTS} redirects fetching {_what(block_id, url)}", url, 310, block_id
    )


def _status(failure: TransportError) -> str:
    """A failure as a ``py_hamt.cas.status`` value: the HTTP status code, or
    the exception type."""
    if isinstance(failure, HTTPStatusError):
        return str(failure.status_code)
    return type(failure).__name__


async def send_with_retries(
    pool: ClientPool,
    policy: RetryPolicy,
    method: str,
    url: str,
    *,
    block_id: object = None,
    not_found_is_missing_block: bool = False,
    credentialed: Callable[[str], bool] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying what is transient; return a successful response.

    With a ``block_id``, the whole call, tries and waits, is bounded by
    ``policy.total_timeout``: each try's timeouts are cut to the time left,
    and a retry that could not start before the deadline is not made.
    ``credentialed`` is as in :func:`send_once`.

    Raises:
        NodeUnreachableError: connection refused, reset or cut short, on every try.
        RequestTimeoutError: no answer within the timeout, on every try, or
            none before the total deadline.
        HTTPStatusError: an error status (after retries for 429/502/503/504).
        BlockNotFoundError: 404 when ``not_found_is_missing_block`` is set.

        When retries run out or the deadline passes while fetching a block,
        the message starts ``block <id> not found or not available``.
    """
    total = policy.total_timeout if block_id is not None else None
    deadline = None if total is None else _monotonic() + total
    attempt = 0
    while True:
        retry_after: float | None = None
        if deadline is not None:
            timeout = pool.client().timeout
            kwargs["timeout"] = capped_timeout(timeout, max(deadline - _monotonic(), 0.001))
        try:
            return await send_once(
                pool,
                method,
                url,
                block_id=block_id,
                not_found_is_missing_block=not_found_is_missing_block,
                credentialed=credentialed,
                **kwargs,
            )
        except HTTPStatusError as exc:
            if exc.status_code not in RETRY_STATUSES:
                raise
            failure: TransportError = exc
            cause: BaseException | None = None
            retry_after = exc.retry_after
        except (RequestTimeoutError, NodeUnreachableError) as exc:
            failure, cause = exc, exc.__cause__
        tries = attempt + 1
        if attempt >= policy.max_retries:
            raise _gave_up(failure, block_id, tries, "retries exhausted") from cause
        wait = policy.delay(attempt, retry_after)
        if deadline is not None and _monotonic() + wait >= deadline:
            why = f"total_timeout of {total:g} s reached"
            raise _gave_up(failure, block_id, tries, why) from cause
        log.warning("retrying %s %s in %.2fs after: %s", method, url, wait, failure)
        if observability.ACTIVE:
            observability.add(
                "py_hamt.cas.load.retries", 1, {"py_hamt.cas.status": _status(failure)}
            )
        await _sleep(wait)
        attempt += 1
