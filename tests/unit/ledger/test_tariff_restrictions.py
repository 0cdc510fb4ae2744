"""Restriction semantics, one rule per test: bounds (inclusive minimums, exclusive maximums),
local time in the location's zone (midnight wrap, "00:00" end, DST), dates, weekdays, energy,
duration, current and power fallbacks, reservations and first-match order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tariff_fixtures import P, charge, energy_only, park, price, reserve, session

from ledger.tariff import parse_tariff


def tariff(*elements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "T", "currency": "EUR", "elements": list(elements), **extra}


def el(dimension: str, price: str, step: int = 1, vat: str | None = None, **restrictions: Any) -> dict[str, Any]:
    component: dict[str, Any] = {"type": dimension, "price": Decimal(price), "step_size": step}
    if vat is not None:
        component["vat"] = Decimal(vat)
    out: dict[str, Any] = {"price_components": [component]}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def energy_price_at(t: dict[str, Any], local_start: str, tz: str = "UTC", minutes: int = 10, **dims: Any) -> Decimal:
    """Price of 1 kWh charged in one period starting at ``local_start``."""
    result = price(t, session(local_start, tz, charge(minutes, 1, **dims)))
    return result.total_energy_cost.excl_vat


TIME_OF_DAY = tariff(
    el("ENERGY", "0.10", start_time="22:00", end_time="06:00"),  # night, wraps midnight
    el("ENERGY", "0.30", start_time="17:00", end_time="00:00"),  # evening to end of day
    el("ENERGY", "0.20"),
)


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ("2024-03-05 21:59", "0.30"),
        ("2024-03-05 22:00", "0.10"),  # start inclusive
        ("2024-03-05 23:59", "0.10"),
        ("2024-03-06 00:00", "0.10"),  # after midnight still in the wrapped window
        ("2024-03-06 05:59", "0.10"),
        ("2024-03-06 06:00", "0.20"),  # end exclusive
        ("2024-03-06 16:59", "0.20"),
        ("2024-03-06 17:00", "0.30"),
    ],
)
def test_time_of_day_window_wraps_midnight_and_00_00_means_end_of_day(clock: str, expected: str) -> None:
    assert energy_price_at(TIME_OF_DAY, clock) == Decimal(expected)


def test_start_equal_end_is_the_whole_day() -> None:
    t = tariff(el("ENERGY", "0.10", start_time="08:00", end_time="08:00"), el("ENERGY", "0.20"))
    assert energy_price_at(t, "2024-03-05 03:00") == Decimal("0.10")


def test_only_start_time_or_only_end_time() -> None:
    t = tariff(el("ENERGY", "0.10", start_time="20:00"), el("ENERGY", "0.15", end_time="07:00"), el("ENERGY", "0.20"))
    assert energy_price_at(t, "2024-03-05 21:00") == Decimal("0.10")
    assert energy_price_at(t, "2024-03-05 06:59") == Decimal("0.15")
    assert energy_price_at(t, "2024-03-05 07:00") == Decimal("0.20")


def test_restrictions_use_the_location_time_zone() -> None:
    """17:30 in Amsterdam is 16:30 UTC (winter): priced as evening in Amsterdam, day in UTC."""
    assert energy_price_at(TIME_OF_DAY, "2024-01-10 17:30", "Europe/Amsterdam") == Decimal("0.30")
    assert energy_price_at(TIME_OF_DAY, "2024-01-10 16:30", "UTC") == Decimal("0.20")
    # same UTC instant, different zone
    s = session("2024-01-10 16:30", "UTC", charge(10, 1))
    from ledger.tariff import price_session

    in_ams = price_session(TIME_OF_DAY, s.periods, start=s.start, end=s.end, time_zone="Europe/Amsterdam")
    assert in_ams.total_energy_cost.excl_vat == Decimal("0.30")


def test_daylight_saving_day_uses_local_wall_clock() -> None:
    """On 2024-03-31 Amsterdam jumps from 02:00 to 03:00; 22:00 local is 20:00 UTC after the jump."""
    assert energy_price_at(TIME_OF_DAY, "2024-03-31 22:00", "Europe/Amsterdam") == Decimal("0.10")
    assert energy_price_at(TIME_OF_DAY, "2024-03-31 21:59", "Europe/Amsterdam") == Decimal("0.30")
    assert energy_price_at(TIME_OF_DAY, "2024-03-31 03:30", "Europe/Amsterdam") == Decimal("0.10")


def test_day_of_week_is_the_local_day() -> None:
    t = tariff(el("ENERGY", "0.50", day_of_week=["MONDAY"]), el("ENERGY", "0.20"))
    # Sunday 23:30 UTC is Monday 01:30 in Amsterdam (summer, UTC+2)
    s = session("2024-06-09 23:30", "UTC", charge(10, 1))
    from ledger.tariff import price_session

    assert price_session(t, s.periods, start=s.start, end=s.end, time_zone="UTC").total_energy_cost.excl_vat == Decimal("0.20")
    assert (
        price_session(t, s.periods, start=s.start, end=s.end, time_zone="Europe/Amsterdam").total_energy_cost.excl_vat
        == Decimal("0.50")
    )


def test_wrapping_window_with_day_of_week_checks_each_local_day() -> None:
    """'22:00-06:00 on Friday' is literal: Saturday 02:00 is not Friday, so it does not match."""
    t = tariff(el("ENERGY", "0.10", start_time="22:00", end_time="06:00", day_of_week=["FRIDAY"]), el("ENERGY", "0.20"))
    assert energy_price_at(t, "2024-03-08 23:00") == Decimal("0.10")  # Friday
    assert energy_price_at(t, "2024-03-09 02:00") == Decimal("0.20")  # Saturday
    assert energy_price_at(t, "2024-03-08 02:00") == Decimal("0.10")  # Friday early morning


def test_start_date_inclusive_end_date_exclusive() -> None:
    t = tariff(el("ENERGY", "0.10", start_date="2024-12-24", end_date="2024-12-27"), el("ENERGY", "0.20"))
    assert energy_price_at(t, "2024-12-23 23:59") == Decimal("0.20")
    assert energy_price_at(t, "2024-12-24 00:00") == Decimal("0.10")
    assert energy_price_at(t, "2024-12-26 23:59") == Decimal("0.10")
    assert energy_price_at(t, "2024-12-27 00:00") == Decimal("0.20")


def test_kwh_bounds_use_energy_before_the_period() -> None:
    t = tariff(el("ENERGY", "0.00", max_kwh="1"), el("ENERGY", "0.30", min_kwh="1", max_kwh="20"), el("ENERGY", "0.50"))
    s = session("2024-03-05 10:00", "UTC", charge(5, 1), charge(30, 19), charge(30, 10))
    result = price(t, s)
    assert [c.element_index for p in result.charging_periods for c in p.components] == [0, 1, 2]
    assert result.total_energy_cost.excl_vat == Decimal("10.70")  # 0 + 19 x 0.30 + 10 x 0.50


def test_duration_bounds_min_inclusive_max_exclusive() -> None:
    t = tariff(el("TIME", "0", max_duration=1800), el("TIME", "6", min_duration=1800))
    s = session("2024-03-05 10:00", "UTC", charge(30), charge(10))
    result = price(t, s)
    assert [c.element_index for p in result.charging_periods for c in p.components] == [0, 1]
    assert result.total_time_cost.excl_vat == Decimal("1.00")


def test_duration_counts_from_session_start_not_reservation() -> None:
    t = tariff(
        el("TIME", "1", reservation="RESERVATION"),
        el("ENERGY", "0.10", max_duration=600),
        el("ENERGY", "0.40"),
    )
    s = session("2024-03-05 10:00", "UTC", reserve(30), charge(10, 1), charge(10, 1))
    result = price(t, s)
    assert result.total_energy_cost.excl_vat == Decimal("0.50")  # 0.10 + 0.40


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ({"MAX_CURRENT": 16}, "1.00"),  # below max_current 32
        ({"MAX_CURRENT": 32}, "2.00"),  # max exclusive -> min_current element
        ({"MIN_CURRENT": 32, "MAX_CURRENT": 40}, "2.00"),
        ({"MIN_CURRENT": 31, "MAX_CURRENT": 33}, "3.00"),  # straddles: neither bound holds for the period
        ({"CURRENT": 20}, "1.00"),  # average used when min/max absent
        ({"CURRENT": 40}, "2.00"),
        ({"MIN_CURRENT": 34}, "2.00"),  # only a minimum reported: used for both bounds
        ({}, "3.00"),  # no current reported: current restrictions never match
    ],
)
def test_current_bounds_and_fallbacks(dims: dict[str, int], expected: str) -> None:
    t = tariff(el("TIME", "1", max_current=32), el("TIME", "2", min_current=32), el("TIME", "3"))
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, **dims)))
    assert result.total_time_cost.excl_vat == Decimal(expected)


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ({"MAX_POWER": "10.9"}, "0.10"),
        ({"MAX_POWER": 11}, "0.20"),  # max exclusive
        ({"MIN_POWER": 22, "MAX_POWER": 50}, "0.30"),  # min inclusive
        ({"POWER": 22}, "0.30"),
        ({"MIN_POWER": 12, "MAX_POWER": 21}, "0.20"),
    ],
)
def test_power_bounds_and_fallbacks(dims: dict[str, Any], expected: str) -> None:
    t = tariff(el("ENERGY", "0.10", max_power=11), el("ENERGY", "0.30", min_power=22), el("ENERGY", "0.20"))
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 1, **dims)))
    assert result.total_energy_cost.excl_vat == Decimal(expected)


def test_all_restrictions_of_an_element_must_hold() -> None:
    t = tariff(el("ENERGY", "0.10", start_time="08:00", end_time="18:00", day_of_week=["SATURDAY"]), el("ENERGY", "0.20"))
    assert energy_price_at(t, "2024-03-09 09:00") == Decimal("0.10")  # Saturday daytime
    assert energy_price_at(t, "2024-03-08 09:00") == Decimal("0.20")  # Friday daytime
    assert energy_price_at(t, "2024-03-09 19:00") == Decimal("0.20")  # Saturday evening


def test_first_matching_element_per_dimension_and_dimensions_independent() -> None:
    """Element 0 has only TIME; ENERGY comes from the first element that has ENERGY and matches."""
    t = tariff(
        el("TIME", "1.00"),
        {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}, {"type": "TIME", "price": 9, "step_size": 1}]},
        el("ENERGY", "0.20"),
    )
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 10)))
    assert result.total_time_cost.excl_vat == Decimal("1.00")
    assert result.total_energy_cost.excl_vat == Decimal("4.00")


def test_no_matching_element_means_no_cost_for_that_dimension() -> None:
    t = tariff(el("ENERGY", "0.30", start_time="08:00", end_time="18:00"))
    assert energy_price_at(t, "2024-03-05 20:00") == Decimal("0")


def test_period_priced_whole_by_element_active_at_its_start() -> None:
    """OCPI: the CPO splits periods where prices change; an unsplit period is priced by its start."""
    t = tariff(el("ENERGY", "0.10", end_time="17:00"), el("ENERGY", "0.30"))
    assert price(t, session("2024-03-05 16:30", "UTC", charge(60, 10))).total_energy_cost.excl_vat == Decimal("1.00")
    split = price(t, session("2024-03-05 16:30", "UTC", charge(30, 5), charge(30, 5)))
    assert split.total_energy_cost.excl_vat == Decimal("2.00")


def test_energy_only_period_counts_its_length_as_charging_time() -> None:
    t = tariff(el("TIME", "2.00"))
    s = session("2024-03-05 10:00", "UTC", energy_only(90, 10), park(30))
    result = price(t, s)
    assert result.total_time_cost.excl_vat == Decimal("3.00")
    assert result.total_parking_time == Decimal("0.5")
    assert result.total_time == Decimal("2")


def test_flat_fee_charged_once_from_the_first_period() -> None:
    """A FLAT is a start/transaction fee: the one active when the session starts, once."""
    t = tariff(el("FLAT", "1.00", start_time="08:00", end_time="18:00"), el("FLAT", "0.50"), el("TIME", "0"))
    day = price(t, session("2024-03-05 17:30", "UTC", charge(30), charge(60)))
    assert day.total_fixed_cost.excl_vat == Decimal("1.00")
    night = price(t, session("2024-03-05 18:30", "UTC", charge(30)))
    assert night.total_fixed_cost.excl_vat == Decimal("0.50")


def test_parking_flat_fee_counts_as_parking_cost() -> None:
    t = tariff(
        {"price_components": [{"type": "FLAT", "price": 2, "step_size": 0}, {"type": "PARKING_TIME", "price": 1, "step_size": 1}]},
        el("ENERGY", "0.25"),
    )
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 10), park(60)))
    assert result.total_parking_cost == P("3.00", "3.00")
    assert result.total_fixed_cost == P("0.00", "0.00")
    assert result.total_cost == P("5.50", "5.50")


def test_reservation_elements_only_price_reservation_periods() -> None:
    t = tariff(
        {"price_components": [{"type": "FLAT", "price": 1, "step_size": 0}, {"type": "TIME", "price": 6, "step_size": 60}],
         "restrictions": {"reservation": "RESERVATION"}},
        el("TIME", "3"),
    )
    with_session = price(t, session("2024-03-05 10:00", "UTC", reserve(10), charge(20)))
    assert with_session.total_reservation_cost == P("2.00", "2.00")  # 1 + 10 min x 6/h
    assert with_session.total_time_cost == P("1.00", "1.00")  # 20 min x 3/h
    assert with_session.total_fixed_cost == P("0.00", "0.00")
    assert not with_session.reservation_expired


def test_expired_reservation_prefers_expires_element_even_if_listed_later() -> None:
    t = tariff(
        el("TIME", "3", reservation="RESERVATION"),
        el("TIME", "6", reservation="RESERVATION_EXPIRES"),
        el("ENERGY", "0.25"),
    )
    expired = price(t, session("2024-03-05 10:00", "UTC", reserve(60)))
    assert expired.reservation_expired
    assert expired.total_reservation_cost == P("6.00", "6.00")
    used = price(t, session("2024-03-05 10:00", "UTC", reserve(60), charge(60, 10)))
    assert used.total_reservation_cost == P("3.00", "3.00")


def test_reservation_expired_can_be_stated_explicitly() -> None:
    t = tariff(el("FLAT", "4", reservation="RESERVATION_EXPIRES"), el("TIME", "2", reservation="RESERVATION"), el("ENERGY", "0.25"))
    s = session("2024-03-05 10:00", "UTC", reserve(30))
    assert price(t, s, reservation_expired=False).total_reservation_cost == P("1.00", "1.00")
    assert price(t, s).total_reservation_cost == P("5.00", "5.00")


def test_vat_per_component_and_missing_vat() -> None:
    t = tariff(
        {"price_components": [
            {"type": "FLAT", "price": 1, "vat": 21, "step_size": 0},
            {"type": "ENERGY", "price": "0.30", "vat": 9, "step_size": 1},
            {"type": "TIME", "price": 1, "step_size": 1},
        ]}
    )
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 10)))
    assert result.total_fixed_cost == P("1.00", "1.21")
    assert result.total_energy_cost == P("3.00", "3.27")
    assert result.total_time_cost == P("1.00", "1.00")
    assert result.total_cost == P("5.00", "5.48")


def test_min_and_max_price_bound_excl_and_incl_independently() -> None:
    """min_price excl 1.00 / incl 1.30 with 10 % VAT: a 1.10 excl session (1.21 incl) is raised on
    the incl side only."""
    t = parse_tariff(tariff(el("ENERGY", "0.11", vat="10"), min_price={"excl_vat": 1, "incl_vat": "1.30"}))
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 10)))
    assert result.total_cost == P("1.10", "1.30")


def test_min_price_without_incl_bounds_excl_only() -> None:
    t = tariff(el("ENERGY", "0.10", vat="20"), min_price={"excl_vat": 1})
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 5)))
    assert result.total_cost == P("1.00", "0.60")


def test_bound_with_more_digits_than_currency_is_never_crossed() -> None:
    t = tariff(el("ENERGY", "1"), max_price={"excl_vat": "9.995", "incl_vat": "9.995"})
    result = price(t, session("2024-03-05 10:00", "UTC", charge(60, 50)))
    assert result.total_cost == P("9.99", "9.99")


def test_currency_minor_units_jpy_and_kwd() -> None:
    jpy = tariff(el("ENERGY", "35.5", vat="10"))
    jpy["currency"] = "JPY"
    result = price(jpy, session("2024-03-05 10:00", "Asia/Tokyo", charge(60, "10.1")))
    assert result.total_cost == P("359", "394")  # 358.55 -> 359 ; 394.405 -> 394
    kwd = tariff(el("ENERGY", "0.0125"))
    kwd["currency"] = "KWD"
    assert price(kwd, session("2024-03-05 10:00", "UTC", charge(60, "10.1"))).total_cost == P("0.126", "0.126")
