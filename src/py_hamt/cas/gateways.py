"""Reading one block from several gateways: health, failover and hedging.

Every whole block KuboCAS reads is verified against its CID, so any gateway
may be asked, and two may be asked at once: a wrong answer is only that
gateway failing. For each read:

- Gateways are tried healthiest first: those not cooling down, fastest
  median latency first. A gateway that fails (error status, timeout, reset,
  bytes that do not verify) is skipped for ``cooldown`` seconds, longer after
  repeated failures; one that answers again is healthy again.
- **Hedging.** When the gateway asked has not answered within its own
  observed p90 latency (``hedge_min_delay`` to ``hedge_max_delay``), the same
  request goes to the next gateway (or, with one gateway, again on a fresh
  connection); the first verified answer wins and the other is cancelled. At
  most one hedge per try, and hedges stay within ``hedge_budget`` (a share of
  all requests) plus a few to start with.
- **Deadlines.** Each request has ``request_deadline`` seconds in all, which
  catches a gateway that accepts and never answers; a read has the retry
  policy's ``total_timeout`` in all. Only when every gateway has failed in a
  round does the read back off before the next round.
- A block every gateway answers 404 for is :class:`BlockNotFoundError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from py_hamt import observability
from py_hamt.cas import http
from py_hamt.cas.http import RETRY_STATUSES, RetryPolicy
from py_hamt.errors import (
    BlockNotFoundError,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    NodeUnreachableError,
    PyHamtError,
    RequestTimeoutError,
    TransportError,
    format_id,
)

__all__ = ["DEFAULT_REQUEST_DEADLINE", "GatewayHealth", "GatewayRouter", "HedgeConfig"]

log = logging.getLogger("py_hamt.gateways")

T = TypeVar("T")

DEFAULT_REQUEST_DEADLINE: Final = 20.0
_SAMPLES: Final = 64
_HEDGE_ALLOWANCE: Final = 4  # hedges allowed before the budget's share applies


def _now() -> float:
    return http._monotonic()  # the clock tests can replace


@dataclass(frozen=True)
class HedgeConfig:
    """When to send a second copy of a request (see the module docstring)."""

    enabled: bool = True
    budget: float = 0.10
    min_delay: float = 0.02
    max_delay: float = 2.0
    cooldown: float = 10.0
    request_deadline: float = DEFAULT_REQUEST_DEADLINE

    def __post_init__(self) -> None:
        if not 0 <= self.budget <= 1:
            raise InvalidArgumentError(f"hedge_budget must be in [0, 1], got {self.budget!r}")
        if not 0 < self.min_delay <= self.max_delay:
            raise InvalidArgumentError(
                f"hedge delays must satisfy 0 < min <= max, got {self.min_delay!r}, "
                f"{self.max_delay!r}"
            )
        if not self.cooldown >= 0:
            raise InvalidArgumentError(f"gateway cooldown must be >= 0, got {self.cooldown!r}")
        if not self.request_deadline > 0:
            raise InvalidArgumentError(
                f"request_deadline must be > 0 seconds, got {self.request_deadline!r}"
            )


@dataclass
class GatewayHealth:
    """What one gateway has shown: recent latencies and failures."""

    url: str
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    failures_in_a_row: int = 0
    cooling_until: float = 0.0
    requests: int = 0
    failures: int = 0

    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    def p90(self) -> float | None:
        if len(self.samples) < 4:
            return None
        ordered = sorted(self.samples)
        return ordered[min(int(len(ordered) * 0.9), len(ordered) - 1)]


class GatewayRouter:
    """Health, ranking and hedging for a fixed list of gateway base URLs.
    Shared by every event loop of a KuboCAS (the state is plain numbers)."""

    def __init__(self, urls: Sequence[str], hedge: HedgeConfig) -> None:
        if not urls:
            raise InvalidArgumentError("at least one gateway URL is needed")
        self.hedge = hedge
        self.gateways = [GatewayHealth(url) for url in urls]
        self.primary_requests = 0
        self.hedged_requests = 0
        self.requests_sent = 0

    # ------------------------------------------------------------ health
    def ranked(self) -> list[GatewayHealth]:
        """Gateways to try, best first; cooling ones last, soonest back first."""
        now = _now()
        ready = [g for g in self.gateways if g.cooling_until <= now]
        cooling = [g for g in self.gateways if g.cooling_until > now]
        order = {id(g): i for i, g in enumerate(self.gateways)}
        ready.sort(key=lambda g: (g.median(), order[id(g)]))
        cooling.sort(key=lambda g: g.cooling_until)
        return ready + cooling

    def _succeeded(self, gateway: GatewayHealth, seconds: float) -> None:
        gateway.samples.append(seconds)
        gateway.failures_in_a_row = 0
        gateway.cooling_until = 0.0

    def _failed(self, gateway: GatewayHealth, why: BaseException) -> None:
        gateway.failures += 1
        gateway.failures_in_a_row += 1
        backoff = min(2 ** (gateway.failures_in_a_row - 1), 8)
        gateway.cooling_until = _now() + self.hedge.cooldown * backoff
        log.warning("gateway %s failed (%s); cooling down", gateway.url, why)
        if observability.ACTIVE:
            observability.add("py_hamt.gateway.failovers", 1, {"py_hamt.gateway": gateway.url})

    def _hedge_delay(self, gateway: GatewayHealth) -> float:
        p90 = gateway.p90()
        guess = self.hedge.max_delay if p90 is None else p90
        return min(max(guess, self.hedge.min_delay), self.hedge.max_delay)

    def _may_hedge(self) -> bool:
        allowed = _HEDGE_ALLOWANCE + self.hedge.budget * self.primary_requests
        return self.hedge.enabled and self.hedged_requests < allowed

    # ------------------------------------------------------------- reads
    async def fetch(
        self,
        attempt: Callable[[str, float | None], Awaitable[T]],
        policy: RetryPolicy,
        block_id: object,
    ) -> T:
        """``attempt(base_url)`` against the gateways until one succeeds.

        ``attempt`` makes one request and returns verified content, or raises
        ``TransportError`` / ``IntegrityError`` (that gateway failed) or
        ``BlockNotFoundError`` (that gateway lacks the block).

        Raises:
            BlockNotFoundError: every gateway answered 404.
            TransportError, IntegrityError: the last failure, once every round
                failed or ``policy.total_timeout`` passed; the message says the
                block is not available and names the gateways asked.
        """
        total = policy.total_timeout
        deadline = None if total is None else _now() + total
        last: BaseException | None = None
        sent_before = self.requests_sent
        why = "retries exhausted"
        for round_no in range(policy.max_retries + 1):
            missing, transient = 0, False
            ranked = self.ranked()
            for i, gateway in enumerate(ranked):
                left = None if deadline is None else deadline - _now()
                if left is not None and left <= 0:
                    why = f"total_timeout of {total:g} s reached"
                    break
                backup = ranked[i + 1] if i + 1 < len(ranked) else gateway
                try:
                    return await self._hedged(attempt, gateway, backup, left)
                except BlockNotFoundError as exc:
                    missing, last = missing + 1, exc
                except HTTPStatusError as exc:
                    last, transient = exc, transient or exc.status_code in RETRY_STATUSES
                except TransportError as exc:
                    last, transient = exc, True
                except IntegrityError as exc:
                    last = exc
            if missing == len(ranked):
                names = ", ".join(g.url for g in ranked)
                raise BlockNotFoundError(block_id, f"404 from {names}")
            if not transient and last is not None and len(ranked) == 1:
                raise last  # a lasting answer from the only gateway: as it is
            left = None if deadline is None else deadline - _now()
            if left is not None and left <= 0:
                why = f"total_timeout of {total:g} s reached"
                break
            if not transient or round_no == policy.max_retries:
                break
            retry_after = last.retry_after if isinstance(last, HTTPStatusError) else None
            wait = policy.delay(round_no, retry_after)
            if left is not None and wait >= left:
                why = f"total_timeout of {total:g} s reached"
                break
            await http._sleep(wait)
        raise self._gave_up(last, block_id, why, self.requests_sent - sent_before)

    def _gave_up(
        self, last: BaseException | None, block_id: object, why: str, tries: int
    ) -> BaseException:
        where = f" from {len(self.gateways)} gateways" if len(self.gateways) > 1 else ""
        if isinstance(last, NodeUnreachableError):
            # Says nothing about the block: lead with what the connection did.
            message = f"{last} ({why} after {tries} tries{where})"
        else:
            message = (
                f"block {format_id(block_id)} not found or not available "
                f"({why} after {tries} tries{where}): {last}"
            )
        if isinstance(last, HTTPStatusError):
            return HTTPStatusError(message, last.url, last.status_code, block_id)
        if isinstance(last, TransportError):
            return type(last)(message, last.url, block_id)
        if isinstance(last, IntegrityError):
            return type(last)(message, block_id)
        return RequestTimeoutError(message, "", block_id)

    async def _timed(
        self,
        attempt: Callable[[str, float | None], Awaitable[T]],
        gateway: GatewayHealth,
        budget: float,
        left: float | None,
    ) -> T:
        start = _now()
        gateway.requests += 1
        self.requests_sent += 1
        try:
            async with asyncio.timeout(budget):
                result = await attempt(gateway.url, left)
        except BlockNotFoundError:
            self._succeeded(gateway, _now() - start)  # it answered: it is alive
            raise
        except (TransportError, IntegrityError) as exc:
            self._failed(gateway, exc)
            raise
        except TimeoutError as exc:  # the request deadline, not httpx's timeouts
            failure = RequestTimeoutError(
                f"no answer from {gateway.url} within {budget:.3g} s", gateway.url
            )
            self._failed(gateway, failure)
            raise failure from exc
        self._succeeded(gateway, _now() - start)
        return result

    async def _hedged(
        self,
        attempt: Callable[[str, float | None], Awaitable[T]],
        gateway: GatewayHealth,
        backup: GatewayHealth,
        left: float | None,
    ) -> T:
        budget = (
            self.hedge.request_deadline if left is None else min(self.hedge.request_deadline, left)
        )
        self.primary_requests += 1
        first = asyncio.ensure_future(self._timed(attempt, gateway, budget, left))
        tasks = {first}
        try:
            done, _ = await asyncio.wait(tasks, timeout=self._hedge_delay(gateway))
            if not done and self._may_hedge():
                self.hedged_requests += 1
                log.debug("hedging %s with %s", gateway.url, backup.url)
                if observability.ACTIVE:
                    observability.add("py_hamt.gateway.hedges", 1, {"py_hamt.gateway": backup.url})
                tasks.add(asyncio.ensure_future(self._timed(attempt, backup, budget, left)))
            failure: BaseException | None = None
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                    failure = task.exception()
            if failure is None:  # pragma: no cover - every task ended with a result or error
                raise RequestTimeoutError(f"no answer from {gateway.url}", gateway.url)
            raise failure
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                # The losing copy of a request: its outcome is moot.
                with contextlib.suppress(asyncio.CancelledError, PyHamtError):
                    await task
