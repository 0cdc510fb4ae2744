"""The online planner's optional sticky peak budget (`OnlinePlanner.sticky_budget`, off by default)."""

import pytest

from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.online import ONLINE_POLICY, OnlinePlanner, replay
from streams.smartcharging.schedule import violations


def dropped_rush() -> tuple[Site, tuple[EV, ...]]:
    # The history expects a 7 kW rush in slots 1-2 (a must leave it room, so the plan budgets 8 kW);
    # the rush never comes, c arrives at 3 with a modest need.
    evs = (EV("a", 0, 8, 20.0, 3.0, "site"), EV("c", 3, 8, 15.0, 7.0, "site"))
    return Site(evs, LimitNode("site", float("inf")), 8, 1.0), (EV("r", 1, 3, 14.0, 7.0, "site"),)


def test_by_default_a_forecast_that_did_not_come_true_is_forgotten():
    site, expected = dropped_rush()
    on = replay(site, ONLINE_POLICY, reserve=expected, reserve_scale=1.0)
    assert violations(site, on) == []
    assert on.peak_kw() == pytest.approx(6.0, abs=1e-4)  # a and c flat at 3 kW each after slot 3
    assert on.by_id("c")[3:] == pytest.approx([3.0] * 5, abs=1e-4)


def test_sticky_budget_keeps_the_budgeted_peak_and_front_loads_up_to_it():
    site, expected = dropped_rush()
    on = replay(site, ONLINE_POLICY, reserve=expected, reserve_scale=1.0, sticky_budget=True)
    assert violations(site, on) == []
    assert on.delivered_kwh() == pytest.approx([20.0, 15.0], abs=1e-4)
    assert on.peak_kw() == pytest.approx(8.0, abs=1e-4)  # the 8 kW budgeted at slot 0 is used
    assert on.by_id("c")[3:6] == pytest.approx([5.0] * 3, abs=1e-4)  # c done by slot 6


def test_the_budget_never_decreases_and_needs_the_reserve():
    site, expected = dropped_rush()
    planner = OnlinePlanner(site.tree, 8, 1.0, ONLINE_POLICY, reserve=expected, reserve_scale=1.0, sticky_budget=True)
    planner.arrive(site.evs[0])
    planner.replan()
    assert planner.peak_hint == pytest.approx(8.0, abs=1e-4)
    planner.advance(3)
    planner.arrive(site.evs[1])
    planner.replan()
    assert planner.peak_hint == pytest.approx(8.0, abs=1e-4)
    bare = OnlinePlanner(site.tree, 8, 1.0, ONLINE_POLICY, sticky_budget=True)  # no reserve: nothing to budget
    bare.arrive(site.evs[0])
    bare.replan()
    assert bare.peak_hint == 0.0


def test_a_virtual_connection_from_earlier_days_front_loads_before_a_rush():
    """Floor = 0.6 x the highest uncontrolled peak of earlier days (the bench's default online budget)."""
    from datetime import date

    from streams.smartcharging.baselines import BASELINES
    from streams.smartcharging.reserve import history_peak_floor

    past = Site((EV("p1", 0, 4, 10.0, 5.0, "site"), EV("p2", 1, 5, 10.0, 5.0, "site")), LimitNode("site", float("inf")), 8, 1.0)
    uncontrolled = BASELINES["uncontrolled"](past).peak_kw()
    assert uncontrolled == pytest.approx(10.0)
    floor = history_peak_floor([(date(2021, 9, 9), uncontrolled)], date(2021, 9, 10), alpha=0.6)
    assert floor == pytest.approx(6.0)
    # Today: a flexible car from slot 0, then a rush car at 4 that needs full power to its departure.
    today = Site((EV("a", 0, 8, 12.0, 6.0, "site"), EV("r", 4, 8, 24.0, 6.0, "site")), LimitNode("site", float("inf")), 8, 1.0)
    flat = replay(today, ONLINE_POLICY)  # no floor: a is spread thin and still owes energy when r comes
    conn = replay(today, ONLINE_POLICY, peak_hint_kw=floor)
    for s in (flat, conn):
        assert violations(today, s) == []
        assert s.delivered_kwh() == pytest.approx([12.0, 24.0], abs=1e-4)
    assert flat.peak_kw() == pytest.approx(7.5, abs=1e-3)
    assert conn.peak_kw() == pytest.approx(6.0, abs=1e-3)  # = the offline optimum
    assert conn.by_id("a")[4:].sum() == pytest.approx(0.0, abs=1e-4)  # a was done before the rush
