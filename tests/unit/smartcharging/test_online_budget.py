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
