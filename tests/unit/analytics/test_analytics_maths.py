"""Admin analytics maths (edges/api/analytics.py): the CO2 method with its stated constants, utilisation,
peak hours, the summary of (station, hour) buckets and the window rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from fastapi import HTTPException

from edges.api.analytics import (Bucket, co2_avoided_kg, hour_share_of_window, peak_hours, summarise, utilisation,
                                 window)

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)


def test_co2_avoided_is_petrol_distance_emissions_minus_grid_emissions() -> None:
    # 5.5 km/kWh x 150 g/km - 250 g/kWh = 575 g per kWh
    assert co2_avoided_kg(Decimal("1")) == Decimal("0.575")
    assert co2_avoided_kg(Decimal("40")) == Decimal("23.000")
    assert co2_avoided_kg(Decimal("0")) == Decimal("0.000")
    # a grid dirtier than the petrol car it replaces avoids nothing: the method says so (negative)
    assert co2_avoided_kg(Decimal("10"), grid_g_per_kwh=Decimal("900")) == Decimal("-0.750")
    assert co2_avoided_kg(Decimal("2"), petrol_g_per_km=Decimal("100"), km_per_kwh=Decimal("6"),
                          grid_g_per_kwh=Decimal("0")) == Decimal("1.200")


def test_utilisation_is_busy_time_over_connector_time_and_bounded() -> None:
    assert utilisation(1800, 1, 3600) == 0.5
    assert utilisation(3600, 2, 3600) == 0.5
    assert utilisation(7200, 1, 3600) == 1.0        # overlapping sessions never exceed 100 %
    assert utilisation(100, 0, 3600) == round(100 / 3600, 4)  # a station without known connectors counts as one
    assert utilisation(100, 1, 0) == 0.0


def test_peak_hours_are_the_busiest_hours_of_day_ties_earlier_first() -> None:
    assert peak_hours({8: 100.0, 18: 300.0, 17: 300.0, 3: 0.0, 12: 50.0}) == [17, 18, 8]
    assert peak_hours({3: 0.0}) == []
    assert peak_hours({}) == []


def test_hour_share_counts_only_the_part_inside_the_window() -> None:
    assert hour_share_of_window(T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=5)) == 1800
    assert hour_share_of_window(T0 + timedelta(hours=1), T0, T0 + timedelta(hours=5)) == 3600


def test_summary_totals_per_station_per_hour_and_money_per_currency() -> None:
    lo, hi = T0, T0 + timedelta(hours=2)
    buckets = [
        Bucket("A", T0, sessions=2, busy_seconds=3600, energy_wh=20000, revenue={"EUR": Decimal("7.005")}),
        Bucket("A", T0 + timedelta(hours=1), sessions=1, busy_seconds=1800, energy_wh=5000,
               revenue={"EUR": Decimal("2.50"), "GBP": Decimal("1.10")}),
        Bucket("B", T0 + timedelta(hours=1), sessions=1, busy_seconds=3600, energy_wh=30000, revenue={}),
    ]
    out = summarise(buckets, {"A": 2, "B": 1}, lo, hi, station_limit=10)
    assert out["totals"]["sessions"] == 4
    assert out["totals"]["energy_kwh"] == "55.000"
    assert out["totals"]["revenue"] == {"EUR": "9.51", "GBP": "1.10"}  # 9.505 rounds half up; never mixed
    assert out["totals"]["co2_avoided_kg"] == "31.625"
    # 9000 busy s over 3 connectors x 7200 s
    assert out["totals"]["utilisation"] == round(9000 / 21600, 4)
    assert [s["station_id"] for s in out["per_station"]] == ["B", "A"]  # most energy first
    a = out["per_station"][1]
    assert a["utilisation"] == round(5400 / (2 * 7200), 4) and a["energy_kwh"] == "25.000"
    assert [h["sessions"] for h in out["per_hour"]] == [2, 2]
    assert out["per_hour"][1]["utilisation"] == round(5400 / (3 * 3600), 4)
    assert out["peak_hours_utc"] == [1, 0]
    assert len(summarise(buckets, {}, lo, hi, station_limit=1)["per_station"]) == 1


def test_window_defaults_and_refusals() -> None:
    now = T0 + timedelta(days=30)
    assert window(None, None, now) == (now - timedelta(days=7), now)
    assert window(T0, None, now) == (T0, now)
    for bad in [(T0, T0), (T0 + timedelta(days=1), T0), (T0, T0 + timedelta(days=93)),
                (datetime(2026, 1, 1), None), (datetime(1, 1, 1, tzinfo=timezone.utc), None)]:
        with pytest.raises(HTTPException) as exc:
            window(bad[0], bad[1], now)
        assert exc.value.status_code == 422
    with pytest.raises(HTTPException):
        window(None, datetime(1, 1, 2, tzinfo=timezone.utc), now)  # to - 7 days is before year 1
