"""Hand-checkable instances with known optima for the lexicographic optimiser."""

import numpy as np
import pytest

from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.optimiser import OptimiserConfig, optimise
from streams.smartcharging.schedule import Schedule, violations


def two_cars(cap=10.0, energy=(20.0, 20.0), slots=4, price=None):
    evs = (EV("a", 0, slots, energy[0], 7.4, "site"), EV("b", 0, slots, energy[1], 7.4, "site"))
    return Site(evs, LimitNode("site", cap), slots, 1.0, price=price)


def test_two_cars_share_10kw_fill_the_limit_and_get_everything():
    # 4 h x 10 kW = 40 kWh = exactly the two requests: the only optimum uses the limit in full.
    site = two_cars()
    s = optimise(site, OptimiserConfig(("energy", "peak")))
    assert violations(site, s) == []
    assert s.delivered_kwh() == pytest.approx([20, 20], abs=1e-4)
    assert s.site_load() == pytest.approx([10, 10, 10, 10], abs=1e-4)
    assert not s.infeasible


def test_over_subscribed_limit_delivers_the_limit_and_flags_unmet():
    site = two_cars(cap=5.0)  # 20 kWh deliverable, 40 requested
    s = optimise(site, OptimiserConfig(("energy",)))
    assert s.delivered_kwh().sum() == pytest.approx(20, abs=1e-4)
    assert violations(site, s) == []
    assert s.infeasible and any(i.code == "unmet_demand" for i in s.issues)


def test_peak_minimum_is_total_energy_over_window():
    site = two_cars(cap=100.0, energy=(8.0, 4.0))
    s = optimise(site, OptimiserConfig(("energy", "peak")))
    assert s.peak_kw() == pytest.approx(3.0, abs=1e-4)  # 12 kWh over 4 h


def test_cost_stage_buys_the_cheapest_hours():
    site = two_cars(cap=10.0, energy=(5.0, 5.0), price=np.array([4.0, 1.0, 3.0, 2.0]))
    s = optimise(site, OptimiserConfig(("energy", "cost")))
    # 10 kWh at 10 kW: all of it in hour 1 (price 1).
    assert s.site_load() == pytest.approx([0, 10, 0, 0], abs=1e-4)
    assert s.stages["cost"] == pytest.approx(10.0, abs=1e-3)


def test_lexicographic_order_matters():
    # Cheapest hour alone forces a 10 kW peak; a flat 2.5 kW profile costs more.
    price = np.array([4.0, 1.0, 3.0, 2.0])
    site = two_cars(cap=10.0, energy=(5.0, 5.0), price=price)
    peak_first = optimise(site, OptimiserConfig(("energy", "peak", "cost")))
    cost_first = optimise(site, OptimiserConfig(("energy", "cost", "peak")))
    assert peak_first.peak_kw() == pytest.approx(2.5, abs=1e-4)
    assert peak_first.cost(price) == pytest.approx(2.5 * 10, abs=1e-3)
    assert cost_first.cost(price) == pytest.approx(10.0, abs=1e-3)
    assert cost_first.peak_kw() == pytest.approx(10.0, abs=1e-4)
    # A later stage never worsens an earlier one.
    assert peak_first.stages["peak"] <= cost_first.peak_kw()
    assert cost_first.stages["cost"] <= peak_first.cost(price)


def test_energy_before_cost_even_when_prices_are_negative_or_high():
    site = two_cars(cap=10.0, energy=(5.0, 5.0), price=np.array([100.0, 100.0, 100.0, 100.0]))
    s = optimise(site, OptimiserConfig(("energy", "cost")))
    assert s.delivered_kwh().sum() == pytest.approx(10.0, abs=1e-4)


