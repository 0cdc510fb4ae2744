"""`RankQuantile`: one curve shared by all drivers for where in their own range of energies a session falls
(learned on ranks, so drivers of very different sizes share it), read back through each driver's own history."""

from __future__ import annotations

import pytest

from streams.forecasting.session_models import RankQuantile, SessionForecaster


def _x(user: str, gap: float | None, hour: float = 18.0) -> dict:
    x = {"user": user, "station": "s", "hour": hour, "weekend": False}
    if gap is not None:
        x["hours_since_last"] = gap
    return x


def test_rank_and_quantile_are_the_drivers_own_empirical_distribution() -> None:
    s = [2.0, 4.0, 4.0, 10.0]
    assert RankQuantile.rank(s, 1.0) == 0.0 and RankQuantile.rank(s, 11.0) == 1.0
    assert RankQuantile.rank(s, 4.0) == pytest.approx(0.5)  # ties count half: (1 + 3) / 2 / 4
    assert RankQuantile.quantile(s, 0.0) == 2.0 and RankQuantile.quantile(s, 1.0) == 10.0
    assert RankQuantile.quantile(s, 5.0) == 10.0 and RankQuantile.quantile(s, -1.0) == 2.0  # u is clamped
    assert RankQuantile.quantile(s, 5 / 6) == pytest.approx(7.0)  # halfway between 4 and 10


def test_a_curve_learned_on_small_and_big_drivers_forecasts_a_third_drivers_modes() -> None:
    m = RankQuantile(refit_every=10, min_rows=30)
    for i in range(400):  # every driver: a top-up after a night away, a full charge after three days away
        long_away = i % 3 == 0
        for user, scale in (("small", 4.0), ("big", 40.0)):
            m.learn_one(_x(user, 72.0 if long_away else 12.0), scale * (3.0 if long_away else 1.0))
    for i in range(12):  # a third driver, of another size, with the same habit
        long_away = i % 3 == 0
        m.learn_one(_x("new", 72.0 if long_away else 12.0), 10.0 * (3.0 if long_away else 1.0))
    assert m.coef is not None
    assert m.predict_one(_x("new", 72.0)) == pytest.approx(30.0, abs=3.0)  # a mode, not the 10-30 median mix
    assert m.predict_one(_x("new", 12.0)) == pytest.approx(10.0, abs=2.0)
    assert m.predict_one(_x("big", 72.0)) == pytest.approx(120.0, abs=12.0)


def test_short_histories_and_new_drivers_fall_back_to_medians_and_settings_are_checked() -> None:
    m = RankQuantile(min_own=3)
    assert m.predict_one(_x("a", 5.0)) == 0.0  # nothing learned
    m.learn_one(_x("a", None), 4.0)
    m.learn_one(_x("a", 5.0), 8.0)
    assert m.predict_one(_x("a", 5.0)) == pytest.approx(6.0)  # < min_own labels: the driver's median
    assert m.predict_one(_x("b", 5.0)) == pytest.approx(6.0)  # a new driver: the median of every label
    assert not m.rows  # a label is ranked only among min_own or more earlier labels of the driver
    with pytest.raises(ValueError):
        RankQuantile(min_own=0)
    with pytest.raises(ValueError):
        RankQuantile(window=10, min_rows=50)


def test_energy_forecaster_has_the_rank_quantile_candidate_and_duration_does_not() -> None:
    assert "rank quantile" in SessionForecaster("kwh", use_arf=False).candidates
    assert "rank quantile" not in SessionForecaster("kwh", use_arf=False, rank_quantile=False).candidates
    assert "rank quantile" not in SessionForecaster("duration_h", use_arf=False).candidates
