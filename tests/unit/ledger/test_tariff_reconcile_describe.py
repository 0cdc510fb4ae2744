"""Re-pricing a partner CDR (differences per total, threshold) and the tariff in human terms."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from tariff_fixtures import TANDEMDRIVE, load_json, ocpi_example

from ledger.tariff import (
    InvalidSessionError,
    TariffNotApplicableError,
    describe_tariff,
    format_money,
    reprice_cdr,
)


def vector(directory: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_json(TANDEMDRIVE / directory / "tariff.json"), load_json(TANDEMDRIVE / directory / name)


def test_matching_cdr_has_no_discrepancy_and_reports_every_total() -> None:
    tariff, cdr = vector("simple_3hour_5parking", "cdr1.json")
    result = reprice_cdr(cdr, tariff)
    assert not result.has_discrepancy
    assert {d.name for d in result.differences} == {
        "total_cost", "total_fixed_cost", "total_energy_cost", "total_time_cost", "total_parking_cost",
        "total_reservation_cost", "total_energy", "total_time", "total_parking_time",
    }
    fixed = result.difference("total_fixed_cost")
    assert not fixed.reported and fixed.delta_excl_vat == 0


def test_overcharged_cdr_is_flagged_with_the_difference() -> None:
    tariff, cdr = vector("simple_3hour_5parking", "cdr1.json")
    cdr = copy.deepcopy(cdr)
    cdr["total_cost"] = {"excl_vat": Decimal("12.25"), "incl_vat": Decimal("13.75")}
    cdr["total_parking_cost"] = {"excl_vat": Decimal("4.75"), "incl_vat": Decimal("5.70")}
    result = reprice_cdr(cdr, tariff)
    assert [d.name for d in result.discrepancies] == ["total_cost", "total_parking_cost"]
    d = result.difference("total_cost")
    assert (d.delta_excl_vat, d.delta_incl_vat) == (Decimal("-1.00"), Decimal("-1.00"))
    assert (d.theirs_excl_vat, d.ours_excl_vat) == (Decimal("12.25"), Decimal("11.25"))


def test_threshold_decides() -> None:
    tariff, cdr = vector("simple_025kwh", "cdr1.json")
    cdr = copy.deepcopy(cdr)
    cdr["total_cost"] = {"excl_vat": Decimal("5.04"), "incl_vat": Decimal("5.50")}
    assert reprice_cdr(cdr, tariff, threshold="0.05").has_discrepancy is False
    assert reprice_cdr(cdr, tariff, threshold="0.01").has_discrepancy is True


def test_missing_incl_vat_compared_on_excl_only() -> None:
    tariff, cdr = vector("simple_025kwh", "cdr1.json")
    cdr = copy.deepcopy(cdr)
    cdr["total_cost"] = {"excl_vat": 5}
    d = reprice_cdr(cdr, tariff).difference("total_cost")
    assert d.delta_incl_vat is None and not d.exceeds


def test_embedded_tariff_used_and_currency_checked() -> None:
    cdr = copy.deepcopy(ocpi_example("cdr_example.json"))
    assert reprice_cdr(cdr).ours.tariff_id == "12"
    cdr["currency"] = "USD"
    with pytest.raises(TariffNotApplicableError, match="USD"):
        reprice_cdr(cdr)


def test_several_embedded_tariffs_picked_by_period_tariff_id() -> None:
    cdr = copy.deepcopy(ocpi_example("cdr_example.json"))
    other = copy.deepcopy(cdr["tariffs"][0]) | {"id": "99"}
    other["elements"][0]["price_components"][0]["price"] = 100
    cdr["tariffs"] = [other, cdr["tariffs"][0]]
    assert reprice_cdr(cdr).ours.total_cost.excl_vat == Decimal("4.00")
    for p in cdr["charging_periods"]:
        p.pop("tariff_id")
    with pytest.raises(TariffNotApplicableError, match="cannot tell"):
        reprice_cdr(cdr)


def test_cdr_without_tariff_refused() -> None:
    cdr = copy.deepcopy(ocpi_example("cdr_example.json"))
    cdr["tariffs"] = []
    with pytest.raises(TariffNotApplicableError, match="no tariff"):
        reprice_cdr(cdr)
    with pytest.raises(InvalidSessionError):
        reprice_cdr(["not", "a", "cdr"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("example", "include_vat", "expected"),
    [
        ("tariff_8_simple_025kwh.json", True, "€0.275/kWh (incl. VAT)"),
        ("tariff_8_simple_025kwh.json", False, "€0.25/kWh (excl. VAT)"),
        ("tariff_12_025kwh_min_price.json", True, "€0.275/kWh; minimum €0.55 per session (incl. VAT)"),
        ("tariff_10_025kwh_parking_start.json", False,
         "€0.50 per session, €0.25/kWh, parking €2.00/h (billed per 15 min) (excl. VAT)"),
        ("tariff_5_free_of_charge.json", True, "Free of charge"),
        ("tariff_17_reservation_with_expire_fee.json", False,
         "€4.00 reservation fee if the reservation expires unused; reservation €2.00/h (billed per 10 min); "
         "€0.50 per session, €0.25/kWh (excl. VAT)"),
        ("tariffrestriction_example_max_duration.json", False,
         "€0.00/kWh for the first 30 min; €0.25/kWh for the first 1 h; €0.40/kWh (excl. VAT)"),
    ],
)
def test_describe_examples(example: str, include_vat: bool, expected: str) -> None:
    assert describe_tariff(ocpi_example(example), include_vat=include_vat) == expected


def test_describe_restrictions_in_words() -> None:
    tariff = {"id": "W", "currency": "EUR", "elements": [
        {"price_components": [{"type": "TIME", "price": 2, "step_size": 60}], "restrictions": {"min_duration": 3600}},
        {"price_components": [{"type": "ENERGY", "price": "0.25", "step_size": 1}]},
        {"price_components": [{"type": "PARKING_TIME", "price": 5, "step_size": 60}],
         "restrictions": {"start_time": "22:00", "end_time": "06:00", "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "SUNDAY"],
                          "min_kwh": 20, "min_power": 50, "start_date": "2025-01-01"}},
    ]}
    text = describe_tariff(tariff, include_vat=False)
    assert text == (
        "€2.00/h (billed per 1 min) after 1 h; €0.25/kWh; parking €5.00/h (billed per 1 min) after 20 kWh "
        "22:00–06:00 Mon–Wed, Sun from 2025-01-01 at 50 kW or more (excl. VAT)"
    )


def test_format_money() -> None:
    assert format_money(Decimal("0.5"), "EUR") == "€0.50"
    assert format_money(Decimal("0.275"), "EUR") == "€0.275"
    assert format_money(Decimal("35"), "JPY") == "¥35"
    assert format_money(Decimal("1.5"), "CHF") == "CHF 1.50"
