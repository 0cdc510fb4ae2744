"""Baselines compute what they say; the learned models follow the signal; prequential never leaks the future;
checkpoints round-trip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from streams.forecasting.checkpoint import Checkpoint, replay
from streams.forecasting.loaders import SessionRecord
from streams.forecasting.occupancy import (OccupancyForecaster, OccupancyTracker, Persistence, SeasonalBlend,
                                           SeasonalMean, hourly_occupancy)
from streams.forecasting.prequential import prequential_series, prequential_sessions
from streams.forecasting.session_models import (ANON, GapScaledMedian, GlobalMean, LastValue, PlugInFeaturizer,
                                                PooledContextMedian, SessionForecaster, ShiftedDurationMedian,
                                                UserContextMedian, UserMean, UserMedian, gap_bucket)

UTC = timezone.utc
T0 = datetime(2021, 5, 3, 8, 0, tzinfo=UTC)


def feed(model, seq):
    """Predictions made before each learn, in order."""
    preds = []
    for user, y in seq:
        x = {"user": user}
        preds.append(model.predict_one(x))
        model.learn_one(x, y)
    return preds


SEQ = [("a", 2.0), ("a", 4.0), ("b", 10.0), ("a", 30.0), ("a", 5.0), ("b", 20.0)]


def test_global_mean() -> None:
    assert feed(GlobalMean(), SEQ) == pytest.approx([0.0, 2.0, 3.0, 16 / 3, 46 / 4, 51 / 5])


def test_user_mean_falls_back_to_global_mean() -> None:
    assert feed(UserMean(), SEQ) == pytest.approx([0.0, 2.0, 3.0, 3.0, 12.0, 10.0])


def test_user_median_is_robust_to_the_outlier() -> None:
    # a: [2,4] -> 3; [2,4,30] -> 4; new user b -> global median of [2,4] = 3; b later: [10] -> 10
    assert feed(UserMedian(), SEQ) == pytest.approx([0.0, 2.0, 3.0, 3.0, 4.0, 10.0])


def test_last_value() -> None:
    assert feed(LastValue(), SEQ) == pytest.approx([0.0, 2.0, 3.0, 4.0, 30.0, 10.0])


def test_context_median_separates_morning_and_evening_habits() -> None:
    m = UserContextMedian()
    for day in range(10):
        m.learn_one({"user": "u", "hour": 8.0, "weekend": False}, 9.0)   # morning at work: 9 h
        m.learn_one({"user": "u", "hour": 18.0, "weekend": False}, 14.0)  # evening at home: overnight
    assert m.predict_one({"user": "u", "hour": 8.5, "weekend": False}) == 9.0
    assert m.predict_one({"user": "u", "hour": 17.5, "weekend": False}) == 14.0
    assert UserMedian().predict_one({"user": "u"}) == 0.0


def session(i: int, user: str, start_h: float, dur_h: float, kwh: float) -> SessionRecord:
    s = T0 + timedelta(hours=start_h)
    return SessionRecord("t", str(i), user, "st", "site", s, s + timedelta(hours=dur_h), None, kwh)


def test_prequential_learns_only_labels_known_at_plug_in() -> None:
    # u's first session lasts 10 h; the second plugs in 1 h later (a second car / shared id): its label is not
    # known yet, so the last-value model must fall back to the global mean (0 before any label), not to 50 kWh.
    recs = [session(0, "u", 0, 10, 50.0), session(1, "u", 1, 1, 10.0), session(2, "u", 11, 1, 20.0)]
    res = prequential_sessions(recs, {"last": LastValue()}, lambda r: r.kwh, keep_errors=True)
    # predictions: 0 (nothing known), 0 (session 0 still plugged in), then at t=11 both labels are known and the
    # one learned last is session 0's (it ended at t=10, after session 1 at t=2): 50.
    assert res.abs_errors["last"] == pytest.approx([50.0, 10.0, 30.0])
    # learning each label at plug-in (the leak) would predict 0, 50, 10: errors 50, 40, 10, MAE 33.3
    assert res.mae["last"] == pytest.approx(30.0)


def test_prequential_tie_goes_against_the_model() -> None:
    recs = [session(0, "u", 0, 2, 8.0), session(1, "u", 2, 1, 1.0)]  # unplug at 2 h == next plug-in at 2 h
    res = prequential_sessions(recs, {"mean": UserMean()}, lambda r: r.kwh, keep_errors=True)
    assert res.abs_errors["mean"] == pytest.approx([8.0, 1.0])


def test_featurizer_uses_only_ended_sessions() -> None:
    f = PlugInFeaturizer()
    a, b = session(0, "u", 0, 5, 3.0), session(1, "u", 8, 1, 3.0)
    assert "hours_since_last" not in f.features(b)
    f.observe_end(a)
    assert f.features(b)["hours_since_last"] == pytest.approx(3.0)


def test_session_forecaster_checkpoint_round_trip_predicts_identically() -> None:
    recs = [session(i, f"u{i % 3}", 5 * i, 1 + (i % 4), 3.0 + (i * 7) % 11) for i in range(60)]
    f = PlugInFeaturizer()
    m = SessionForecaster("kwh", use_arf=True)
    for r in recs[:40]:
        m.learn_one(f.features(r), r.kwh)
        f.observe_end(r)
    cp = Checkpoint({"model": m, "feat": f}, {"sessions/0": 40})
    back = Checkpoint.from_bytes(cp.to_bytes())
    assert back.offsets == {"sessions/0": 40}
    for r in recs[40:]:
        x1, x2 = f.features(r), back.models["feat"].features(r)
        assert m.predict_one(x1) == back.models["model"].predict_one(x2)
        m.learn_one(x1, r.kwh)
        back.models["model"].learn_one(x2, r.kwh)
        f.observe_end(r)
        back.models["feat"].observe_end(r)


def test_restart_resumes_from_offsets_and_equals_an_uninterrupted_run() -> None:
    log = [("s/0", i, ("u", float(i % 5))) for i in range(10)] + [("s/1", i, ("v", 7.0)) for i in range(4)]

    def apply(models, ev):
        models["m"].learn_one({"user": ev[0]}, ev[1])

    full = replay(log, Checkpoint({"m": UserMean()}), apply)
    part = replay([e for e in log if e[0] == "s/0" and e[1] < 6], Checkpoint({"m": UserMean()}), apply)
    restored = Checkpoint.from_bytes(part.to_bytes())
    assert restored.offsets == {"s/0": 6}
    restored = replay(log, restored, apply)  # the whole log again: seen events are skipped
    assert restored.offsets == full.offsets == {"s/0": 10, "s/1": 4}
    for u in ("u", "v"):
        assert restored.models["m"].predict_one({"user": u}) == full.models["m"].predict_one({"user": u})
    assert restored.models["m"].glob.n == 14
    with pytest.raises(ValueError):
        Checkpoint.from_bytes(b"nope" + b"x")


# ------------------------------------------------------------------------------------------------- occupancy

LA = ZoneInfo("America/Los_Angeles")


def test_tracker_time_weighted_hours() -> None:
    tr = OccupancyTracker()
    assert tr.occupied(T0, "c1", True) == []
    assert tr.occupied(T0 + timedelta(minutes=30), "c2", True) == []
    assert tr.occupied(T0 + timedelta(minutes=30), "c2", True) == []  # repeated status: idempotent
    closed = tr.occupied(T0 + timedelta(hours=2, minutes=15), "c1", False)
    assert closed == [(T0, pytest.approx(1.5)), (T0 + timedelta(hours=1), pytest.approx(2.0))]
    assert tr.now == 1
    with pytest.raises(ValueError):
        tr.tick(T0)


def test_hourly_occupancy_across_dst_is_in_absolute_hours() -> None:
    s = datetime(2021, 3, 14, 1, 0, tzinfo=LA)  # LA springs forward at 02:00: 01:00 -> 04:00 is 2 real hours
    rec = SessionRecord("t", "1", "u", "st", "site", s, datetime(2021, 3, 14, 4, 0, tzinfo=LA), None, 1.0)
    times, vals = hourly_occupancy([rec])
    assert vals == [1.0, 1.0, 0.0]


def test_occupancy_baselines() -> None:
    p = Persistence()
    p.learn_one(T0, 3.0)
    assert p.forecast(3) == [3.0, 3.0, 3.0]
    m = SeasonalMean(ZoneInfo("UTC"))
    for week in range(3):
        for h in range(168):
            t = T0 + timedelta(hours=168 * week + h)
            m.learn_one(t, float(week + 1) if (t.weekday(), t.hour) == (0, 9) else 0.0)
    # T0 is Monday 08:00 UTC and the last learned hour is T0 + 503 h = Monday 07:00, so forecast(2) is Monday
    # 08:00 (always 0) and Monday 09:00 (1, 2, 3 over the three weeks: mean 2)
    assert m.forecast(2) == pytest.approx([0.0, 2.0])


def test_seasonal_blend_beats_baselines_on_a_daily_pattern_with_growth() -> None:
    tz = ZoneInfo("UTC")
    times = [T0 + timedelta(hours=i) for i in range(24 * 7 * 6)]
    vals = [(4.0 + 0.02 * (i // 24)) * (1.0 if 9 <= t.hour < 17 else 0.0) + (0.5 if i % 7 == 0 else 0.0)
            for i, t in enumerate(times)]
    res = prequential_series(times, vals, {"persist": Persistence(), "mean": SeasonalMean(tz),
                                           "blend": SeasonalBlend(tz)}, [1, 24], warmup=24 * 7 * 2)
    assert res[1]["blend"] < 0.9 * res[1]["persist"]
    assert res[24]["blend"] < 0.9 * res[24]["mean"]


def test_occupancy_forecaster_serves_next_24h_in_local_time() -> None:
    f = OccupancyForecaster(LA)
    f.on_status(T0, "c1", True)
    f.on_tick(T0 + timedelta(hours=3))
    nxt = f.next_24h()
    assert len(nxt) == 24 and nxt[0][0].tzinfo == LA
    assert nxt[0][0] == (T0 + timedelta(hours=3)).astimezone(LA)
    assert all(v >= 0 for _, v in nxt)


# ------------------------------------------------------------------------- station-pooled context median


def _x(user: str, station: str, hour: float = 9.0, **extra: object) -> dict:
    return {"user": user, "station": station, "hour": hour, "weekend": False, **extra}


def test_pooled_median_starts_a_new_driver_from_the_station_they_plug_into() -> None:
    m = PooledContextMedian()
    for i in range(10):
        m.learn_one(_x(f"dc{i}", "dc"), 22.0)  # fast charger: big sessions
        m.learn_one(_x(f"ac{i}", "ac"), 5.0)   # AC port: small ones
    assert m.predict_one(_x("new", "dc")) == 22.0
    assert m.predict_one(_x("new", "ac")) == 5.0
    assert PooledContextMedian().predict_one(_x("new", "ac")) == 0.0  # nothing learned at all


def test_pooled_median_moves_to_the_drivers_own_habit() -> None:
    m = PooledContextMedian(prior=0.3)
    for i in range(20):
        m.learn_one(_x(f"o{i}", "ac"), 5.0)
    m.learn_one(_x("u", "ac"), 12.0)
    assert m.predict_one(_x("u", "ac")) == 12.0  # one own session (weight 1) outweighs the pool (0.3)
    m2 = PooledContextMedian(prior=3.0)
    for i in range(20):
        m2.learn_one(_x(f"o{i}", "ac"), 5.0)
    m2.learn_one(_x("u", "ac"), 12.0)
    assert m2.predict_one(_x("u", "ac")) == 5.0  # a strong prior needs more own sessions
    for _ in range(5):
        m2.learn_one(_x("u", "ac"), 12.0)
    assert m2.predict_one(_x("u", "ac")) == 12.0


def test_pooled_median_matches_the_request_typed_at_plug_in() -> None:
    m = PooledContextMedian(req_key="requested_kwh", req_sigma=0.3)
    for i in range(10):
        m.learn_one(_x(f"a{i}", "ac", requested_kwh=10.0), 8.0)
        m.learn_one(_x(f"b{i}", "ac", requested_kwh=40.0), 30.0)
    assert m.predict_one(_x("new", "ac", requested_kwh=38.0)) == 30.0
    assert m.predict_one(_x("new", "ac", requested_kwh=11.0)) == 8.0


def test_pooled_median_keeps_anonymous_sessions_to_their_own_pool() -> None:
    m = PooledContextMedian()
    for i in range(10):
        m.learn_one(_x(f"u{i}", "ac"), 20.0)
    m.learn_one(_x(ANON, "ac"), 1.0)
    assert m.predict_one(_x(ANON, "ac")) == 1.0
    with pytest.raises(ValueError):
        PooledContextMedian(mismatch=2.0)
    with pytest.raises(ValueError):
        PooledContextMedian(prior=-1.0)


def test_session_forecaster_hedges_by_past_errors_and_cold_starts_from_the_station() -> None:
    f = SessionForecaster("kwh", use_arf=False)
    for i in range(12):
        f.learn_one(_x(f"o{i}", "dc"), 22.0)
        f.learn_one(_x("u", "ac"), 6.0 + (i % 2))
    w_new = f.weights(_x("new", "dc"))
    assert set(w_new) == set(f.cold)  # an unknown driver: only the candidates that know the station speak
    assert f.predict_one(_x("new", "dc")) == pytest.approx(22.0)
    w = f.weights(_x("u", "ac"))
    assert sum(w.values()) == pytest.approx(1.0) and all(v > 0 for v in w.values())
    assert 6.0 <= f.predict_one(_x("u", "ac")) <= 7.0
    lead = SessionForecaster("kwh", use_arf=False, combine="leader")
    for i in range(5):
        lead.learn_one(_x("u", "ac"), 6.0)
    assert sorted(lead.weights(_x("u", "ac")).values())[-1] == 1.0
    with pytest.raises(ValueError):
        SessionForecaster("kwh", combine="vote")


def test_gap_scaled_median_asks_for_more_energy_after_a_long_absence() -> None:
    m = GapScaledMedian(beta=1.0, min_bucket=2)
    for i in range(6):  # the population: 4 kWh after < 1 h away, 16 kWh after > 4 days away
        m.learn_one({"user": f"o{i}", "hour": 18.0, "hours_since_last": 0.5}, 4.0)
        m.learn_one({"user": f"o{i}", "hour": 18.0, "hours_since_last": 120.0}, 16.0)
    m.learn_one({"user": "u", "hour": 18.0, "hours_since_last": 0.5}, 3.0)  # u's one session: a short top-up
    assert m.predict_one({"user": "u", "hour": 18.0, "hours_since_last": 120.0}) == pytest.approx(12.0)
    assert m.predict_one({"user": "u", "hour": 18.0, "hours_since_last": 0.5}) == pytest.approx(3.0)
    assert m.predict_one({"user": "u", "hour": 18.0}) == pytest.approx(3.0)  # unknown gap: no rescaling
    assert gap_bucket({}) == -1 and gap_bucket({"hours_since_last": 0.5}) == 0


def test_shifted_duration_leans_towards_the_habitual_leaving_time() -> None:
    m = ShiftedDurationMedian(beta=0.5)
    for _ in range(5):
        m.learn_one({"user": "u", "hour": 17.0, "weekend": False}, 14.0)  # plugs in 17:00, leaves 07:00
    # plugging in 2 h later: halfway between "same duration" (14 h) and "same leaving time" (12 h)
    assert m.predict_one({"user": "u", "hour": 19.0, "weekend": False}) == pytest.approx(13.0)
    assert m.predict_one({"user": "u", "hour": 17.0, "weekend": False}) == pytest.approx(14.0)
    assert ShiftedDurationMedian().predict_one({"user": "new", "hour": 9.0}) == 0.0
