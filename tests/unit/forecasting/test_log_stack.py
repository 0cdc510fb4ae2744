"""The energy forecaster's log-space stack: a median regression in log1p space that learns multiplicative
corrections, never extrapolates past the largest candidate, and is averaged with the linear stack; the ARF
candidate no longer takes part in energy forecasts (it still does in duration)."""

from __future__ import annotations

import math

import pytest

from streams.forecasting.checkpoint import Checkpoint
from streams.forecasting.session_models import SessionForecaster, _LogStacker, _Stacker


def _x(user: str, hour: float, gap: float | None = None) -> dict:
    x = {"user": user, "station": "s", "hour": hour, "weekend": False}
    if gap is not None:
        x["hours_since_last"] = gap
    return x


def _train_multiplicative(st: _LogStacker, n: int = 300) -> None:
    """Labels are 1.5x the blend over a 2-40 kWh range; one label in ten is a wild 90 kWh."""
    for i in range(n):
        blend = 2.0 + (i * 7) % 39
        y = 1.5 * blend if i % 10 else 90.0
        st.learn(st.log_features(blend, {"a": blend}, 5, _x("u", 9.0)), y)


def test_log_stack_learns_a_ratio_across_small_and_large_sessions_despite_wild_labels() -> None:
    st = _LogStacker(refit_every=10, min_n=30)
    assert st.predict(st.log_features(4.0, {"a": 4.0}, 5, _x("u", 9.0))) is None  # nothing fitted yet
    _train_multiplicative(st)
    for blend in (3.0, 10.0, 30.0):
        got = st.predict(st.log_features(blend, {"a": blend}, 5, _x("u", 9.0)))
        assert got == pytest.approx(1.5 * blend, rel=0.12)


def test_log_stack_is_capped_by_the_largest_candidate_and_never_negative_or_overflowing() -> None:
    st = _LogStacker(refit_every=10, min_n=30)
    _train_multiplicative(st)
    f = st.log_features(30.0, {"a": 30.0}, 5, _x("u", 9.0))
    assert st.predict(f) > 40.0
    assert st.predict_capped(f, 30.0) == 30.0  # the fit says ~45, no candidate says more than 30
    assert st.predict_capped(f, -1.0) == 0.0
    st.coef = [1000.0] * len(f)  # a runaway fit: exp() must not overflow
    assert math.isfinite(st.predict(f))
    st.coef = [-1000.0] * len(f)
    assert st.predict(f) == 0.0


def test_log_features_are_the_linear_stacks_with_forecasts_in_log1p() -> None:
    x = _x("u", 18.0, 30.0)
    lin = _Stacker.features(6.0, {"a": 4.0, "b": 9.0}, 3, x)
    log = _LogStacker.log_features(6.0, {"a": 4.0, "b": 9.0}, 3, x)
    assert log[:4] == [1.0, math.log1p(6.0), math.log1p(4.0), math.log1p(9.0)]
    assert log[4:] == lin[4:]  # context (history length, time away, clock, ...) unchanged


def _fitted_energy_forecaster() -> SessionForecaster:
    f = SessionForecaster("kwh", use_arf=False)
    for i in range(150):  # habits: 6 kWh after a night away, 20 kWh after a long weekend away
        away = 60.0 if i % 5 == 0 else 14.0
        f.learn_one(_x(f"u{i % 4}", 18.0, away), 20.0 if away > 24 else 6.0)
    return f


def test_energy_stack_forecast_is_the_mean_of_the_linear_and_the_log_stack() -> None:
    f = _fitted_energy_forecaster()
    assert f.stack is not None and f.stack.coef is not None
    assert f.log_stack is not None and f.log_stack.coef is not None
    x = _x("u1", 18.0, 60.0)
    preds = {k: m.predict_one(x) for k, m in f.candidates.items()}
    blend, stacked, lin_f, log_f = f._final(x, preds)
    assert lin_f is not None and log_f is not None and stacked is not None
    lin = f.stack.predict(lin_f)
    log = f.log_stack.predict_capped(log_f, max(preds.values()))
    assert lin is not None and log is not None
    assert stacked == pytest.approx(0.5 * (lin + log))
    assert f.predict_one(x) > 12.0 and f.predict_one(_x("u1", 18.0, 14.0)) == pytest.approx(6.0, abs=1.0)


def test_energy_forecaster_without_log_stack_and_old_checkpoints_use_the_linear_stack_alone() -> None:
    f = _fitted_energy_forecaster()
    old = Checkpoint.from_bytes(Checkpoint({"m": f}).to_bytes()).models["m"]
    delattr(old, "log_stack")  # as pickled before the log stack existed
    x = _x("u2", 18.0, 60.0)
    preds = {k: m.predict_one(x) for k, m in old.candidates.items()}
    blend, stacked, lin_f, log_f = old._final(x, preds)
    assert log_f is None and lin_f is not None and stacked == old.stack.predict(lin_f)
    old.learn_one(x, 20.0)  # and it keeps learning
    assert SessionForecaster("kwh", use_arf=False, log_stack=False).log_stack is None
    assert SessionForecaster("duration_h", use_arf=False).log_stack is None  # duration: the blend alone


def test_arf_candidate_is_for_duration_only() -> None:
    assert "arf residual" not in SessionForecaster("kwh", use_arf=True).candidates
    assert "arf residual" in SessionForecaster("duration_h", use_arf=True).candidates
    assert "arf residual" not in SessionForecaster("duration_h", use_arf=False).candidates
