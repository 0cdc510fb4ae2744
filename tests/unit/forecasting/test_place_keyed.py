"""A driver who charges at two garages has a habit at each: the per-driver energy candidates forecast from the
driver's sessions at the site they plug into, and a driver seen at one site only is forecast exactly as before."""

from __future__ import annotations

import pickle

import pytest

from streams.forecasting.session_models import (HabitKernelMedian, PlaceKeyed, RecencyMedian, SessionForecaster)


def _x(site: str, user: str = "u", hour: float = 18.0, gap: float = 24.0) -> dict:
    return {"user": user, "station": site, "site": site, "hour": hour, "weekday": 1, "weekend": False,
            "hours_since_last": gap}


def test_a_two_garage_driver_is_forecast_from_the_garage_they_plug_into() -> None:
    plain, placed = RecencyMedian(10), PlaceKeyed(lambda: RecencyMedian(10))
    for _ in range(6):  # big charges at home, small top-ups at work, alternating
        for m in (plain, placed):
            m.learn_one(_x("home"), 50.0)
            m.learn_one(_x("work"), 6.0)
    assert placed.predict_one(_x("home")) == 50.0
    assert placed.predict_one(_x("work")) == 6.0
    assert plain.predict_one(_x("home")) == plain.predict_one(_x("work"))  # blind to where: one answer for both
    # a garage new to the driver: their whole history speaks (as the wrapped model alone would)
    assert placed.predict_one(_x("cabin")) == plain.predict_one(_x("cabin"))


def test_a_single_site_driver_is_forecast_exactly_as_by_the_wrapped_model() -> None:
    plain, placed = HabitKernelMedian(), PlaceKeyed(HabitKernelMedian)
    for i, (gap, y) in enumerate([(0.5, 2.0), (96.0, 30.0), (20.0, 9.0), (30.0, 12.0), (0.7, 1.5)] * 3):
        for m in (plain, placed):
            m.learn_one(_x("garage", gap=gap, hour=8.0 + i % 12), y)
    for gap in (0.4, 24.0, 120.0):
        assert placed.predict_one(_x("garage", gap=gap)) == plain.predict_one(_x("garage", gap=gap))
    assert placed.predict_one(_x("garage", user="stranger")) == plain.predict_one(_x("garage", user="stranger"))


def test_place_keyed_waits_for_min_n_sessions_at_the_site_and_rejects_bad_settings() -> None:
    placed = PlaceKeyed(lambda: RecencyMedian(10), min_n=3)
    for _ in range(5):
        placed.learn_one(_x("home"), 50.0)
    placed.learn_one(_x("work"), 6.0)
    assert placed.predict_one(_x("work")) == 50.0  # one session at work is not a habit yet
    placed.learn_one(_x("work"), 6.0)
    placed.learn_one(_x("work"), 6.0)
    assert placed.predict_one(_x("work")) == 6.0
    with pytest.raises(ValueError):
        PlaceKeyed(lambda: RecencyMedian(10), min_n=0)


def test_energy_forecaster_with_place_keyed_candidates_round_trips_through_pickle() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    assert isinstance(f.candidates["habit kernel"], PlaceKeyed)
    for i in range(60):
        site = "home" if i % 2 else "work"
        f.learn_one(_x(site, hour=8.0 + i % 10), 50.0 if site == "home" else 6.0)
    g = pickle.loads(pickle.dumps(f))
    for site in ("home", "work"):
        assert g.predict_one(_x(site)) == f.predict_one(_x(site))
    assert f.predict_one(_x("home")) > 3 * f.predict_one(_x("work"))