def test_fairness_splits_scarce_energy_proportionally():
    evs = (EV("a", 0, 4, 20.0, 20.0, "site"), EV("b", 0, 4, 30.0, 20.0, "site"))
    site = Site(evs, LimitNode("site", 10.0), 4, 1.0)  # 40 kWh for 50 requested
    s = optimise(site, OptimiserConfig(("fairness", "energy")))
    assert s.stages["fairness"] == pytest.approx(0.8, abs=1e-6)
    assert s.delivered_kwh() == pytest.approx([16.0, 24.0], abs=1e-3)  # both get 80 %
    greedy = optimise(site, OptimiserConfig(("energy", "peak")))
    assert greedy.delivered_kwh().sum() == pytest.approx(40.0, abs=1e-4)
    assert not any(i.code == "energy_exceeds_window" for i in s.issues)


def test_carbon_stage_prefers_clean_slots():
    evs = (EV("a", 0, 3, 10.0, 10.0, "site"),)
    site = Site(evs, LimitNode("site", 10.0), 3, 1.0, carbon=np.array([300.0, 50.0, 200.0]))
    s = optimise(site, OptimiserConfig(("energy", "carbon")))
    assert s.site_load() == pytest.approx([0, 10, 0], abs=1e-4)
    assert s.carbon(site.carbon) == pytest.approx(0.5, abs=1e-4)  # 10 kWh * 50 g = 0.5 kg


def test_limit_tree_panel_binds_below_site():
    chargers = tuple(LimitNode(f"c{i}", 11.0) for i in range(3))
    tree = LimitNode("site", 100.0, (LimitNode("panel", 12.0, chargers[:2]), chargers[2]))
    evs = (EV("a", 0, 2, 22, 11, "c0"), EV("b", 0, 2, 22, 11, "c1"), EV("c", 0, 2, 22, 11, "c2"))
    site = Site(evs, tree, 2, 1.0)
    s = optimise(site, OptimiserConfig(("energy",)))
    assert violations(site, s) == []
    got = s.delivered_kwh()
    assert got[0] + got[1] == pytest.approx(24.0, abs=1e-4)  # panel: 12 kW x 2 h
    assert got[2] == pytest.approx(22.0, abs=1e-4)


def test_integer_minimum_power_on_off():
    # 3 kWh over 4 one-hour slots with min 2 kW when on: LP would run 0.75 kW flat; MILP cannot.
    evs = (EV("a", 0, 4, 3.0, 7.0, "site", min_kw=2.0),)
    site = Site(evs, LimitNode("site", 10.0), 4, 1.0)
    lp = optimise(site, OptimiserConfig(("energy", "peak")))
    milp = optimise(site, OptimiserConfig(("energy", "peak"), integer=True))
    assert lp.peak_kw() == pytest.approx(0.75, abs=1e-4)
    p = milp.power[0]
    assert milp.delivered_kwh()[0] == pytest.approx(3.0, abs=0.03)
    assert np.all((p < 1e-6) | (p >= 2.0 - 1e-6))
    assert violations(site, milp) == []


def test_random_instances_never_break_limits_or_exceed_requests():
    rng = np.random.default_rng(7)
    for _ in range(5):
        n, T = 12, 16
        evs = []
        for i in range(n):
            a = int(rng.integers(0, T - 1))
            d = int(rng.integers(a + 1, T + 1))
            evs.append(EV(f"e{i}", a, d, float(rng.uniform(1, 30)), float(rng.choice([3.7, 7.4, 11])), f"c{i % 4}"))
        chargers = tuple(LimitNode(f"c{i}", 11.0) for i in range(4))
        tree = LimitNode("site", float(rng.uniform(10, 30)), (LimitNode("p", 15.0, chargers[:2]),) + chargers[2:])
        site = Site(tuple(evs), tree, T, 0.25, price=rng.uniform(0, 1, T))
        from streams.smartcharging.model import validate

        fixed, _ = validate(site, "best_effort")
        s = optimise(site, OptimiserConfig(("energy", "peak", "cost")))
        assert violations(fixed, s) == []


