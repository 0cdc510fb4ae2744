"""Backoff timing, the per-partner circuit breaker and partner lanes (edges/ocpi/breaker.py, outbound.py), on a fake
clock: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from edges.ocpi.breaker import Breaker, State, backoff_delay
from edges.ocpi.client import PartnerError
from edges.ocpi.outbound import CircuitOpen, Lanes, Policy, retryable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- backoff ---------------------------------------------------------------------------------------------------


def test_backoff_doubles_per_attempt_and_is_capped() -> None:
    mid = [backoff_delay(n, 0.5, base=0.5, cap=30) for n in range(1, 9)]
    assert mid == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_backoff_jitter_spans_half_to_one_and_a_half() -> None:
    assert backoff_delay(3, 0.0, base=1, cap=100) == 2.0
    assert backoff_delay(3, 0.999999, base=1, cap=100) == pytest.approx(6.0, rel=1e-5)


@pytest.mark.parametrize("attempt,rand", [(0, 0.5), (1, 1.0), (1, -0.1)])
def test_backoff_rejects_nonsense(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, rand)


# ---- breaker ---------------------------------------------------------------------------------------------------


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    b = Breaker(FakeClock(), failure_threshold=3, reset_after=10)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.current() == State.CLOSED
    b.failure()
    assert b.current() == State.OPEN and not b.allow()


def test_success_resets_the_failure_count() -> None:
    b = Breaker(FakeClock(), failure_threshold=3, reset_after=10)
    b.failure(), b.failure(), b.success(), b.failure(), b.failure()
    assert b.current() == State.CLOSED


def test_open_breaker_allows_one_trial_after_reset_time_and_closes_on_success() -> None:
    clock = FakeClock()
    b = Breaker(clock, failure_threshold=1, reset_after=10)
    b.failure()
    clock.now += 9.9
    assert not b.allow() and b.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.current() == State.HALF_OPEN
    assert b.allow()          # the trial
    assert not b.allow()      # only one at a time
    b.success()
    assert b.current() == State.CLOSED and b.allow()
    assert b.transitions == [(State.CLOSED, State.OPEN), (State.OPEN, State.HALF_OPEN),
                             (State.HALF_OPEN, State.CLOSED)]


def test_failed_trial_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    b = Breaker(clock, failure_threshold=5, reset_after=10)
    for _ in range(5):
        b.failure()
    clock.now += 10
    assert b.allow()
    b.failure()  # one failure in half-open is enough
    assert b.current() == State.OPEN
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        Breaker(FakeClock(), failure_threshold=0)
    with pytest.raises(ValueError):
        Breaker(FakeClock(), reset_after=0)


# ---- what is retried -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc,expect", [
    (httpx.ConnectError("refused"), True),
    (PartnerError("POST x: ConnectError"), True),                 # transport failure wrapped by client.call
    (PartnerError("x", http_status=503, status=3000), True),
    (PartnerError("x", http_status=429), True),
    (PartnerError("x", http_status=404, status=2000), False),      # they answered: the request is the problem
    (PartnerError("x", http_status=200, status=2001), False),
    (CircuitOpen("open"), False),
    (ValueError("bug"), False),
])
def test_retryable(exc: BaseException, expect: bool) -> None:
    assert retryable(exc) is expect


# ---- lanes: retries, breaker, isolation ------------------------------------------------------------------------


class FakeTime:
    """A clock and a sleep: sleeping advances the clock and records the delay (never waits)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        self.now += d
        await asyncio.sleep(0)


def _lanes(t: FakeTime, **policy: Any) -> Lanes:
    return Lanes(Policy(**{"retries": 3, "base": 1.0, "cap": 30.0, "failure_threshold": 10, "reset_after": 60.0,
                           **policy}), clock=t.clock, sleep=t.sleep, rand=lambda: 0.5)


def test_retries_with_backoff_then_succeeds() -> None:
    t = FakeTime()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise PartnerError("down", http_status=503)
        return "ok"

    async def go() -> None:
        lanes = _lanes(t)
        got = await lanes.submit("p", flaky)
        await lanes.close()
        assert got.value == "ok" and got.error is None and got.attempts == 3
        assert t.sleeps == [1.0, 2.0]

    asyncio.run(go())


def test_gives_up_after_retries_and_keeps_the_last_error() -> None:
    t = FakeTime()

    async def down() -> None:
        raise PartnerError("down", http_status=502)

    async def go() -> None:
        lanes = _lanes(t, retries=2)
        got = await lanes.submit("p", down)
        await lanes.close()
        assert got.attempts == 3 and isinstance(got.error, PartnerError) and got.error.http_status == 502
        assert t.sleeps == [1.0, 2.0]

    asyncio.run(go())


def test_a_client_error_is_not_retried_and_does_not_trip_the_breaker() -> None:
    t = FakeTime()

    async def bad() -> None:
        raise PartnerError("no", http_status=200, status=2001)

    async def go() -> None:
        lanes = _lanes(t, failure_threshold=1)
        got = await lanes.submit("p", bad)
        assert got.attempts == 1 and t.sleeps == []
        assert lanes.breaker("p").current() == State.CLOSED
        await lanes.close()

    asyncio.run(go())


def test_open_breaker_refuses_without_calling_and_recovers_after_reset() -> None:
    t = FakeTime()
    calls = 0
    up = False

    async def job() -> str:
        nonlocal calls
        calls += 1
        if not up:
            raise PartnerError("down", http_status=503)
        return "ok"

    async def go() -> None:
        nonlocal up
        lanes = _lanes(t, retries=0, failure_threshold=2, reset_after=60)
        for _ in range(2):
            await lanes.submit("p", job)
        assert lanes.breaker("p").current() == State.OPEN and calls == 2
        got = await lanes.submit("p", job)
        assert isinstance(got.error, CircuitOpen) and got.attempts == 0 and calls == 2
        t.now += 60
        up = True
        got = await lanes.submit("p", job)
        assert got.value == "ok" and lanes.breaker("p").current() == State.CLOSED
        await lanes.close()

    asyncio.run(go())


def test_a_failing_partner_never_delays_another() -> None:
    """Partner A's call hangs (and would then be retried); partner B's calls complete meanwhile, in order."""
    t = FakeTime()
    release = asyncio.Event
    order: list[str] = []

    async def go() -> None:
        gate = release()

        async def hanging() -> None:
            await gate.wait()
            raise PartnerError("timeout")

        def b(i: int) -> Any:
            async def job() -> int:
                order.append(f"b{i}")
                return i
            return job

        lanes = _lanes(t, retries=5)
        a = lanes.submit("A", hanging)
        bs = [lanes.submit("B", b(i)) for i in range(3)]
        done = await asyncio.wait_for(asyncio.gather(*bs), timeout=5)
        assert [d.value for d in done] == [0, 1, 2] and order == ["b0", "b1", "b2"]
        assert not a.done()  # A is still stuck on its first attempt
        gate.set()
        got = await a
        assert got.attempts == 6 and isinstance(got.error, PartnerError)
        await lanes.close()

    asyncio.run(go())


def test_one_lane_runs_its_jobs_one_at_a_time_in_order() -> None:
    t = FakeTime()
    running, peak, seen = 0, 0, []

    def job(i: int) -> Any:
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            seen.append(i)
            running -= 1
        return run

    async def go() -> None:
        lanes = _lanes(t)
        await asyncio.gather(*[lanes.submit("p", job(i)) for i in range(5)])
        await lanes.close()

    asyncio.run(go())
    assert seen == [0, 1, 2, 3, 4] and peak == 1
