"""Impossible requests are flagged (strict error or best-effort + flag), never a solver crash."""

import math

import numpy as np
import pytest

from streams.smartcharging.model import EV, InvalidSiteError, LimitNode, Site, validate
from streams.smartcharging.optimiser import OptimiserConfig, optimise
from streams.smartcharging.baselines import BASELINES
from streams.smartcharging.schedule import violations


def site_with(*evs, cap=10.0, slots=4):
    return Site(tuple(evs), LimitNode("site", cap), slots, 1.0)


@pytest.mark.parametrize(
    "ev, code",
    [
        (EV("x", 3, 2, 5, 7, "site"), "departure_not_after_arrival"),
        (EV("x", 0, 2, 50, 7, "site"), "energy_exceeds_window"),
        (EV("x", 0, 2, -1, 7, "site"), "negative_energy"),
        (EV("x", 0, 9, 5, 7, "site"), "window_outside_horizon"),
        (EV("x", 0, 2, 5, 7, "nowhere"), "unknown_node"),
        (EV("x", 0, 2, 5, 7, "site", min_kw=9), "bad_min_power"),
        (EV("x", 0, 2, math.nan, 7, "site"), "not_a_number"),
    ],
)
def test_bad_ev_is_named_in_strict_mode_and_flagged_best_effort(ev, code):
    site = site_with(ev)
    with pytest.raises(InvalidSiteError) as exc:
        validate(site, "strict")
    assert code in {i.code for i in exc.value.issues}
    assert "x" in str(exc.value)
    s = optimise(site)  # best effort: no crash, flagged
    assert s.infeasible
    assert code in {i.code for i in s.issues}
    fixed, _ = validate(site, "best_effort")
    assert violations(fixed, s, check_min_power=False) == []  # the LP does not model on/off minimums
    for f in BASELINES.values():
        assert violations(fixed, f(fixed)) == []


def test_negative_limit_is_flagged_and_treated_as_zero():
    site = Site((EV("a", 0, 4, 4, 7, "c"),), LimitNode("site", 10, (LimitNode("c", -3.0),)), 4, 1.0)
    with pytest.raises(InvalidSiteError, match="negative"):
        validate(site)
    s = optimise(site)
    assert s.infeasible and s.delivered_kwh()[0] == pytest.approx(0.0, abs=1e-6)


def test_energy_beyond_window_is_capped_to_what_fits_and_fully_served():
    site = site_with(EV("a", 0, 2, 50, 7, "site"))
    s = optimise(site)
    assert s.delivered_kwh()[0] == pytest.approx(14.0, abs=1e-4)  # 7 kW x 2 h
    assert any(i.code == "energy_exceeds_window" for i in s.issues)


def test_valid_site_has_no_issues():
    site = site_with(EV("a", 0, 4, 10, 7, "site"))
    fixed, issues = validate(site)
    assert issues == [] and fixed.evs == site.evs


def test_fault_schedule_caps_the_node():
    tree = LimitNode("site", 20, (LimitNode("c0", 11), LimitNode("c1", 11)))
    evs = (EV("a", 0, 4, 40, 11, "c0"), EV("b", 0, 4, 40, 11, "c1"))
    site = Site(evs, tree, 4, 1.0, cap_schedule={"c1": np.array([11, 11, 0, 0])})
    s = optimise(site, OptimiserConfig(("energy",)))
    assert violations(site, s) == []
    assert s.by_id("b")[2:] == pytest.approx([0, 0], abs=1e-6)