def test_persistent_model_updated_in_place_matches_a_fresh_build():
    # The online planner relies on bounds/params pushed into the live HiGHS model being honoured.
    from streams.smartcharging.optimiser import ChargingModel, Seat

    rng = np.random.default_rng(5)
    T = 12
    tree = LimitNode("site", 12.0, (LimitNode("p", 8.0, (LimitNode("c0", 7.4), LimitNode("c1", 7.4))), LimitNode("c2", 7.4)))
    cfg = OptimiserConfig(("energy", "peak", "cost"))
    seats = [Seat(f"c{i}#0", f"c{i}", 0, T) for i in range(3)]
    cm = ChargingModel(tree, T, 0.5, seats, cfg)
    for _ in range(3):
        evs = []
        for i in range(3):
            a = int(rng.integers(0, 6))
            evs.append(EV(f"e{i}", a, int(rng.integers(a + 2, T + 1)), float(rng.uniform(0, 20)), 7.4, f"c{i}"))
        price = rng.uniform(-0.1, 0.5, T)
        site = Site(tuple(evs), tree, T, 0.5, price=price)
        fresh = optimise(site, cfg)
        for i, ev in enumerate(evs):
            ub = np.zeros(T)
            ub[ev.arrival : ev.departure] = ev.max_kw
            cm.set_seat(f"c{i}#0", ub, min(ev.energy_kwh, site.deliverable_kwh(ev)))
        for node, cap in site.node_caps().items():
            cm.set_node_cap(node, cap)
        cm.set_signals(price, None)
        values, status, _ = cm.solve()
        assert status == "ok"
        for k in ("energy", "peak", "cost"):
            assert values[k] == pytest.approx(fresh.stages[k], rel=1e-5, abs=1e-5)
        assert violations(site, Schedule(fresh.ev_ids, cm.power(), 0.5)) == []



def test_lp_guided_milp_matches_full_milp_and_respects_minimum_power():
    rng = np.random.default_rng(3)
    T = 12
    evs, leaves = [], []
    for i in range(8):
        a = int(rng.integers(0, 6))
        evs.append(EV(f"e{i}", a, int(rng.integers(a + 3, T + 1)), float(rng.uniform(2, 15)), 7.4, f"c{i}", min_kw=4.2))
        leaves.append(LimitNode(f"c{i}", 7.4))
    site = Site(tuple(evs), LimitNode("site", 20.0, tuple(leaves)), T, 0.5)
    guided = optimise(site, OptimiserConfig(("energy", "peak"), integer=True, milp_strategy="lp_guided"))
    full = optimise(site, OptimiserConfig(("energy", "peak"), integer=True, milp_strategy="full"))
    for s in (guided, full):
        assert violations(site, s) == []  # includes on/off minimum power
    # every stage's bound is a true bound and the incumbent is within the 1 % gap of it
    assert guided.stages["bound_energy"] >= full.stages["energy"] - 1e-4
    assert guided.stages["energy"] >= 0.99 * guided.stages["bound_energy"] - 1e-4
    assert guided.stages["energy"] >= 0.99 * full.stages["energy"] - 1e-4
    assert guided.stages["gap_energy"] <= 0.01 and guided.stages["gap_peak"] <= 0.01


def test_no_binaries_for_cars_without_a_minimum():
    from streams.smartcharging.optimiser import ChargingModel, Seat

    seats = [Seat("a", "site", 0, 4, min_kw=0.0, max_kw=7.0), Seat("b", "site", 0, 4, min_kw=2.0, max_kw=7.0)]
    for strategy in ("full", "lp_guided"):
        cfg = OptimiserConfig(("energy",), integer=True, milp_strategy=strategy)
        cm = ChargingModel(LimitNode("site", 10.0), 4, 1.0, seats, cfg)
        assert cm._int_pairs == [(1, t) for t in range(4)]  # only b's four slots
        if strategy == "full":
            assert len(cm.m.on) == 4


# ---------------------------------------------------------------- integer minimum current (MILP)
MIN_CFG = {"full": dict(milp_strategy="full"), "lp_guided": dict(milp_strategy="lp_guided")}


