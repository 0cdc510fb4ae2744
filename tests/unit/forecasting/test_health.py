"""Charger health flags a synthetic faulty charger from its own history, and not a healthy one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streams.forecasting.health import DROPPED, LOW_POWER, ZERO_ENERGY, ChargerHealth

T0 = datetime(2021, 6, 1, 8, tzinfo=timezone.utc)


def run_sessions(h: ChargerHealth, charger: str, kwhs: list[float], hours: float = 2.0):
    verdicts = []
    for i, kwh in enumerate(kwhs):
        s = T0 + timedelta(hours=4 * i)
        verdicts += h.observe_session(charger, s, s + timedelta(hours=hours), kwh)
    return verdicts


def test_repeated_zero_energy_is_flagged_once_then_cleared() -> None:
    h = ChargerHealth()
    healthy = [10.0 + (i % 3) for i in range(10)]
    v = run_sessions(h, "bad", healthy + [0.0, 0.01, 0.0, 0.0])
    assert [x.kind for x in v] == [ZERO_ENERGY]
    assert "3 sessions in a row" in v[0].detail
    assert h.faulty() == {"bad": {ZERO_ENERGY}}
    assert run_sessions(h, "bad", [9.0]) == [] and h.faulty() == {}
    # the healthy charger with one occasional zero is never flagged
    h2 = ChargerHealth()
    assert run_sessions(h2, "ok", healthy + [0.0] + healthy + [0.0, 10.0]) == []


def test_short_zero_sessions_are_not_a_fault() -> None:
    h = ChargerHealth()
    assert run_sessions(h, "c", [0.0] * 5, hours=0.05) == []  # 3-minute plug-ins: drivers, not a broken charger


def test_power_far_below_own_history() -> None:
    h = ChargerHealth()
    v = run_sessions(h, "slow", [12.0] * 8 + [1.0, 1.2, 0.9])  # 6 kW -> ~0.5 kW over 2 h
    assert [x.kind for x in v] == [LOW_POWER]
    h2 = ChargerHealth()
    assert run_sessions(h2, "fine", [12.0, 11.0, 13.0, 12.5, 11.5] * 3) == []


def test_power_below_rating() -> None:
    h = ChargerHealth(ratings_kw={"r": 7.0})
    assert [x.kind for x in run_sessions(h, "r", [3.0, 3.0, 3.0])] == [LOW_POWER]  # 1.5 kW on a 7 kW charger


def test_dropped_connections() -> None:
    h = ChargerHealth()
    v = []
    for i in range(5):
        v += h.observe_disconnect("d", T0 + timedelta(hours=i), expected=False)
        v += h.observe_disconnect("ok", T0 + timedelta(hours=i), expected=True)
    assert [(x.charger_id, x.kind) for x in v] == [("d", DROPPED)]
    # spread over days: never more than 3 in 24 h
    h2 = ChargerHealth()
    assert sum((h2.observe_disconnect("e", T0 + timedelta(hours=10 * i), expected=False) for i in range(10)),
               []) == []
