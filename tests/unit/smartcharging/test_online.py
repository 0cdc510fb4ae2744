"""Online re-planning: causal, limits respected, reacts to events, warm model reused."""

import numpy as np
import pytest

from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.online import OnlinePlanner, replay
from streams.smartcharging.optimiser import OptimiserConfig, optimise
from streams.smartcharging.schedule import violations


def test_replay_meets_demand_and_limits_and_is_no_better_than_offline():
    rng = np.random.default_rng(11)
    evs = []
    for i in range(15):
        a = int(rng.integers(0, 30))
        d = int(min(48, a + rng.integers(8, 24)))
        evs.append(EV(f"e{i}", a, d, float(rng.uniform(2, 20)), 6.6, "site"))
    site = Site(tuple(evs), LimitNode("site", 40.0), 48, 0.25)
    on = replay(site, seats_per_node=2)  # forces pool growth (rebuilds) on the way
    off = optimise(site, OptimiserConfig(("energy", "peak")))
    assert violations(site, on) == []
    assert on.delivered_kwh().sum() == pytest.approx(off.delivered_kwh().sum(), rel=1e-4)
    assert on.peak_kw() >= off.peak_kw() - 1e-4  # offline knows the future: a lower bound
    assert on.timings["rebuilds"] >= 1


def test_events_change_the_plan():
    tree = LimitNode("site", 10.0, (LimitNode("c0", 7.4), LimitNode("c1", 7.4)))
    pl = OnlinePlanner(tree, 8, 1.0, OptimiserConfig(("energy", "peak", "asap")))
    pl.arrive(EV("a", 0, 8, 16.0, 7.4, "c0"))
    plan = pl.replan()
    assert sum(plan["a"]) == pytest.approx(16.0, abs=1e-4)
    assert max(plan["a"]) == pytest.approx(2.0, abs=1e-4)  # flat: 16 kWh over 8 h
    pl.advance(2)  # 4 kWh executed
    pl.arrive(EV("b", 2, 4, 14.0, 7.4, "c1"))  # needs 7 kW for 2 h
    plan = pl.replan()
    assert plan["b"][:2] == pytest.approx([7.0, 7.0], abs=1e-4)
    assert np.max(np.array(plan["a"][:2]) + np.array(plan["b"][:2])) <= 10.0 + 1e-6
    pl.meter("a", 2.0)  # meter says only 2 kWh arrived (off plan): 14 remain
    pl.fault("c0", until=4)  # charger a is out for 2 h
    plan = pl.replan()
    assert plan["a"][:2] == pytest.approx([0, 0], abs=1e-6)
    assert sum(plan["a"]) == pytest.approx(14.0, abs=1e-4)
    pl.change_departure("a", 7)
    pl.set_signals(price=np.array([0, 0, 0, 0, 5, 1, 5, 5.0]))
    plan = pl.replan()
    assert len(plan["a"]) == 6 and plan["a"][-1] == pytest.approx(0.0, abs=1e-6)
    pl.advance(8)
    res = pl.result()
    assert res.delivered_kwh()[res.ev_ids.index("a")] == pytest.approx(16.0, abs=1e-3)
    assert pl.rebuilds == 0 and pl.replans == 4


def test_online_cost_objective_uses_new_prices():
    pl = OnlinePlanner(LimitNode("site", 10.0), 4, 1.0, OptimiserConfig(("energy", "cost")))
    pl.arrive(EV("a", 0, 4, 5.0, 10.0, "site"))
    pl.set_signals(price=np.array([1.0, 2.0, 3.0, 4.0]))
    assert pl.replan()["a"] == pytest.approx([5, 0, 0, 0], abs=1e-4)
    pl.set_signals(price=np.array([4.0, 3.0, 1.0, 2.0]))  # new price forecast
    assert pl.replan()["a"] == pytest.approx([0, 0, 5, 0], abs=1e-4)
