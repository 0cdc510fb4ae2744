"""step_size: once per session for ENERGY and once for TIME/PARKING_TIME together, with the step of
the last period in which the quantity was priced (OCPI 2.2.1 mod_cdrs "step_size" examples)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tariff_fixtures import P, charge, park, price, reserve, session


def tariff(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"id": "S", "currency": "EUR", "elements": list(elements)}


def comp(dimension: str, price: str, step: int) -> dict[str, Any]:
    return {"type": dimension, "price": Decimal(price), "step_size": step}


def test_energy_total_rounded_once_not_per_period() -> None:
    """0.20/kWh before 17:00, 0.27 after, both step 500 Wh; 4.3 + 1.1 kWh = 5.4 -> 5.5 kWh:
    4.3 x 0.20 + 1.2 x 0.27 = 1.184 (not 1.5 kWh after 17:00)."""
    t = tariff(
        {"price_components": [comp("ENERGY", "0.20", 500)], "restrictions": {"end_time": "17:00"}},
        {"price_components": [comp("ENERGY", "0.27", 500)]},
    )
    result = price(t, session("2024-03-05 16:00", "UTC", charge(60, "4.3"), charge(30, "1.1")))
    assert result.total_cost_exact.excl_vat == Decimal("1.184")
    assert result.total_cost == P("1.18", "1.18")


def test_time_total_rounded_once_with_last_price() -> None:
    """5/h before 17:00, 7/h after, step 10 min; 6 + 22 = 28 -> 30 min, so 24 min after 17:00 billed."""
    t = tariff(
        {"price_components": [comp("TIME", "5", 600)], "restrictions": {"end_time": "17:00"}},
        {"price_components": [comp("TIME", "7", 600)]},
    )
    result = price(t, session("2024-03-05 16:54", "UTC", charge(6), charge(22)))
    assert result.total_time_cost == P("3.30", "3.30")  # 0.50 + 2.80
    last = result.charging_periods[-1].components[0]
    assert last.volume * 60 == Decimal(24) and last.step_extra * 60 == Decimal(2)


def test_charging_followed_by_parking_rounds_only_parking() -> None:
    """1/h charging, 2/h parking, both step 10 min; 21 min + 16 min -> 21 + 20 min."""
    t = tariff({"price_components": [comp("TIME", "1", 600), comp("PARKING_TIME", "2", 600)]})
    result = price(t, session("2024-03-05 10:00", "UTC", charge(21), park(16)))
    assert result.total_time_cost.excl_vat == Decimal("0.35")
    assert result.total_parking_cost.excl_vat == Decimal("0.67")  # 20 min x 2/h = 0.666..
    assert result.total_cost_exact.excl_vat.quantize(Decimal("0.0001")) == Decimal("1.0167")


def test_step_5_min_charging_21_parking_7() -> None:
    t = tariff({"price_components": [comp("TIME", "6", 300), comp("PARKING_TIME", "6", 300)]})
    result = price(t, session("2024-03-05 10:00", "UTC", charge(21), park(7)))
    assert result.total_time_cost.excl_vat == Decimal("2.10")  # 21 min, not 25
    assert result.total_parking_cost.excl_vat == Decimal("1.00")  # 10 min


def test_parking_followed_by_charging_rounds_charging() -> None:
    t = tariff({"price_components": [comp("TIME", "6", 900), comp("PARKING_TIME", "6", 900)]})
    result = price(t, session("2024-03-05 10:00", "UTC", park(5), charge(20)))
    assert result.total_parking_cost.excl_vat == Decimal("0.50")
    assert result.total_time_cost.excl_vat == Decimal("3.00")  # 20 -> 30 min


def test_free_last_period_does_not_take_the_rounding() -> None:
    """Parking is free after 20:00 (no PARKING_TIME component): the last *priced* time period
    (parking before 20:00) gets the rounding -- tariff_14 case #3."""
    t = tariff(
        {"price_components": [comp("PARKING_TIME", "1", 900), comp("TIME", "2.4", 900)], "restrictions": {"end_time": "20:00"}},
        {"price_components": [comp("TIME", "2.4", 900)]},
    )
    result = price(t, session("2024-03-05 19:40", "UTC", charge(12), park(8), park(12)))
    assert result.total_parking_cost.excl_vat == Decimal("0.25")
    assert result.total_time_cost.excl_vat == Decimal("0.48")


def test_step_zero_means_no_rounding_and_step_one_rounds_to_whole_units() -> None:
    t0 = tariff({"price_components": [comp("ENERGY", "1000", 0)]})
    t1 = tariff({"price_components": [comp("ENERGY", "1000", 1)]})
    s = session("2024-03-05 10:00", "UTC", charge(60, "0.1152"))
    assert price(t0, s).total_energy_cost.excl_vat == Decimal("115.20")
    assert price(t1, s).total_energy_cost.excl_vat == Decimal("116.00")


def test_spec_energy_step_examples() -> None:
    """PriceComponent note: 0.25/kWh, 115.2 Wh: step 1 -> 116 Wh = 0.029; step 25 -> 125 Wh = 0.031;
    step 500 -> 500 Wh = 0.125 (euro, unrounded)."""
    s = session("2024-03-05 10:00", "UTC", charge(10, "0.1152"))
    for step, expected in ((1, "0.029"), (25, "0.03125"), (500, "0.125")):
        result = price(tariff({"price_components": [comp("ENERGY", "0.25", step)]}), s)
        assert result.total_cost_exact.excl_vat == Decimal(expected)


def test_reservation_time_takes_the_rounding_when_session_has_no_time_price() -> None:
    t = tariff(
        {"price_components": [comp("TIME", "5", 300)], "restrictions": {"reservation": "RESERVATION"}},
        {"price_components": [comp("ENERGY", "0.25", 1)]},
    )
    result = price(t, session("2024-03-05 10:00", "UTC", reserve(13), charge(60, 20)))
    assert result.total_reservation_cost.excl_vat == Decimal("1.25")


def test_reservation_time_not_rounded_when_charging_time_follows() -> None:
    t = tariff(
        {"price_components": [comp("TIME", "6", 600)], "restrictions": {"reservation": "RESERVATION"}},
        {"price_components": [comp("TIME", "6", 600)]},
    )
    result = price(t, session("2024-03-05 10:00", "UTC", reserve(13), charge(21)))
    assert result.total_reservation_cost.excl_vat == Decimal("1.30")  # 13 min as is
    assert result.total_time_cost.excl_vat == Decimal("3.00")  # 21 -> 30 min


def test_fractional_hour_volumes_resolve_to_microseconds() -> None:
    """7 min is 0.11666.. h; it must bill 420 s, not 421, with step 1 s."""
    t = tariff({"price_components": [comp("TIME", "3600", 1)]})  # 1 per second
    result = price(t, session("2024-03-05 10:00", "UTC", charge(7)))
    assert result.total_time_cost.excl_vat == Decimal("420.00")
