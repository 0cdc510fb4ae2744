"""No leakage of the day's future into the online planner.

The online optimiser may use what happened on previous days (the reserve of expected arrivals) and
what has arrived so far today -- never the sessions of the day that have not arrived yet. These tests
replay a day, then replay it again with every session arriving after slot t altered (more energy,
other departures, extra cars, some removed): everything the planner executed up to and including slot
t must be identical, while later slots are allowed to (and do) differ.
"""

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.online import ONLINE_POLICY, replay
from streams.smartcharging.reserve import expected_arrivals, history_before, history_peak_floor

T, DT, CUT = 40, 0.25, 18


def random_day(seed: int, n: int = 14) -> list[EV]:
    rng = np.random.default_rng(seed)
    evs = []
    for i in range(n):
        a = int(rng.integers(0, 30))
        d = int(min(T, a + rng.integers(4, 20)))
        evs.append(EV(f"s{seed}e{i}", a, d, float(rng.uniform(2, 6.6 * (d - a) * DT)), 6.6, "site"))
    return evs


def altered_future(evs: list[EV], cut: int) -> list[EV]:
    """Same sessions up to `cut`; after it, requests/departures changed, one dropped, and a rush of
    six cars that need full power until the end -- a planner that peeked would charge the early cars
    harder before it."""
    out = [e for e in evs if e.arrival <= cut]
    late = [e for e in evs if e.arrival > cut]
    for j, e in enumerate(late[1:]):  # the first late session disappears
        out.append(replace(e, energy_kwh=6.6 * (T - e.arrival) * DT, departure=T) if j % 2 else
                   replace(e, energy_kwh=e.energy_kwh / 2))
    out += [EV(f"rush{i}", cut + 1 + i % 3, T, 6.6 * (T - cut - 1 - i % 3) * DT, 6.6, "site") for i in range(6)]
    return out


def flexible_morning() -> list[EV]:
    """Three early cars that stay all day with modest needs: how hard to charge them early is
    exactly the decision that knowledge of the afternoon would change."""
    return [EV(f"m{i}", i, T, 12.0 + 2 * i, 6.6, "site") for i in range(3)]


def executed(site: Site, cap_hint: float, reserve: tuple[EV, ...], sticky: bool = False) -> dict[str, np.ndarray]:
    s = replay(site, ONLINE_POLICY, peak_hint_kw=cap_hint, reserve=reserve, sticky_budget=sticky)
    return {cid: s.power[i] for i, cid in enumerate(s.ev_ids)}


@pytest.mark.parametrize("sticky", [False, True])
@pytest.mark.parametrize("cap", [float("inf"), 20.0])
def test_decisions_up_to_t_do_not_change_when_later_arrivals_change(cap, sticky):
    history = [(date(2021, 9, d), tuple(random_day(d))) for d in range(6, 10)]
    today = date(2021, 9, 10)
    evs = flexible_morning() + random_day(99)
    reserve = expected_arrivals(history_before(history, today), T, DT, "site")
    assert reserve, "the reserve must take part for this test to mean something"
    hint = cap if cap < float("inf") else 0.0
    site = Site(tuple(evs), LimitNode("site", cap), T, DT)
    other = Site(tuple(altered_future(evs, CUT)), LimitNode("site", cap), T, DT)
    a, b = executed(site, hint, reserve, sticky), executed(other, hint, reserve, sticky)
    known = [e.id for e in evs if e.arrival <= CUT]
    assert known and len(known) < len(evs)
    for cid in known:  # what was executed in slots 0..CUT was decided from arrivals <= CUT only
        assert a[cid][: CUT + 1] == pytest.approx(b[cid][: CUT + 1], abs=1e-6), cid
    load_a = sum(a.values())
    load_b = sum(b.values())
    assert load_a[: CUT + 1] == pytest.approx(load_b[: CUT + 1], abs=1e-6)
    # ...and the alteration is not a no-op: the days differ afterwards.
    assert np.abs(load_a[CUT + 1 :] - load_b[CUT + 1 :]).max() > 0.1


def test_the_reserve_of_a_day_ignores_that_day_and_later_days():
    days = [(date(2021, 9, d), tuple(random_day(d))) for d in range(6, 14)]
    today = date(2021, 9, 10)
    before = expected_arrivals(history_before(days, today), T, DT, "site")
    changed = [(d, tuple(altered_future(list(evs), 0)) if d >= today else evs) for d, evs in days]
    assert expected_arrivals(history_before(changed, today), T, DT, "site") == before
    # a previous day does count (so the comparison above can fail)
    earlier = [(d, tuple(altered_future(list(evs), 0)) if d == date(2021, 9, 9) else evs) for d, evs in days]
    assert expected_arrivals(history_before(earlier, today), T, DT, "site") != before


def test_the_history_peak_floor_reads_only_earlier_days():
    peaks = [(date(2021, 9, 7), 37.8), (date(2021, 9, 8), 38.9), (date(2021, 9, 10), 45.5), (date(2021, 9, 13), 47.5)]
    # 09-10 sees 09-07 and 09-08 only: its own peak and later ones do not raise its floor.
    assert history_peak_floor(peaks, date(2021, 9, 10)) == pytest.approx(38.9)
    assert history_peak_floor(peaks, date(2021, 9, 10), alpha=1.1, beta_kw=1.0) == pytest.approx(1.1 * 38.9 + 1.0)
    assert history_peak_floor(peaks, date(2021, 9, 13)) == pytest.approx(45.5)
    assert history_peak_floor(peaks, date(2021, 9, 7), beta_kw=5.0) == 0.0  # no history: no floor
    assert history_peak_floor(peaks, date(2021, 9, 8), alpha=0.5, beta_kw=-100.0) == 0.0  # never negative


def test_decisions_with_a_virtual_connection_and_no_reserve_do_not_see_later_arrivals():
    evs = flexible_morning() + random_day(98)
    site = Site(tuple(evs), LimitNode("site", float("inf")), T, DT)
    other = Site(tuple(altered_future(evs, CUT)), LimitNode("site", float("inf")), T, DT)
    a, b = executed(site, 12.0, ()), executed(other, 12.0, ())
    known = [e.id for e in evs if e.arrival <= CUT]
    for cid in known:
        assert a[cid][: CUT + 1] == pytest.approx(b[cid][: CUT + 1], abs=1e-6), cid
    assert np.abs(sum(a.values())[CUT + 1 :] - sum(b.values())[CUT + 1 :]).max() > 0.1
