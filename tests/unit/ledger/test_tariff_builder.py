"""Meter samples -> OCPI charging periods: split exactly where the tariff can change, merge where
it cannot, conserve energy and time; then priced like any CDR."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tariff_fixtures import P, ocpi_example

from ledger.tariff import (
    InvalidSessionError,
    MeterSample,
    build_charging_periods,
    price_samples,
    price_session,
)

AMS = ZoneInfo("Europe/Amsterdam")


def at(text: str, tz: dt.tzinfo = AMS) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


def samples(start: dt.datetime, minutes: list[float], wh: list[float], charging: list[bool] | None = None,
            power_w: list[float] | None = None, current_a: list[float] | None = None) -> list[MeterSample]:
    out = []
    for i, m in enumerate(minutes):
        out.append(
            MeterSample(
                timestamp=start + dt.timedelta(minutes=m),
                energy_wh=Decimal(str(wh[i])),
                power_w=None if power_w is None else Decimal(str(power_w[i])),
                current_a=None if current_a is None else Decimal(str(current_a[i])),
                charging=True if charging is None else charging[i],
            )
        )
    return out


def test_without_tariff_one_period_per_charging_or_parked_stretch() -> None:
    s = samples(at("2024-03-05 10:00"), [0, 10, 20, 30, 40, 50], [0, 1000, 2500, 4000, 4000, 4000],
                charging=[True, True, True, False, False, False])
    built = build_charging_periods(s)
    assert len(built.periods) == 2
    first, second = built.periods
    assert first.dimensions["ENERGY"] == Decimal(4) and first.dimensions["TIME"] == Decimal("0.5")
    assert (second.dimensions["PARKING_TIME"] * 3600).quantize(Decimal("0.000001")) == 1200
    assert built.start == s[0].timestamp and built.end == s[-1].timestamp


def test_split_at_local_time_boundary_with_interpolated_energy() -> None:
    """tariff_14: 1.20/h before 17:00 local, 2.40/h after.  Samples 16:52, 16:58, 17:04 (Amsterdam):
    the 16:58-17:04 interval is cut at exactly 17:00 local with energy interpolated linearly."""
    tariff = ocpi_example("tariff_14_step_size.json")
    s = samples(at("2024-01-10 16:52"), [0, 6, 12], [0, 600, 1200])
    built = build_charging_periods(s, tariff=tariff, time_zone="Europe/Amsterdam")
    assert [p.start.astimezone(AMS).strftime("%H:%M") for p in built.periods] == ["16:52", "17:00"]
    assert [p.dimensions["ENERGY"] for p in built.periods] == [Decimal("0.8"), Decimal("0.4")]
    result = price_session(tariff, built.periods, start=built.start, end=built.end, time_zone="Europe/Amsterdam")
    # 8 min x 1.20 + 4 min x 2.40, total 12 min -> 15 min (last step 900 s): 0.16 + 7 min x 2.40 = 0.44
    assert result.total_cost == P("0.44", "0.44")


def test_split_at_midnight_in_local_zone_across_dst() -> None:
    """Night tariff 22:00-06:00 local; a session over the spring-forward night (02:00 -> 03:00)."""
    tariff = {"id": "N", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": "0.10", "step_size": 1}],
         "restrictions": {"start_time": "22:00", "end_time": "06:00"}},
        {"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]},
    ]}
    start = at("2024-03-30 21:00").astimezone(dt.UTC)
    end = at("2024-03-31 07:00").astimezone(dt.UTC)  # 9 real hours (one local hour skipped)
    hours = int((end - start).total_seconds() // 3600)
    assert hours == 9
    s = [MeterSample(start + dt.timedelta(hours=h), Decimal(h * 1000)) for h in range(hours + 1)]
    built = build_charging_periods(s, tariff=tariff, time_zone="Europe/Amsterdam")
    local_starts = [p.start.astimezone(AMS).strftime("%H:%M") for p in built.periods]
    assert local_starts == ["21:00", "22:00", "06:00"]
    energies = [p.dimensions["ENERGY"] for p in built.periods]
    assert energies == [Decimal(1), Decimal(7), Decimal(1)]  # 22:00-06:00 local is 7 real hours that night
    result = price_samples(tariff, s, time_zone="Europe/Amsterdam")
    assert result.total_energy_cost.excl_vat == Decimal("1.30")


def test_split_at_duration_thresholds() -> None:
    """Spec max_duration example tariff: free < 30 min, 0.25 < 60 min, then 0.40."""
    tariff = ocpi_example("tariffrestriction_example_max_duration.json")
    s = samples(at("2024-03-05 10:00"), [0, 25, 50, 75], [0, 5000, 10000, 15000])
    built = build_charging_periods(s, tariff=tariff)
    mins = [(p.start - built.start).total_seconds() / 60 for p in built.periods]
    assert mins == [0, 30, 60]
    result = price_session(tariff, built.periods, start=built.start, end=built.end)
    # 6 kWh free, 6 kWh x 0.25, 3 kWh x 0.40 = 2.70
    assert result.total_energy_cost == P("2.70", "3.24")


def test_split_exactly_at_kwh_threshold() -> None:
    tariff = {"id": "K", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": "0", "step_size": 1}], "restrictions": {"max_kwh": 1}},
        {"price_components": [{"type": "ENERGY", "price": "0.20", "step_size": 1}]},
    ]}
    s = samples(at("2024-03-05 10:00"), [0, 7, 14], [100, 800, 1500])  # register starts at 100 Wh
    built = build_charging_periods(s, tariff=tariff)
    assert [p.dimensions["ENERGY"] for p in built.periods] == [Decimal(1), Decimal("0.4")]
    assert built.periods[1].start == s[0].timestamp + dt.timedelta(minutes=10)
    assert price_samples(tariff, s).total_energy_cost.excl_vat == Decimal("0.08")


def test_power_levels_split_periods_spec_max_power_example() -> None:
    """Spec: 1 kWh at 6 kW, 40 kWh at 48 kW, 0.5 kWh at 4 kW -> 20.30 excl."""
    tariff = ocpi_example("tariffrestriction_example_max_power.json")
    s = samples(at("2024-03-05 10:00"), [0, 10, 60, 67.5], [0, 1000, 41000, 41500], power_w=[6000, 48000, 4000, 0])
    built = build_charging_periods(s, tariff=tariff)
    assert [p.dimensions["MAX_POWER"] for p in built.periods] == [Decimal(6), Decimal(48), Decimal(4)]
    assert price_samples(tariff, s).total_cost == P("20.30", "24.36")


def test_same_elements_are_merged_and_extremes_kept() -> None:
    tariff = ocpi_example("tariff_4_complex.json")
    s = samples(at("2015-06-29 09:30", ZoneInfo("Europe/Brussels")), [0, 30, 60, 90, 165, 207],
                [0, 3000, 6000, 9000, 16000, 16000], charging=[True, True, True, True, False, False],
                current_a=[10, 16, 12, 14, 0, 0])
    built = build_charging_periods(s, tariff=tariff, time_zone="Europe/Brussels")
    assert len(built.periods) == 2
    charging = built.periods[0].dimensions
    assert (charging["MIN_CURRENT"], charging["MAX_CURRENT"]) == (Decimal(10), Decimal(16))
    result = price_samples(tariff, s, time_zone="Europe/Brussels")
    assert result.total_cost == P("9.00", "10.30")  # the spec's Monday example from samples


def test_current_change_across_threshold_splits() -> None:
    tariff = ocpi_example("tariff_4_complex.json")
    s = samples(at("2015-06-29 09:30", ZoneInfo("Europe/Brussels")), [0, 60, 120], [0, 7000, 30000], current_a=[16, 48, 48])
    built = build_charging_periods(s, tariff=tariff, time_zone="Europe/Brussels")
    assert len(built.periods) == 2
    result = price_session(tariff, built.periods, start=built.start, end=built.end, time_zone="Europe/Brussels")
    # 1 h at 1.00 (<32 A) + 1 h at 2.00 (>=32 A weekday, last period: step 600 s, exact) + flat 2.50
    assert result.total_cost.excl_vat == Decimal("5.50")


def test_reservation_start_prepends_a_reservation_period() -> None:
    tariff = ocpi_example("tariff_15_reservation_5_euro_per_hour.json")
    start = at("2019-02-04 10:15")
    s = samples(start, [0, 30, 60], [0, 10000, 20000])
    result = price_samples(tariff, s, reservation_start=start - dt.timedelta(minutes=15))
    assert result.charging_periods[0].dimensions == {"RESERVATION_TIME": Decimal("0.25")}
    assert result.total_cost == P("6.75", "7.60")
    with pytest.raises(InvalidSessionError, match="after the first meter sample"):
        build_charging_periods(s, reservation_start=start + dt.timedelta(minutes=1))


def test_mapping_samples_accepted() -> None:
    s = [{"timestamp": at("2024-03-05 10:00"), "energy_wh": 0}, {"timestamp": at("2024-03-05 11:00"), "energy_wh": 7000}]
    built = build_charging_periods(s)
    assert built.periods[0].dimensions == {"ENERGY": Decimal(7), "TIME": Decimal(1)}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([("2024-03-05 10:00", 0)], "at least two"),
        ([("2024-03-05 10:00", 0), ("2024-03-05 10:00", 10)], "not after"),
        ([("2024-03-05 10:00", 500), ("2024-03-05 10:05", 400)], "negative energy"),
        ([("2024-03-05 10:00", -1), ("2024-03-05 10:05", 400)], "negative"),
    ],
)
def test_invalid_samples_are_refused(bad: list[tuple[str, int]], message: str) -> None:
    s = [MeterSample(at(t), Decimal(e)) for t, e in bad]
    with pytest.raises(InvalidSessionError, match=message):
        build_charging_periods(s)


def test_naive_timestamps_and_negative_power_refused() -> None:
    naive = [MeterSample(dt.datetime(2024, 3, 5, 10), 0), MeterSample(dt.datetime(2024, 3, 5, 11), 10)]
    with pytest.raises(InvalidSessionError, match="aware"):
        build_charging_periods(naive)
    neg = [MeterSample(at("2024-03-05 10:00"), 0, power_w=-5), MeterSample(at("2024-03-05 11:00"), 10)]
    with pytest.raises(InvalidSessionError, match="power_w is negative"):
        build_charging_periods(neg)
    nan = [MeterSample(at("2024-03-05 10:00"), float("nan")), MeterSample(at("2024-03-05 11:00"), 10)]
    with pytest.raises(InvalidSessionError, match="finite"):
        build_charging_periods(nan)


def test_repeated_wall_time_when_clocks_go_back_splits_twice() -> None:
    """2024-10-27 Amsterdam: 02:00-03:00 happens twice.  An element from 02:30 local starts at both
    02:30s; between them (the second 02:00-02:30) it is not active."""
    tariff = {"id": "F", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": "0.50", "step_size": 1}],
         "restrictions": {"start_time": "02:30", "end_time": "04:00"}},
        {"price_components": [{"type": "ENERGY", "price": "0.10", "step_size": 1}]},
    ]}
    start = dt.datetime(2024, 10, 27, 0, 0, tzinfo=dt.UTC)  # 02:00 CEST
    s = [MeterSample(start + dt.timedelta(minutes=m), Decimal(m * 100)) for m in (0, 120)]  # until 02:00 CET
    built = build_charging_periods(s, tariff=tariff, time_zone="Europe/Amsterdam")
    starts = [(p.start - start).total_seconds() / 60 for p in built.periods]
    assert starts == [0, 30, 60, 90]  # 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET
    result = price_session(tariff, built.periods, start=built.start, end=built.end, time_zone="Europe/Amsterdam")
    assert result.total_energy_cost.excl_vat == Decimal("3.60")  # 3 kWh per 30 min: 0.10, 0.50, 0.10, 0.50
