"""The energy forecaster's cross-driver median regression: what a request and a station say about a driver
never seen before, robust to rare huge sessions; the energy forecaster lets it speak at cold start."""

from __future__ import annotations

import pytest

from streams.forecasting.session_models import GlobalLAD, SessionForecaster



def test_global_lad_learns_what_a_request_says_for_a_new_driver() -> None:
    m = GlobalLAD(refit_every=5, min_n=20)
    for i in range(200):  # every driver gets about 80% of the kWh they type in, at one AC station
        req = 5.0 + (i % 7) * 4.0
        m.learn_one({"user": f"u{i}", "station": "s", "hour": 9.0, "weekend": False, "requested_kwh": req,
                     "requested_h": 8.0}, 0.8 * req)
    new = {"user": "new", "station": "s", "hour": 9.0, "weekend": False, "requested_h": 8.0}
    assert m.predict_one({**new, "requested_kwh": 25.0}) == pytest.approx(20.0, abs=0.5)
    assert m.predict_one({**new, "requested_kwh": 9.0}) == pytest.approx(7.2, abs=0.5)


def test_global_lad_separates_stations_for_a_new_driver_and_is_robust_to_outliers() -> None:
    m = GlobalLAD(refit_every=5, min_n=20)
    for i in range(300):
        dc = i % 3 == 0
        y = 22.0 if dc else 5.0
        if i % 10 == 7:
            y = 80.0  # a rare huge session must not drag a median model
        m.learn_one({"user": f"u{i}", "station": "dc" if dc else "ac", "hour": 12.0, "weekend": False}, y)
    x = {"user": "new", "hour": 12.0, "weekend": False}
    assert m.predict_one({**x, "station": "dc"}) == pytest.approx(22.0, abs=1.5)
    assert m.predict_one({**x, "station": "ac"}) == pytest.approx(5.0, abs=1.5)


def test_global_lad_rejects_bad_settings_and_predicts_before_any_fit() -> None:
    with pytest.raises(ValueError):
        GlobalLAD(window=10, min_n=30)
    m = GlobalLAD()
    assert m.predict_one({"user": "a"}) == 0.0
    m.learn_one({"user": "a"}, 4.0)
    assert m.predict_one({"user": "a"}) == 4.0  # before min_n labels: the driver's median
    m.learn_one({"user": "b", "station": "s"}, 9.0)
    assert m.predict_one({"user": "new", "station": "s"}) == 9.0  # a new driver: the station's median


def test_energy_forecaster_cold_starts_with_the_global_lad_too() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    assert "global lad" in f.weights({"user": "never seen", "hour": 8.0, "weekend": False})
    assert "global lad" not in SessionForecaster("duration_h", use_arf=False).weights({"user": "x"})


def _x(user: str, hour: float, gap: float | None = None) -> dict:
    x = {"user": user, "station": "s", "hour": hour, "weekend": False}
    if gap is not None:
        x["hours_since_last"] = gap
    return x


def test_stacker_is_a_median_regression_that_ignores_rare_huge_labels() -> None:
    from streams.forecasting.session_models import _Stacker

    st = _Stacker(refit_every=5, min_n=30)
    assert st.predict(st.features(4.0, {"a": 4.0}, 3, _x("u", 9.0))) is None  # nothing fitted yet
    for i in range(200):
        blend = 2.0 + i % 9
        y = 1.5 * blend if i % 10 else 90.0  # one label in ten is wild
        st.learn(st.features(blend, {"a": blend}, 5, _x("u", 9.0)), y)
    assert st.predict(st.features(6.0, {"a": 6.0}, 5, _x("u", 9.0))) == pytest.approx(9.0, abs=0.3)


def test_energy_forecaster_mixes_blend_and_stack_by_their_recent_errors() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    assert SessionForecaster("duration_h", use_arf=False).stack is None  # duration: the blend alone
    f.meta_err = {"blend": 2.0, "stack": 1.0}
    w = f.meta_weights()
    assert sum(w.values()) == pytest.approx(1.0) and w["stack"] > 0.8
    for i in range(120):  # habits: 6 kWh after a night away, 20 kWh after a long weekend away
        away = 60.0 if i % 5 == 0 else 14.0
        f.learn_one(_x(f"u{i % 4}", 18.0, away), 20.0 if away > 24 else 6.0)
    assert f.stack is not None and f.stack.coef is not None
    assert f.predict_one(_x("u1", 18.0, 14.0)) == pytest.approx(6.0, abs=1.0)
    assert f.predict_one(_x("u1", 18.0, 60.0)) > 12.0


def test_energy_forecaster_round_trips_with_a_fitted_stack_and_loads_pre_stack_checkpoints() -> None:
    from streams.forecasting.checkpoint import Checkpoint

    f = SessionForecaster("kwh", use_arf=False)
    for i in range(90):
        f.learn_one(_x(f"u{i % 5}", 8.0 + i % 12, 10.0 + i % 30), 3.0 + (i * 7) % 13)
    back = Checkpoint.from_bytes(Checkpoint({"m": f}).to_bytes()).models["m"]
    for i in range(20):
        x = _x(f"u{i % 6}", 7.0 + i % 14, 5.0 + i)
        assert back.predict_one(x) == f.predict_one(x)
        back.learn_one(x, 4.0 + i % 5)
        f.learn_one(x, 4.0 + i % 5)
    old = Checkpoint.from_bytes(Checkpoint({"m": f}).to_bytes()).models["m"]
    for attr in ("stack", "meta_err", "meta_alpha", "user_n", "cold"):  # as pickled before these existed
        delattr(old, attr)
    x = _x("u1", 9.0, 12.0)
    assert old.predict_one(x) >= 0.0
    old.learn_one(x, 5.0)
