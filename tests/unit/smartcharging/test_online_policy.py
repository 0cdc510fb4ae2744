"""The online policy's parts: reserve for expected arrivals, sunk-peak deferral, laxity tie-break, bad input."""

from datetime import date

import numpy as np
import pytest

from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.online import ONLINE_POLICY, OnlinePlanner, adaptive_scale, replay
from streams.smartcharging.optimiser import ChargingModel, OptimiserConfig, Seat, optimise
from streams.smartcharging.reserve import expected_arrivals, history_before, weekday_kind
from streams.smartcharging.schedule import violations


def late_rush_site() -> Site:
    # a: 12 kWh any time in [0, 6); b arrives at 3 and needs 7 kW flat until 6 (21 kWh, no laxity).
    evs = (EV("a", 0, 6, 12.0, 7.0, "site"), EV("b", 3, 6, 21.0, 7.0, "site"))
    return Site(evs, LimitNode("site", 100.0), 6, 1.0)


def test_without_reserve_the_online_plan_is_caught_by_the_rush():
    site = late_rush_site()
    on = replay(site, OptimiserConfig(("energy", "peak", "asap")))
    assert on.peak_kw() == pytest.approx(9.0, abs=1e-4)  # a flattened to 2 kW, then b on top
    assert optimise(site, OptimiserConfig(("energy", "peak"))).peak_kw() == pytest.approx(7.0, abs=1e-4)


def test_reserve_for_the_expected_rush_reaches_the_offline_peak():
    site = late_rush_site()
    expected = (EV("r", 3, 6, 21.0, 7.0, "site"),)  # learned from previous days: someone like b comes
    on = replay(site, ONLINE_POLICY, reserve=expected, reserve_scale=1.0)
    assert violations(site, on) == []
    assert on.delivered_kwh() == pytest.approx([12.0, 21.0], abs=1e-4)
    assert on.peak_kw() == pytest.approx(7.0, abs=1e-4)
    assert on.by_id("a")[:3].sum() == pytest.approx(12.0, abs=1e-4)  # a done before the rush


def test_reserve_never_takes_energy_from_a_real_car():
    # The site can carry only 7 kW: a real car needing all of it must get it, whatever is expected.
    site = Site((EV("a", 0, 3, 21.0, 7.0, "site"),), LimitNode("site", 7.0), 3, 1.0)
    expected = (EV("r", 1, 3, 14.0, 7.0, "site"),)
    on = replay(site, ONLINE_POLICY, reserve=expected, reserve_scale=1.0)
    assert on.delivered_kwh()[0] == pytest.approx(21.0, abs=1e-4)


def test_defer_raises_the_peak_above_the_sunk_peak_as_late_as_possible():
    tree = LimitNode("site", 100.0)
    seats = [Seat("a", "site", 0, 4), Seat("b", "site", 0, 4)]
    cm = ChargingModel(tree, 4, 1.0, seats, OptimiserConfig(("energy", "peak", "defer", "asap")))
    cm.set_seat("a", np.array([4.0, 4, 4, 4]), 4.0)
    cm.set_seat("b", np.array([0.0, 0, 4, 4]), 8.0)
    cm.set_peak_floor(1.0)  # 1 kW already paid for
    values, status, _ = cm.solve()
    assert status == "ok" and values["peak"] == pytest.approx(4.0, abs=1e-5)
    assert cm.power()[0] == pytest.approx([1.0, 3.0, 0.0, 0.0], abs=1e-5)
    _, _, _ = cm.solve(("energy", "peak", "asap"))  # without defer: everything as early as possible
    assert cm.power()[0] == pytest.approx([4.0, 0.0, 0.0, 0.0], abs=1e-5)


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_urgency_serves_the_least_laxity_car_first(order):
    # 7 kW site. a needs 14 kWh by slot 4 (laxity 2 h), b 7 kWh by slot 4 (laxity 3 h).
    evs = {"a": EV("a", 0, 4, 14.0, 7.0, "site"), "b": EV("b", 0, 4, 7.0, 7.0, "site")}
    pl = OnlinePlanner(LimitNode("site", 7.0), 4, 1.0, ONLINE_POLICY)
    pl.cm.set_peak_floor(7.0)
    pl.peak_hint = 7.0
    for k in order:
        pl.arrive(evs[k])
    plan = pl.replan()
    assert plan["a"][:2] == pytest.approx([7.0, 7.0], abs=1e-4)
    assert plan["b"][2] == pytest.approx(7.0, abs=1e-4)


