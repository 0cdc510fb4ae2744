"""Per-connection state: the rate limiter admits burst then rate, and retransmissions are recognised exactly."""

from __future__ import annotations

import pytest

from edges.ocpp.server import keepalive
from edges.ocpp.session import AnswerMemory, Remembered, TokenBucket


def test_bucket_admits_the_burst_then_the_rate() -> None:
    b = TokenBucket(rate=2, burst=5, now=0.0)
    assert [b.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert b.retry_after() == pytest.approx(0.5)
    assert b.take(0.49) is False
    assert b.take(0.5) is True  # one token back after 1/rate seconds
    assert b.take(100.0) and sum(b.take(100.0) for _ in range(10)) == 4  # refills to the burst, never beyond


def test_bucket_ignores_a_clock_that_goes_backwards_and_rejects_nonsense() -> None:
    b = TokenBucket(rate=1, burst=1, now=10.0)
    assert b.take(10.0) and not b.take(5.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)


def _r(action: str, payload: dict, reply: str = "[3,\"1\",{}]") -> Remembered:
    return Remembered(action, payload, reply, "in-1", "out-1")


def test_memory_recognises_only_the_same_id_action_and_payload() -> None:
    m = AnswerMemory(size=2)
    m.remember("1", _r("Heartbeat", {}))
    assert m.recall("1", "Heartbeat", {}) is not None
    assert m.recall("1", "Heartbeat", {"x": 1}) is None  # same id, other content: a new CALL
    assert m.recall("1", "Authorize", {}) is None
    assert m.recall("2", "Heartbeat", {}) is None


def test_memory_is_bounded_and_keeps_the_newest() -> None:
    m = AnswerMemory(size=2)
    for i in range(3):
        m.remember(str(i), _r("Heartbeat", {}))
    assert len(m) == 2 and m.recall("0", "Heartbeat", {}) is None and m.recall("2", "Heartbeat", {})


@pytest.mark.parametrize("heartbeat", [1, 2, 10, 60, 300, 3600])
def test_a_silent_charger_is_dropped_within_two_heartbeat_intervals(heartbeat) -> None:  # noqa: ANN001
    interval, timeout, close = keepalive(heartbeat)
    assert interval + timeout + close <= 2 * heartbeat
    assert interval > 0 and timeout > 0
