"""The energy forecaster's cross-driver median regression: what a request and a station say about a driver
never seen before, robust to rare huge sessions; the energy forecaster lets it speak at cold start; the car the
driver's app states picks the station's similar sessions; no forecast ever sees a label that ends after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from streams.forecasting.loaders import SessionRecord
from streams.forecasting.prequential import prequential_sessions
from streams.forecasting.session_models import GlobalLAD, PlugInFeaturizer, PooledContextMedian, SessionForecaster



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


# ------------------------------------------------------------------------------------ no leakage, whole model


class _Recorder:
    """Wraps a model and keeps every prediction with the plug-in time it was made at."""

    def __init__(self, model) -> None:
        self.model, self.preds = model, []

    def predict_one(self, x):
        p = self.model.predict_one(x)
        self.preds.append((x["plug_in"].timestamp(), p))
        return p

    def learn_one(self, x, y) -> None:
        self.model.learn_one(x, y)


def _fleet(n: int) -> list[SessionRecord]:
    """Overlapping sessions of 12 drivers at 3 stations, with app inputs (request, departure, car) on most."""
    t0 = datetime(2021, 5, 3, 6, 0, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        start = t0 + timedelta(hours=1.7 * i)
        dur = 0.5 + (i * 7919) % 13
        user = None if i % 11 == 0 else f"u{(i * 5) % 12}"
        app = i % 4 != 0
        out.append(SessionRecord("t", str(i), user, f"s{i % 3}", "site", start, start + timedelta(hours=dur), None,
                                 1.0 + (i * 37) % 29, 5.0 + (i * 13) % 40 if app else None,
                                 start + timedelta(hours=8) if app else None,
                                 250.0 + 25 * (i % 5) if app else None, 20.0 + (i * 3) % 90 if app else None))
    return out


@pytest.mark.parametrize("target", ["kwh", "duration_h"])
def test_predictions_at_t_ignore_every_label_that_ends_after_t(target: str) -> None:
    """The whole forecaster (every candidate, the per-driver blend, the cross-driver regressions and the stack)
    under the prequential loop: rewriting the labels of the sessions that end after t leaves every forecast made
    at or before t exactly as it was, and does change later ones (the labels are used once known)."""
    recs = _fleet(260)
    cut = recs[180].plug_in.timestamp()
    altered = [replace(r, kwh=r.kwh * 3 + 7, unplug=r.unplug + timedelta(hours=(int(r.session_id) % 5)))
               if r.unplug.timestamp() > cut else r for r in recs]
    runs = []
    for data in (recs, altered):
        rec = _Recorder(SessionForecaster(target, use_arf=False))
        prequential_sessions(data, {"m": rec}, (lambda r: r.kwh) if target == "kwh" else (lambda r: r.duration_h))
        runs.append(rec.preds)
    before = [(a, b) for a, b in zip(*runs) if a[0] <= cut]
    assert len(before) == 181 and all(a == b for a, b in before)
    assert any(a != b for a, b in zip(runs[0][181:], runs[1][181:]))


def test_a_leaky_loop_would_fail_the_no_leakage_check() -> None:
    """The check above can fail: learning each label at plug-in (a leak) changes forecasts made before t."""
    recs = _fleet(120)
    cut = recs[80].plug_in.timestamp()
    altered = [replace(r, kwh=r.kwh * 3 + 7) if r.unplug.timestamp() > cut else r for r in recs]
    runs = []
    for data in (recs, altered):
        rec = _Recorder(SessionForecaster("kwh", use_arf=False))
        prequential_sessions(data, {"m": rec}, lambda r: r.kwh, label_time=lambda r: r.plug_in)
        runs.append(rec.preds)
    assert any(a != b for a, b in zip(runs[0][:81], runs[1][:81]))


def _vx(user: str, station: str = "dc", **kw) -> dict:
    return {"user": user, "station": station, "hour": 9.0, "weekend": False, **kw}


def test_vehicle_kernel_starts_a_new_driver_from_similar_cars_at_the_station() -> None:
    m = PooledContextMedian(kernels=(("wh_per_mile", 0.1),))
    for i in range(20):
        m.learn_one(_vx(f"small{i}", wh_per_mile=250.0), 12.0)  # small cars take ~12 kWh at this port
        m.learn_one(_vx(f"big{i}", wh_per_mile=400.0), 45.0)    # big ones ~45 kWh
    assert m.predict_one(_vx("new", wh_per_mile=390.0)) == 45.0
    assert m.predict_one(_vx("new", wh_per_mile=260.0)) == 12.0
    assert m.predict_one(_vx("new", station="elsewhere", wh_per_mile=390.0)) == 28.5  # no pool: global median
    with pytest.raises(ValueError):
        PooledContextMedian(kernels=(("wh_per_mile", 0.0),))


def test_featurizer_passes_the_app_car_inputs_known_at_plug_in() -> None:
    r = _fleet(2)[1]
    x = PlugInFeaturizer().features(r)
    assert (x["wh_per_mile"], x["miles_requested"]) == (r.wh_per_mile, r.miles_requested)
    assert "wh_per_mile" not in PlugInFeaturizer().features(_fleet(1)[0])  # no app input: absent, not 0


def test_energy_forecaster_lets_the_car_speak_for_a_new_driver() -> None:
    m = SessionForecaster("kwh", use_arf=False)
    assert "pooled vehicle" in m.cold
    for i in range(40):
        big = i % 2 == 0
        m.learn_one(_vx(f"d{i}", wh_per_mile=400.0 if big else 250.0), 45.0 if big else 12.0)
    assert m.predict_one(_vx("new", wh_per_mile=400.0)) > m.predict_one(_vx("new", wh_per_mile=250.0)) + 10