def test_history_is_strictly_before_and_of_the_same_kind():
    ev = EV("x", 0, 4, 4.0, 7.0, "site")
    days = [(date(2021, 9, d), (ev,)) for d in range(1, 15)]
    past = history_before(days, date(2021, 9, 8), max_days=3)  # a Wednesday
    assert len(past) == 3
    assert [d for d, evs in days if any(evs is p for p in past)] == [date(2021, 9, 3), date(2021, 9, 6), date(2021, 9, 7)]
    assert weekday_kind(date(2021, 9, 11)) == "weekend"
    assert history_before(days, date(2021, 9, 1)) == []


def test_expected_arrivals_is_an_average_day():
    day1 = (EV("a", 32, 64, 10.0, 6.6, "site"), EV("b", 33, 66, 20.0, 6.6, "site"))
    day2 = (EV("c", 34, 60, 30.0, 6.6, "site"),)
    res = expected_arrivals([day1, day2], 96, 0.25, "site", bucket_slots=4)
    assert len(res) == 2  # (8, 16) for a/b, (8, 15) for c
    assert sum(r.energy_kwh for r in res) == pytest.approx(30.0)  # (10 + 20 + 30) / 2 days
    big = [r for r in res if r.id == "reserve:8:16"][0]
    assert (big.arrival, big.departure, big.max_kw) == (33, 65, pytest.approx(6.6))
    assert expected_arrivals([], 96, 0.25, "site") == ()


def test_adaptive_scale():
    assert adaptive_scale(100, 100, 400) == pytest.approx(1.0)
    assert adaptive_scale(200, 100, 400) > 1.0
    assert adaptive_scale(0, 100, 400) < 1.0
    assert adaptive_scale(1e6, 1, 400) == 4.0 and adaptive_scale(0, 1e6, 400) == 0.25
    assert adaptive_scale(5, 0, 0) == 1.0


@pytest.mark.parametrize(
    "ev, code",
    [
        (EV("x", 3, 2, 5, 7, "site"), "departure_not_after_arrival"),
        (EV("x", 0, 2, 50, 7, "site"), "energy_exceeds_window"),
        (EV("x", 0, 2, -1, 7, "site"), "negative_energy"),
        (EV("x", 0, 2, 5, -7, "site"), "negative_limit"),
    ],
)
def test_online_bad_request_is_served_best_effort_and_flagged(ev, code):
    pl = OnlinePlanner(LimitNode("site", 10.0), 4, 1.0)
    pl.arrive(ev)
    pl.arrive(EV("ok", 0, 4, 8.0, 7.0, "site"))
    pl.replan()
    pl.advance(4)
    res = pl.result()
    assert code in {i.code for i in res.issues}
    assert res.infeasible
    assert res.by_id("ok").sum() == pytest.approx(8.0, abs=1e-4)  # everyone else still served


def test_online_negative_site_limit_is_flagged_and_treated_as_zero():
    pl = OnlinePlanner(LimitNode("site", 10.0, (LimitNode("c", -3.0),)), 4, 1.0)
    pl.arrive(EV("a", 0, 4, 4.0, 7.0, "c"))
    assert pl.replan()["a"] == pytest.approx([0, 0, 0, 0], abs=1e-6)
    pl.advance(4)
    res = pl.result()
    assert res.infeasible and "negative_limit" in {i.code for i in res.issues}


def test_at_a_paid_up_connection_the_reserve_does_not_steer_the_real_cars():
    # The whole 7 kW connection is paid for (peak hint = cap): no plan can change the peak, so a car
    # merely expected in slot 1 must not push the two real cars (1 h of charging each) out of it.
    evs = (EV("a", 0, 4, 7.0, 7.0, "site"), EV("b", 0, 4, 7.0, 7.0, "site"))
    site = Site(evs, LimitNode("site", 7.0), 4, 1.0)
    expected = (EV("r", 1, 2, 7.0, 7.0, "site"),)
    with_res = replay(site, ONLINE_POLICY, peak_hint_kw=7.0, reserve=expected, reserve_scale=1.0)
    assert with_res.power.sum(axis=0) == pytest.approx([7.0, 7.0, 0.0, 0.0], abs=1e-5)  # as early as possible
    assert with_res.power == pytest.approx(replay(site, ONLINE_POLICY, peak_hint_kw=7.0).power, abs=1e-6)
    pl = OnlinePlanner(LimitNode("site", 7.0), 4, 1.0, ONLINE_POLICY, reserve=expected, reserve_scale=1.0)
    assert not pl.connection_paid()  # nothing paid yet: the reserve budgets the peak
    pl.peak_hint = 7.0
    assert pl.connection_paid()
