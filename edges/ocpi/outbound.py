"""Our outbound calls to partners: one lane per partner, retries with backoff and jitter, a circuit breaker each.

Invariants:
- **Isolation.**  Every partner has its own queue and its own task; a partner whose calls hang, fail or wait out
  a backoff holds up only its own lane.  Calls to other partners start at once.
- **Order per partner.**  A lane runs its jobs one at a time in submission order (commands for one CPO arrive in
  the order they were asked for, as `ocpi.outbound` keyed by partner promises).
- **Bounded effort.**  A job is tried at most `1 + retries` times; retryable failures (transport errors, HTTP
  429/5xx, edges/ocpi/pull.py's rule) wait `backoff_delay` between attempts; anything else fails at once.  When
  the partner's breaker is open the job is not tried at all (it fails with CircuitOpen) - the caller records it.
- The clock, the sleep and the random source are injectable: unit tests run the whole timing without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx

from edges.ocpi.breaker import Breaker, backoff_delay
from edges.ocpi.client import PartnerError

log = logging.getLogger(__name__)


class CircuitOpen(PartnerError):
    """The partner's breaker is open: the call was not made."""


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, CircuitOpen):
        return False
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, PartnerError):
        # no HTTP status: a transport failure wrapped by edges/ocpi/client.call
        return exc.http_status is None and exc.status is None or (exc.http_status or 0) in (429, 500, 502, 503, 504)
    return False


@dataclass
class Attempted:
    """What a job came to: its value or its last error, and how many attempts it took."""

    value: Any = None
    error: BaseException | None = None
    attempts: int = 0


@dataclass
class Policy:
    retries: int = 4
    base: float = 0.5
    cap: float = 30.0
    failure_threshold: int = 5
    reset_after: float = 30.0


@dataclass
class _Lane:
    breaker: Breaker
    queue: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Attempted]]]
    task: asyncio.Task[None] | None = None


@dataclass
class Lanes:
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rand: Callable[[], float] = random.random
    lanes: dict[str, _Lane] = field(default_factory=dict)

    def breaker(self, partner_id: str) -> Breaker:
        return self._lane(partner_id).breaker

    def _lane(self, partner_id: str) -> _Lane:
        lane = self.lanes.get(partner_id)
        if lane is None:
            p = self.policy
            lane = _Lane(Breaker(self.clock, p.failure_threshold, p.reset_after), asyncio.Queue())
            self.lanes[partner_id] = lane
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._run(partner_id, lane),
                                                                name=f"ocpi-lane-{partner_id}")
        return lane

    def submit(self, partner_id: str, job: Callable[[], Awaitable[Any]]) -> asyncio.Future[Attempted]:
        """Queue `job` (a coroutine factory: called once per attempt) on the partner's lane; the future resolves
        to an Attempted (never raises)."""
        fut: asyncio.Future[Attempted] = asyncio.get_running_loop().create_future()
        self._lane(partner_id).queue.put_nowait((job, fut))
        return fut

    async def _run(self, partner_id: str, lane: _Lane) -> None:
        while True:
            job, fut = await lane.queue.get()
            try:
                out = await self.attempt(partner_id, lane.breaker, job)
            except asyncio.CancelledError:
                if not fut.done():
                    fut.cancel()
                raise
            except BaseException as exc:  # noqa: BLE001 - a lane never dies of one job
                out = Attempted(error=exc)
            if not fut.done():
                fut.set_result(out)

    async def attempt(self, partner_id: str, breaker: Breaker, job: Callable[[], Awaitable[Any]]) -> Attempted:
        out = Attempted()
        while True:
            if not breaker.allow():
                out.error = out.error or CircuitOpen(
                    f"partner {partner_id}: circuit open, retry in {breaker.retry_in():.0f}s")
                return out
            out.attempts += 1
            try:
                out.value = await job()
                out.error = None
                breaker.success()
                return out
            except Exception as exc:  # noqa: BLE001 - classified below
                out.error = exc
                if not retryable(exc):
                    # the partner answered (a 4xx, an OCPI error): it is up, the request is the problem
                    breaker.success()
                    return out
                breaker.failure()
                if out.attempts > self.policy.retries:
                    return out
                delay = backoff_delay(out.attempts, self.rand(), base=self.policy.base, cap=self.policy.cap)
                log.warning("partner %s: %s; retry %d/%d in %.2fs", partner_id, exc, out.attempts,
                            self.policy.retries, delay)
                await self.sleep(delay)

    async def close(self) -> None:
        tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
