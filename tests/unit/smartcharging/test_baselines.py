"""Baselines behave exactly as defined in baselines.py."""

import numpy as np
import pytest

from streams.smartcharging.baselines import edf, llf, round_robin, uncontrolled
from streams.smartcharging.model import EV, LimitNode, Site
from streams.smartcharging.schedule import violations


def site(cap, *evs, slots=6):
    return Site(tuple(evs), LimitNode("site", cap), slots, 1.0)


def test_uncontrolled_full_power_from_plug_in_until_full():
    s = site(100, EV("a", 1, 6, 10, 4, "site"))
    u = uncontrolled(s)
    assert u.power[0] == pytest.approx([0, 4, 4, 2, 0, 0])


def test_uncontrolled_first_come_first_served_under_limit():
    s = site(6, EV("late", 1, 6, 8, 4, "site"), EV("early", 0, 6, 8, 4, "site"))
    u = uncontrolled(s)
    assert u.by_id("early") == pytest.approx([4, 4, 0, 0, 0, 0])
    assert u.by_id("late") == pytest.approx([0, 2, 4, 2, 0, 0])
    assert violations(s, u) == []


def test_edf_serves_earliest_departure_first():
    s = site(4, EV("long", 0, 6, 8, 4, "site"), EV("short", 0, 2, 8, 4, "site"))
    e = edf(s)
    assert e.by_id("short") == pytest.approx([4, 4, 0, 0, 0, 0])
    assert e.by_id("long") == pytest.approx([0, 0, 4, 4, 0, 0])


def test_llf_prefers_least_laxity_not_earliest_deadline():
    # Cap 3 kW. a: leaves at 2, needs 2 kWh at <= 2 kW (laxity 1 h). b: leaves at 3, needs 6 kWh at
    # <= 2 kW (laxity 0). EDF serves a first and b ends 1 kWh short; LLF serves b first and meets both.
    s = site(3, EV("a", 0, 2, 2, 2, "site"), EV("b", 0, 3, 6, 2, "site"))
    l_ = llf(s)
    assert l_.by_id("b") == pytest.approx([2, 2, 2, 0, 0, 0])
    assert l_.by_id("a") == pytest.approx([1, 1, 0, 0, 0, 0])
    e = edf(s)
    assert e.by_id("a") == pytest.approx([2, 0, 0, 0, 0, 0])
    assert e.delivered_kwh().sum() == pytest.approx(7.0)
    assert l_.delivered_kwh().sum() == pytest.approx(8.0)
    assert e.infeasible and not l_.infeasible


def test_round_robin_splits_equally_and_reshares_unused():
    s = site(9, EV("a", 0, 6, 100, 7, "site"), EV("b", 0, 6, 100, 7, "site"), EV("c", 0, 6, 100, 2, "site"))
    r = round_robin(s)
    assert r.power[:, 0] == pytest.approx([3.5, 3.5, 2.0])  # c is capped at 2, its share re-split


def test_round_robin_respects_panel_in_tree():
    tree = LimitNode("site", 10, (LimitNode("panel", 4, (LimitNode("c0", 7), LimitNode("c1", 7))), LimitNode("c2", 7)))
    evs = (EV("a", 0, 2, 50, 7, "c0"), EV("b", 0, 2, 50, 7, "c1"), EV("c", 0, 2, 50, 7, "c2"))
    s = Site(evs, tree, 2, 1.0)
    r = round_robin(s)
    assert r.power[:, 0] == pytest.approx([2, 2, 6])
    assert violations(s, r) == []


@pytest.mark.parametrize("policy", [uncontrolled, round_robin, edf, llf])
def test_random_sites_never_break_limits(policy):
    rng = np.random.default_rng(3)
    chargers = tuple(LimitNode(f"c{i}", 7.4) for i in range(6))
    tree = LimitNode("site", 15, (LimitNode("p0", 9, chargers[:3]), LimitNode("p1", 9, chargers[3:])))
    evs = []
    for i in range(20):
        a = int(rng.integers(0, 20))
        evs.append(EV(f"e{i}", a, int(rng.integers(a + 1, 25)), float(rng.uniform(1, 20)), 7.4, f"c{i % 6}",
                      min_kw=float(rng.choice([0.0, 1.4]))))
    s = Site(tuple(evs), tree, 24, 0.25)
    out = policy(s)
    assert violations(s, out) == []