def lock_site() -> Site:
    """Hand-solved: a 5 kWh over slots 0-2, b 3 kWh over slots 0-1, 2 kW minimum when on, 6 kW site.

    b can only run one slot at 3 kW (two slots would be 1.5 kW each, below its minimum), so the
    minimum peak is 3 kW (the LP relaxation's is 8/3). With the peak locked at 3 kW, a (at >= 2 kW
    when on) cannot share b's slot, so the cheapest plan puts b in the cheap slot 1 and a in slots 0
    and 2, as much as the 3 kW peak allows in the cheaper slot 2: cost 2*3 + 3*1 + 3*2 = 15. Without
    the lock, cost alone would fill the cheap slot to the 6 kW limit (cost 10, peak 6).
    """
    evs = (EV("a", 0, 3, 5.0, 4.0, "site", min_kw=2.0), EV("b", 0, 2, 3.0, 4.0, "site", min_kw=2.0))
    return Site(evs, LimitNode("site", 6.0), 3, 1.0, price=np.array([3.0, 1.0, 2.0]))


def brute_force_lexicographic(site: Site, grid: np.ndarray) -> tuple[float, float, float]:
    """energy > peak > cost over every schedule whose powers lie on `grid` (0 or >= the minimum)."""
    import itertools

    per_car = []
    for ev in site.evs:
        levels = [g for g in grid if g == 0 or ev.min_kw - 1e-9 <= g <= ev.max_kw + 1e-9]
        rows = [r for r in itertools.product(levels, repeat=len(ev.window()))
                if sum(r) * site.slot_hours <= ev.energy_kwh + 1e-9]
        full = np.zeros((len(rows), site.n_slots))
        full[:, ev.arrival:ev.departure] = rows
        per_car.append(full)
    best: tuple[float, float, float] | None = None
    for combo in itertools.product(*per_car):
        load = np.sum(combo, axis=0)
        if np.any(load > site.tree.cap_kw + 1e-9):
            continue
        key = (-float(load.sum() * site.slot_hours), float(load.max()), float(load @ site.price * site.slot_hours))
        if best is None or key < best:
            best = key
    assert best is not None
    return -best[0], best[1], best[2]


@pytest.mark.parametrize("strategy", ["full", "lp_guided"])
def test_minimum_current_and_locks_reach_the_hand_solved_optimum(strategy):
    site = lock_site()
    energy, peak, cost = brute_force_lexicographic(site, np.arange(0, 4.01, 0.5))
    assert (energy, peak, cost) == pytest.approx((8.0, 3.0, 15.0))  # the grid finds the hand optimum
    s = optimise(site, OptimiserConfig(("energy", "peak", "cost"), integer=True, **MIN_CFG[strategy]))
    assert violations(site, s) == []  # includes "0 or at least the minimum"
    assert s.delivered_kwh().sum() == pytest.approx(8.0, abs=1e-4)
    # the minimum current forces the peak up from the relaxation's 8/3 kW (rule broken -> 2.67)
    assert 3.0 - 1e-4 <= s.peak_kw() <= 3.0 * 1.01  # 1e-4: the locks' rel_tol slack
    # the peak lock holds through the cost stage (lock broken -> cost 10 at a 6 kW peak)
    assert 15.0 * 0.99 <= s.cost(site.price) <= 15.0 * 1.01
    p = s.power
    assert np.all((p < 1e-6) | (p >= 2.0 - 1e-6))


def test_lp_guided_reports_a_certified_gap_per_stage_and_falls_back_to_the_milp():
    site = lock_site()
    s = optimise(site, OptimiserConfig(("energy", "peak", "cost"), integer=True))
    for crit in ("energy", "peak", "cost"):
        assert s.stages[f"gap_{crit}"] <= 0.01 + 1e-9
    assert s.stages["bound_energy"] >= s.stages["energy"] - 1e-6  # maximised: bound above
    assert s.stages["bound_peak"] <= s.stages["peak"] + 1e-6  # minimised: bound below
    # the relaxation's peak (8/3) is 11 % below the integer optimum: only the real MILP certifies it
    assert s.timings["milp_fallback_peak"] == 1.0
    assert s.stages["bound_peak"] >= 3.0 * 0.99 - 1e-6


