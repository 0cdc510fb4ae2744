"""GCRA rate limits (chargeverse/ratelimit.py): a burst of `count`, then one per `period / count`; refusals charge
nothing; several limits are all-or-nothing."""

from __future__ import annotations

import pytest

from chargeverse.ratelimit import Limit, check

S = 1_000_000  # µs


def _run(limit: Limit, times_s: list[float]) -> list[bool]:
    tat = None
    out = []
    for t in times_s:
        d = check([tat], int(t * S), [limit])
        out.append(d.allowed)
        tat = d.tats[0]
    return out


def test_a_burst_of_count_then_refusal_with_retry_after_one_interval() -> None:
    lim = Limit(5, 60)  # one every 12 s after a burst of 5
    tat = None
    for _ in range(5):
        d = check([tat], 0, [lim])
        assert d.allowed
        tat = d.tats[0]
    d = check([tat], 0, [lim])
    assert not d.allowed and d.retry_after == pytest.approx(12.0)
    assert d.retry_after_header == "12"
    assert d.tats == (tat,)  # refused: nothing charged


def test_obeying_retry_after_is_admitted_and_hammering_does_not_extend_the_wait() -> None:
    lim = Limit(5, 60)
    assert _run(lim, [0] * 5 + [1, 2, 3, 11.9, 12.0]) == [True] * 5 + [False, False, False, False, True]
    # after a full period of silence the whole burst is back
    assert _run(lim, [0] * 5 + [60] * 5 + [60]) == [True] * 10 + [False]


def test_the_long_run_rate_is_count_per_period() -> None:
    lim = Limit(10, 60)
    times = [i * 0.5 for i in range(2401)]  # 2 requests/s for 20 minutes (t = 0 .. 1200 s)
    admitted = sum(_run(lim, times))
    assert admitted == 10 + 20 * 10  # the initial burst plus 10 a minute


def test_several_limits_are_all_or_nothing_and_report_the_longest_wait() -> None:
    ip, account = Limit(20, 60), Limit(3, 900)
    tats: list = [None, None]
    for _ in range(3):
        d = check(tats, 0, [ip, account])
        assert d.allowed
        tats = list(d.tats)
    d = check(tats, 0, [ip, account])
    assert not d.allowed and d.retry_after == pytest.approx(300.0)  # the account's interval, not the IP's
    assert list(d.tats) == tats  # the IP bucket was not charged for the refused request


def test_retry_after_header_rounds_up_to_whole_seconds() -> None:
    lim = Limit(3, 1)
    tat = None
    for _ in range(3):
        tat = check([tat], 0, [lim]).tats[0]
    d = check([tat], 0, [lim])
    assert d.retry_after == pytest.approx(1 / 3, abs=1e-5) and d.retry_after_header == "1"


def test_limits_parse_and_refuse_nonsense() -> None:
    assert Limit.parse("20/60") == Limit(20, 60.0) and str(Limit(20, 60)) == "20/60s"
    assert Limit.parse(" 5/0.5 ").interval_us == 100_000
    for bad in ("20", "a/b", "0/60", "5/0", "5/-1", ""):
        with pytest.raises(ValueError):
            Limit.parse(bad)
    with pytest.raises(ValueError):
        check([None], 0, [Limit(1, 1), Limit(1, 1)])
