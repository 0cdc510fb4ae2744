"""The online planner's LLF guard at a paid-up connection (streams/smartcharging/llf_guard.py)."""

import numpy as np
import pytest

from streams.smartcharging.baselines import llf
from streams.smartcharging.llf_guard import llf_plan
from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.online import ONLINE_POLICY, OnlinePlanner, replay
from streams.smartcharging.optimiser import OptimiserConfig, optimise
from streams.smartcharging.schedule import violations


def random_site(seed: int) -> Site:
    rng = np.random.default_rng(seed)
    tree = LimitNode("site", 9.0, (LimitNode("p1", 5.0), LimitNode("p2", 6.0)))
    evs = []
    for i in range(7):
        a = int(rng.integers(0, 8))
        d = int(min(12, a + rng.integers(1, 7)))
        node = str(rng.choice(["p1", "p2", "site"]))
        evs.append(EV(f"e{i}", a, d, float(rng.uniform(0.5, 4.0 * (d - a))), 4.0, node, min_kw=float(rng.choice([0.0, 1.5]))))
    return Site(tuple(evs), tree, 12, 1.0)


@pytest.mark.parametrize("seed", range(6))
def test_llf_plan_from_slot_0_is_the_llf_baseline(seed):
    site = random_site(seed)
    plan = llf_plan(site.tree, site.node_caps(), [(e, e.energy_kwh) for e in site.evs], 0, site.n_slots, site.slot_hours)
    assert plan == pytest.approx(llf(site).power, abs=1e-9)


def test_llf_plan_starts_at_now_and_respects_windows_caps_and_what_is_owed():
    site = random_site(3)
    owed = [(e, e.energy_kwh / 2) for e in site.evs]
    plan = llf_plan(site.tree, site.node_caps(), owed, 4, site.n_slots, site.slot_hours)
    assert np.all(plan[:, :4] == 0.0)
    for i, (ev, left) in enumerate(owed):
        assert np.all(plan[i, : ev.arrival] == 0.0) and np.all(plan[i, ev.departure :] == 0.0)
        assert plan[i].max() <= ev.max_kw + 1e-9
        assert plan[i].sum() * site.slot_hours <= left + 1e-9
        assert np.all((plan[i] == 0.0) | (plan[i] >= ev.min_kw - 1e-9))
    assert plan.sum(axis=0).max() <= 9.0 + 1e-9
    on_p1 = [i for i, (ev, _) in enumerate(owed) if ev.node == "p1"]
    assert plan[on_p1].sum(axis=0).max() <= 5.0 + 1e-9


def test_at_a_paid_connection_the_plan_is_llfs_when_that_serves_the_plugged_cars_as_well():
    # Both cars can be served in full at 4 kW; LLF serves the tighter car b first, slot by slot.
    evs = (EV("a", 0, 4, 6.0, 4.0, "site"), EV("b", 0, 3, 8.0, 4.0, "site"))
    site = Site(evs, LimitNode("site", 4.0), 4, 1.0)
    planner = OnlinePlanner(site.tree, 4, 1.0, ONLINE_POLICY)
    planner.peak_hint = 4.0
    planner.cm.set_peak_floor(4.0)
    for ev in evs:
        planner.arrive(ev)
    plans = planner.replan()
    expected = llf(site).power
    assert plans["a"] == pytest.approx(expected[0], abs=1e-9)
    assert plans["b"] == pytest.approx(expected[1], abs=1e-9)
    assert planner.llf_plans == 1


def test_the_lp_plan_wins_where_llfs_greedy_order_strands_energy():
    # Found by a random search: LLF's per-slot ranking leaves 0.3 kWh undelivered that the LP can place.
    evs = (EV("c0", 4, 7, 8.4, 4.0, "site"), EV("c1", 0, 1, 3.0, 4.0, "site"),
           EV("c2", 2, 6, 1.8, 4.0, "site"), EV("c3", 0, 4, 15.7, 4.0, "site"))
    site = Site(evs, LimitNode("site", 4.0), 8, 1.0)
    on = replay(site, ONLINE_POLICY, peak_hint_kw=4.0)
    assert violations(site, on) == []
    assert llf(site).delivered_kwh().sum() == pytest.approx(25.9, abs=1e-6)
    best = optimise(site, OptimiserConfig(("energy",))).delivered_kwh().sum()
    assert on.delivered_kwh().sum() == pytest.approx(best, abs=1e-4) == pytest.approx(26.2, abs=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_guarded_online_never_delivers_less_than_llf_at_a_paid_connection(seed):
    site = random_site(seed)
    on = replay(site, ONLINE_POLICY, peak_hint_kw=9.0)
    assert violations(site, on, check_min_power=False) == []
    assert on.delivered_kwh().sum() >= llf(site).delivered_kwh().sum() - 1e-6


def test_no_guard_while_the_peak_is_open():
    # No site limit: the peak still matters, so the LP plan (minimised peak) is kept, not LLF's full power.
    evs = (EV("a", 0, 4, 6.0, 4.0, "site"), EV("b", 1, 3, 8.0, 4.0, "site"))
    site = Site(evs, LimitNode("site", float("inf")), 4, 1.0)
    on = replay(site, ONLINE_POLICY)
    assert on.timings["llf_plans"] == 0
    assert llf(site).peak_kw() == pytest.approx(6.0)
    assert on.peak_kw() < 4.5
