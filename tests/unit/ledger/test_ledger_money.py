"""Money in the ledger (ledger/money.py): exact minor units, refused (never rounded) when not exact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import money


@pytest.mark.parametrize("text, currency, minor", [
    ("12.34", "EUR", 1234), ("0.01", "EUR", 1), ("1500", "JPY", 1500), ("1.234", "BHD", 1234),
    ("12.340", "EUR", 1234),  # trailing zeros are still exact
    ("9999999999999.99", "EUR", 999999999999999),
])
def test_amounts_convert_exactly_to_minor_units(text: str, currency: str, minor: int) -> None:
    assert money.to_minor(money.parse_amount(text, currency), currency) == minor


@given(st.integers(min_value=1, max_value=money.MAX_MINOR - 1), st.sampled_from(sorted(money.MINOR_UNITS)))
def test_minor_units_round_trip_through_decimal_and_text(minor: int, currency: str) -> None:
    amount = money.from_minor(minor, currency)
    assert money.to_minor(amount, currency) == minor
    assert money.parse_amount(money.format_amount(minor, currency), currency) == amount


@pytest.mark.parametrize("amount, currency, why", [
    (Decimal("12.345"), "EUR", "more decimals"),
    (Decimal("0.5"), "JPY", "more decimals"),
    (Decimal("0"), "EUR", "positive"),
    (Decimal("-1.00"), "EUR", "positive"),
    (Decimal("NaN"), "EUR", "finite"),
    (Decimal("Infinity"), "EUR", "finite"),
    (Decimal(money.MAX_MINOR), "JPY", "exceeds"),
    (Decimal("1E-999999"), "EUR", "more decimals"),
    (0.1, "EUR", "never a float"),
    (True, "EUR", "never a float"),
])
def test_amounts_the_ledger_cannot_post_exactly_are_refused_with_the_reason(amount, currency, why) -> None:  # noqa: ANN001
    with pytest.raises(money.InvalidAmount, match=why):
        money.to_minor(amount, currency)


@pytest.mark.parametrize("text", ["1e2", "1E+2", "-1.00", "+1.00", " 1.00", "1,000.00", "", ".5", "5.", "1.0.0",
                                  "١٢", None, 12])
def test_only_plain_decimal_text_is_an_amount(text) -> None:  # noqa: ANN001
    with pytest.raises(money.InvalidAmount):
        money.parse_amount(text, "EUR")


@pytest.mark.parametrize("currency", ["XXX", "eur", "", None, "EURO"])
def test_unknown_currencies_are_refused_not_guessed(currency) -> None:  # noqa: ANN001
    with pytest.raises(money.UnknownCurrency, match="unknown currency"):
        money.to_minor(Decimal("1"), currency)


def test_formatting_keeps_the_currency_decimals_and_the_sign() -> None:
    assert money.format_amount(-50, "EUR") == "-0.50"
    assert money.format_amount(0, "EUR") == "0.00"
    assert money.format_amount(1500, "JPY") == "1500"
    assert money.format_amount(1, "KWD") == "0.001"