def test_milp_energy_stage_never_gives_up_energy_the_minimum_allows():
    # a asks 1.5 kWh; in 1-h slots with a 2 kW minimum any slot it runs delivers >= 2 kWh, more than it
    # asked, so it cannot charge at all (the LP relaxation would give it 1.5 kWh). b asks 4 kWh and gets
    # it, at the flattest legal profile: 2 kW in both slots.
    evs = (EV("a", 0, 2, 1.5, 4.0, "site", min_kw=2.0), EV("b", 0, 2, 4.0, 4.0, "site", min_kw=2.0))
    site = Site(evs, LimitNode("site", 8.0), 2, 1.0)
    for strategy in ("full", "lp_guided"):
        s = optimise(site, OptimiserConfig(("energy", "peak"), integer=True, milp_strategy=strategy))
        assert violations(site, s) == []
        assert s.delivered_kwh() == pytest.approx([0.0, 4.0], abs=1e-4)
        assert s.peak_kw() == pytest.approx(2.0, abs=0.03)  # b at 2 kW in both slots


def test_lp_guided_model_resolves_in_place_like_a_fresh_build():
    # The rounding restricts power bounds and must restore them: a second plan on the same model,
    # with different cars, must match a fresh model's answer.
    from streams.smartcharging.optimiser import ChargingModel, Seat

    rng = np.random.default_rng(11)
    T = 8
    tree = LimitNode("site", 14.0, tuple(LimitNode(f"c{i}", 7.4) for i in range(4)))
    cfg = OptimiserConfig(("energy", "peak", "cost"), integer=True)
    seats = [Seat(f"c{i}#0", f"c{i}", 0, T) for i in range(4)]
    cm = ChargingModel(tree, T, 1.0, seats, cfg)
    for _ in range(3):
        evs = []
        for i in range(4):
            a = int(rng.integers(0, 4))
            evs.append(EV(f"e{i}", a, int(rng.integers(a + 2, T + 1)), float(rng.uniform(3, 20)), 7.4, f"c{i}",
                          min_kw=4.2))
        price = rng.uniform(0.05, 0.5, T)
        site = Site(tuple(evs), tree, T, 1.0, price=price)
        fresh = optimise(site, cfg)
        for i, ev in enumerate(evs):
            ub = np.zeros(T)
            ub[ev.arrival : ev.departure] = ev.max_kw
            cm.set_seat(f"c{i}#0", ub, min(ev.energy_kwh, site.deliverable_kwh(ev)), ev.min_kw)
        cm.set_signals(price, None)
        values, status, _ = cm.solve()
        assert status == "ok"
        sched = Schedule(fresh.ev_ids, cm.power(), 1.0)
        assert violations(site, sched) == []
        assert values["energy"] == pytest.approx(fresh.stages["energy"], rel=0.01, abs=1e-4)
        assert sched.delivered_kwh().sum() == pytest.approx(values["energy"], abs=1e-4)


def test_lock_slack_lets_later_stages_use_room_within_the_certified_gap_only():
    site = lock_site()
    strict = optimise(site, OptimiserConfig(("energy", "peak", "cost"), integer=True))
    slack = optimise(site, OptimiserConfig(("energy", "peak", "cost"), integer=True, milp_lock_slack=0.05))
    for s in (strict, slack):
        assert violations(site, s) == []
    # the slack is capped at the 1 % gap: the final peak stays within 1 % of the peak stage's bound
    assert slack.peak_kw() <= slack.stages["bound_peak"] * 1.01 + 1e-6
    assert strict.peak_kw() <= strict.stages["peak"] + 1e-4
    assert slack.cost(site.price) <= strict.cost(site.price) + 1e-6
