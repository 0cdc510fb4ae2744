"""The driver's own habits after a similar time away: a short hop back gets a top-up forecast, a week away a full
charge; each driver's pace of change; the previous session's energy (known once it ended, never before) reaches
the features; the energy forecast mixes blend and stack per driver-history bucket, and trusts a short history's
candidate errors only partly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from streams.forecasting.checkpoint import Checkpoint
from streams.forecasting.loaders import SessionRecord
from streams.forecasting.session_models import (HabitKernelMedian, PlugInFeaturizer, RecencyMedian,
                                                SessionForecaster, history_bucket)

T0 = datetime(2020, 3, 2, 7, 0, tzinfo=timezone.utc)  # a Monday


def _x(user: str = "u", hour: float = 18.0, gap: float | None = None, weekday: int = 0, **kw) -> dict:
    x = {"user": user, "station": "s", "hour": hour, "weekday": weekday, "weekend": weekday >= 5, **kw}
    if gap is not None:
        x["hours_since_last"] = gap
    return x


def test_habit_kernel_forecasts_a_top_up_after_a_short_hop_and_a_full_charge_after_days_away() -> None:
    m = HabitKernelMedian()
    for _ in range(6):  # this driver: 2 kWh when back within the hour, 30 kWh after four days away
        m.learn_one(_x(gap=0.5), 2.0)
        m.learn_one(_x(gap=96.0), 30.0)
    assert m.predict_one(_x(gap=0.4)) == 2.0
    assert m.predict_one(_x(gap=110.0)) == 30.0
    assert m.predict_one(_x("stranger", gap=0.4)) == pytest.approx(16.0)  # no history: the global median


def test_habit_kernel_prefers_the_same_weekday_and_the_previous_session_size_when_asked() -> None:
    m = HabitKernelMedian(other_weekday=0.2)
    for _ in range(4):  # Fridays are big, Mondays small, same clock and gap
        m.learn_one(_x(gap=24.0, weekday=4), 25.0)
        m.learn_one(_x(gap=24.0, weekday=0), 5.0)
    assert m.predict_one(_x(gap=24.0, weekday=4)) == 25.0
    assert m.predict_one(_x(gap=24.0, weekday=0)) == 5.0
    last = HabitKernelMedian(last_sigma=0.5)
    for _ in range(4):  # after an aborted 0.5 kWh session the real one follows (20 kWh); after 20 kWh, 6 kWh
        last.learn_one(_x(gap=0.3, last_kwh=0.5), 20.0)
        last.learn_one(_x(gap=0.3, last_kwh=20.0), 6.0)
    assert last.predict_one(_x(gap=0.3, last_kwh=0.4)) == 20.0
    assert last.predict_one(_x(gap=0.3, last_kwh=22.0)) == 6.0
    for bad in ({"gap_sigma": 0.0}, {"last_sigma": -1.0}, {"other_weekday": 1.5}, {"half_life": 0}):
        with pytest.raises(ValueError):
            HabitKernelMedian(**bad)


def _rec(i: int, user: str, start_h: float, dur_h: float, kwh: float) -> SessionRecord:
    s = T0 + timedelta(hours=start_h)
    return SessionRecord("t", str(i), user, "s", "site", s, s + timedelta(hours=dur_h), None, kwh)


def test_featurizer_gives_the_previous_sessions_energy_only_once_it_ended() -> None:
    f = PlugInFeaturizer()
    a, b, c = _rec(0, "u", 0, 5, 12.5), _rec(1, "u", 8, 1, 3.0), _rec(2, "v", 9, 1, 1.0)
    assert "last_kwh" not in f.features(b)  # a has not ended for the forecaster: its energy is unknown
    f.observe_end(a)
    assert f.features(b)["last_kwh"] == 12.5
    assert "last_kwh" not in f.features(c)  # another driver's session says nothing about v's last charge
    f.observe_end(b)
    assert f.features(_rec(3, "u", 20, 1, 0.0))["last_kwh"] == 3.0
    old = PlugInFeaturizer()
    old.observe_end(a)
    del old.users["u"].last_kwh  # a featurizer pickled before the field existed: no crash, no feature
    assert "last_kwh" not in old.features(b) and "hours_since_last" in old.features(b)


def test_history_buckets() -> None:
    assert [history_bucket(n) for n in (0, 1, 4, 5, 19, 20, 300)] == [0, 1, 1, 2, 2, 3, 3]


def test_energy_forecast_leans_on_the_stack_only_for_the_drivers_it_serves_better() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    f.meta_err = {"blend": 1.0, "stack": 1.0}
    f.meta_err_by = {0: {"blend": 3.0, "stack": 1.0}, 3: {"blend": 1.0, "stack": 3.0}}
    assert f.meta_weights(0)["stack"] > 0.99  # first sessions: the stack
    assert f.meta_weights(3)["blend"] > 0.99  # long histories: the blend
    assert f.meta_weights(2) == pytest.approx({"blend": 0.5, "stack": 0.5})  # bucket with no labels: global
    assert f.meta_weights() == f.meta_weights(2)


def test_energy_forecaster_learns_the_buckets_and_loads_checkpoints_from_before_them() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    for i in range(120):
        f.learn_one(_x(f"u{i % 4}", 8.0 + i % 10, 5.0 + i % 40, last_kwh=float(i % 7)), 3.0 + (i * 7) % 13)
    assert f.stack is not None and f.stack.coef is not None
    assert set(f.meta_err_by) == {2, 3}  # mixing starts once the stack is fitted (50 labels: 12+ per driver)
    back = Checkpoint.from_bytes(Checkpoint({"m": f}).to_bytes()).models["m"]
    x = _x("u1", 9.0, 12.0, last_kwh=4.0)
    assert back.predict_one(x) == f.predict_one(x)
    del back.meta_err_by  # as pickled before the buckets existed
    assert back.predict_one(x) >= 0.0
    back.learn_one(x, 5.0)
    assert 3 in back.meta_err_by


def test_recency_median_follows_a_changed_habit_at_its_own_pace() -> None:
    fast, slow = RecencyMedian(half_life=3), RecencyMedian(half_life=50)
    for m in (fast, slow):
        for _ in range(20):
            m.learn_one({"user": "u"}, 5.0)  # months of 5 kWh sessions, then a longer commute: 15 kWh
        for _ in range(5):
            m.learn_one({"user": "u"}, 15.0)
    assert fast.predict_one({"user": "u"}) == 15.0  # a fast decay has moved on
    assert slow.predict_one({"user": "u"}) == 5.0   # a slow one still votes for the old habit
    assert fast.predict_one({"user": "new"}) == 5.0  # no history: the global median
    with pytest.raises(ValueError):
        RecencyMedian(half_life=0)


def test_energy_forecaster_shrinks_a_short_historys_errors_towards_drivers_like_it() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    assert f.shrink_n == 2.0 and SessionForecaster("duration_h", use_arf=False).shrink_n is None
    names = list(f.candidates)
    f.user_err["u"] = {k: (1.0 if k == names[0] else 5.0) for k in names}  # one lucky label says names[0]
    f.user_n["u"] = 1
    f.bucket_err[1] = {k: (1.0 if k == names[1] else 5.0) for k in names}  # peers with 1-4 labels: names[1]
    w = f.weights({"user": "u", "hour": 9.0})
    assert w[names[1]] > w[names[0]] > 0.01  # 1 label: trusted 1/3, the peers 2/3
    f.user_n["u"] = 40
    f.bucket_err[3] = {k: 3.0 for k in names}  # long histories: peers are indifferent
    w = f.weights({"user": "u", "hour": 9.0})
    assert max(w, key=w.__getitem__) == names[0]  # 40 labels: the driver's own record decides
    with pytest.raises(ValueError):
        SessionForecaster("kwh", shrink_n=-1.0)
