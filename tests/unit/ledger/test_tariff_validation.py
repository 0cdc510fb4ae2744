"""Bad tariffs and bad sessions get a clear error naming the problem; nothing is priced from them."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from tariff_fixtures import charge, ocpi_example, price, session

from ledger.tariff import (
    ChargingPeriod,
    InvalidSessionError,
    InvalidTariffError,
    TariffEngineError,
    TariffNotApplicableError,
    UnknownCurrencyError,
    minor_units,
    parse_charging_periods,
    parse_tariff,
    price_session,
    round_money,
)
from ledger.tariff.money import to_decimal

BASE = {"id": "V", "currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}]}


def with_(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    target: Any = raw
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (with_("currency", "EUX"), UnknownCurrencyError, "EUX"),
        (with_("currency", None), UnknownCurrencyError, "None"),
        (with_("id", ""), InvalidTariffError, "tariff id"),
        (with_("id", "x" * 37), InvalidTariffError, "tariff id"),
        (with_("elements", []), InvalidTariffError, "elements must be a non-empty list"),
        (with_("elements.0.price_components", []), InvalidTariffError, "price_components"),
        (with_("elements.0.price_components.0.type", "POWER"), InvalidTariffError, "unknown tariff dimension"),
        (with_("elements.0.price_components.0.price", -0.1), InvalidTariffError, "price must not be negative"),
        (with_("elements.0.price_components.0.price", "abc"), InvalidTariffError, "not a number"),
        (with_("elements.0.price_components.0.price", float("nan")), InvalidTariffError, "finite"),
        (with_("elements.0.price_components.0.price", True), InvalidTariffError, "must be a number"),
        (with_("elements.0.price_components.0.price", ...), InvalidTariffError, "price is required"),
        (with_("elements.0.price_components.0.vat", 120), InvalidTariffError, "percentage"),
        (with_("elements.0.price_components.0.vat", -1), InvalidTariffError, "vat must not be negative"),
        (with_("elements.0.price_components.0.step_size", -5), InvalidTariffError, "step_size must not be negative"),
        (with_("elements.0.price_components.0.step_size", 1.5), InvalidTariffError, "integer"),
        (with_("elements.0.restrictions", {"start_time": "25:00"}), InvalidTariffError, "HH:MM"),
        (with_("elements.0.restrictions", {"start_time": "9:00"}), InvalidTariffError, "HH:MM"),
        (with_("elements.0.restrictions", {"start_date": "2024-02-30"}), InvalidTariffError, "calendar date"),
        (with_("elements.0.restrictions", {"start_date": "2024-03-01", "end_date": "2024-03-01"}), InvalidTariffError, "before end_date"),
        (with_("elements.0.restrictions", {"min_kwh": 20, "max_kwh": 10}), InvalidTariffError, "never apply"),
        (with_("elements.0.restrictions", {"min_current": 32, "max_current": 32}), InvalidTariffError, "never apply"),
        (with_("elements.0.restrictions", {"min_duration": 600, "max_duration": 60}), InvalidTariffError, "never apply"),
        (with_("elements.0.restrictions", {"min_power": -1}), InvalidTariffError, "negative"),
        (with_("elements.0.restrictions", {"day_of_week": ["MON"]}), InvalidTariffError, "unknown day"),
        (with_("elements.0.restrictions", {"day_of_week": "MONDAY"}), InvalidTariffError, "list"),
        (with_("elements.0.restrictions", {"reservation": "MAYBE"}), InvalidTariffError, "reservation"),
        (with_("elements.0.restrictions", {"reservation": "RESERVATION"}), InvalidTariffError, "only have FLAT and TIME"),
        (with_("elements.0.restrictions", {"max_kwhs": 1}), InvalidTariffError, "unknown restriction"),
        (with_("min_price", {"excl_vat": 5, "incl_vat": 6}) | {"max_price": {"excl_vat": 4, "incl_vat": 5}}, InvalidTariffError, "min_price"),
        (with_("min_price", {"incl_vat": 6}), InvalidTariffError, "excl_vat is required"),
        (with_("start_date_time", "yesterday"), InvalidTariffError, "RFC 3339"),
        (with_("start_date_time", "2024-02-01T00:00:00Z") | {"end_date_time": "2024-01-01T00:00:00Z"}, InvalidTariffError, "before end_date_time"),
    ],
)
def test_invalid_tariffs_refused(raw: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_tariff(raw)


def test_errors_are_value_errors_and_one_family() -> None:
    assert issubclass(TariffEngineError, ValueError)
    for cls in (InvalidTariffError, UnknownCurrencyError, InvalidSessionError, TariffNotApplicableError):
        assert issubclass(cls, TariffEngineError)


def test_error_names_the_field() -> None:
    raw = copy.deepcopy(ocpi_example("tariff_4_complex.json"))
    raw["elements"][2]["price_components"][0]["step_size"] = -1
    with pytest.raises(InvalidTariffError, match=r"elements\[2\]\.price_components\[0\]\.step_size"):
        parse_tariff(raw)


def test_parse_is_idempotent_and_tariff_immutable() -> None:
    t = parse_tariff(BASE)
    assert parse_tariff(t) is t
    with pytest.raises(AttributeError):
        t.currency = "USD"  # type: ignore[misc]


def _period(start: str, **dims: Any) -> dict[str, Any]:
    return {"start_date_time": start, "dimensions": [{"type": k, "volume": v} for k, v in dims.items()]}


@pytest.mark.parametrize(
    ("periods", "kwargs", "message"),
    [
        ([], {}, "at least one"),
        ([_period("2024-01-01T10:00:00Z", ENERGY=-1)], {}, "negative ENERGY"),
        ([_period("2024-01-01T10:00:00Z", TIME=-0.5)], {}, "negative TIME"),
        ([_period("2024-01-01T10:00:00Z", VOLTAGE=230)], {}, "unknown CdrDimensionType"),
        ([{"start_date_time": "2024-01-01T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 1}, {"type": "ENERGY", "volume": 2}]}], {}, "twice"),
        ([_period("2024-01-01T11:00:00Z", ENERGY=1), _period("2024-01-01T10:00:00Z", ENERGY=1)], {}, "starts before"),
        ([_period("2024-01-01T10:00:00Z", ENERGY=1)], {"end": "2024-01-01T09:00:00Z"}, "before its last charging period"),
        ([_period("2024-01-01T10:00:00Z", ENERGY=1)], {"start": "2024-01-01T10:30:00Z"}, "before the session start"),
        ([_period("not a date", ENERGY=1)], {}, "RFC 3339"),
        ([_period("2024-01-01T10:00:00Z", ENERGY="x")], {}, "not a number"),
        ([_period("2024-01-01T10:00:00Z", ENERGY=1)], {"time_zone": "Mars/Olympus"}, "unknown time zone"),
        ([_period("2024-01-01T10:00:00Z", ENERGY=1), _period("2024-01-01T11:00:00Z", RESERVATION_TIME=1)], {}, "reservation period after"),
        ([_period("2024-01-01T10:00:00Z", RESERVATION_TIME=1, ENERGY=2)], {}, "reports energy"),
        (["nope"], {}, "must be an object"),
    ],
)
def test_invalid_sessions_refused(periods: list[Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSessionError, match=message):
        price_session(BASE, periods, **kwargs)


def test_naive_datetimes_refused_in_typed_periods() -> None:
    naive = ChargingPeriod(dt.datetime(2024, 1, 1, 10), {"ENERGY": Decimal(1)})
    with pytest.raises(InvalidSessionError, match="no time zone"):
        price_session(BASE, [naive])


def test_period_of_another_tariff_refused() -> None:
    periods = [_period("2024-01-01T10:00:00Z", ENERGY=1) | {"tariff_id": "OTHER"}]
    with pytest.raises(TariffNotApplicableError, match="OTHER"):
        price_session(BASE, periods)


def test_tariff_not_yet_valid_refused() -> None:
    raw = with_("start_date_time", "2024-06-01T00:00:00Z")
    with pytest.raises(TariffNotApplicableError, match="valid from"):
        price(raw, session("2024-05-31 23:00", "UTC", charge(60, 1)))
    assert price(raw, session("2024-06-01 00:00", "UTC", charge(60, 1))).total_cost.excl_vat == Decimal("0.25")


def test_reservation_alias_and_dimension_mapping_accepted() -> None:
    (p,) = parse_charging_periods([{"start_date_time": "2024-01-01T10:00:00Z", "dimensions": [{"type": "RESERVATION", "volume": 0.5}]}])
    assert p.dimensions == {"RESERVATION_TIME": Decimal("0.5")}
    (q,) = parse_charging_periods([{"start_date_time": "2024-01-01T10:00:00", "dimensions": {"ENERGY": "1.5"}}])
    assert q.start.tzinfo is dt.UTC and q.dimensions["ENERGY"] == Decimal("1.5")


def test_money_helpers() -> None:
    assert to_decimal(0.1) == Decimal("0.1")  # shortest repr, not the binary expansion
    assert to_decimal(3) == Decimal(3)
    with pytest.raises(TypeError):
        to_decimal(None)
    with pytest.raises(ValueError):
        to_decimal("inf")
    assert minor_units("JPY") == 0 and minor_units("KWD") == 3 and minor_units("EUR") == 2
    with pytest.raises(UnknownCurrencyError):
        minor_units("XYZ")
    assert round_money(Decimal("5.125"), Decimal("0.01")) == Decimal("5.13")  # half-up
    assert round_money(Decimal("5.135"), Decimal("0.01")) == Decimal("5.14")
    assert round_money(Decimal("-0.005"), Decimal("0.01")) == Decimal("-0.01")


def test_bounds_that_no_whole_minor_unit_satisfies_are_refused() -> None:
    raw = with_("min_price", {"excl_vat": "0.011"}) | {"max_price": {"excl_vat": "0.012"}}
    with pytest.raises(InvalidTariffError, match="minor units"):
        parse_tariff(raw)
    jpy = with_("currency", "JPY") | {"min_price": {"excl_vat": "0.2"}, "max_price": {"excl_vat": "0.8"}}
    with pytest.raises(InvalidTariffError, match="JPY"):
        parse_tariff(jpy)


def test_session_bounds_must_be_datetimes() -> None:
    with pytest.raises(InvalidSessionError, match="must be a datetime"):
        price_session(BASE, [_period("2024-01-01T10:00:00Z", ENERGY=1)], end=12345)  # type: ignore[arg-type]
