"""Money: Decimal only, ISO 4217 minor units, one rounding rule, exact minor-unit conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.billing.money import (
    CurrencyMismatch, Money, NotRepresentable, UnknownCurrency, fmt, from_minor, minor_units, quantize, to_decimal,
    to_minor,
)


def test_minor_units_follow_iso_4217_and_unknown_codes_are_refused() -> None:
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("KWD")) == (2, 0, 3)
    for bad in ("EUX", "eur", "EURO", "", None):
        with pytest.raises(UnknownCurrency):
            minor_units(bad)  # type: ignore[arg-type]


def test_rounding_is_half_up_at_the_currencys_minor_units() -> None:
    assert quantize(Decimal("2.345"), "EUR") == Decimal("2.35")
    assert quantize(Decimal("-2.345"), "EUR") == Decimal("-2.35")
    assert quantize(Decimal("2.344"), "EUR") == Decimal("2.34")
    assert quantize(Decimal("149.5"), "JPY") == Decimal("150")
    assert quantize(Decimal("1.2345"), "KWD") == Decimal("1.235")


def test_to_minor_refuses_amounts_that_would_need_rounding() -> None:
    assert to_minor(Decimal("4.40"), "EUR") == 440
    assert to_minor(Decimal("4.4"), "EUR") == 440
    assert to_minor(Decimal("1500"), "JPY") == 1500
    with pytest.raises(NotRepresentable):
        to_minor(Decimal("4.405"), "EUR")
    with pytest.raises(NotRepresentable):
        to_minor(Decimal("1.5"), "JPY")


@given(st.integers(min_value=-10**12, max_value=10**12), st.sampled_from(["EUR", "JPY", "KWD"]))
def test_minor_units_round_trip_exactly(value: int, currency: str) -> None:
    assert to_minor(from_minor(value, currency), currency) == value


def test_floats_go_through_their_shortest_repr_and_junk_is_refused() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(4) == Decimal(4)
    assert to_decimal("4.40") == Decimal("4.40")
    for bad in (True, None, "abc", float("nan"), float("inf"), [1], "NaN"):
        with pytest.raises(ValueError):
            to_decimal(bad)


def test_money_refuses_floats_and_mixing_currencies() -> None:
    with pytest.raises(ValueError):
        Money(0.1, "EUR")  # type: ignore[arg-type]
    assert Money.of("1.10", "EUR") + Money.of("2.20", "EUR") == Money(Decimal("3.30"), "EUR")
    with pytest.raises(CurrencyMismatch):
        Money.of(1, "EUR") + Money.of(1, "USD")
    assert str(Money.of("-0.00", "EUR")) == "0.00 EUR"
    assert Money.of("1.005", "EUR").rounded().minor() == 101


def test_fmt_is_plain_decimal_never_exponent_or_negative_zero() -> None:
    assert fmt(Decimal("1E+2")) == "100"
    assert fmt(Decimal("-0.00")) == "0.00"
    assert fmt(Decimal("0.0001")) == "0.0001"
