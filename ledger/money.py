"""Amounts of money in the ledger: exact Decimals at the edges, integer minor units inside.

Why minor units: every posting amount is a whole number of the currency's smallest unit (cents for EUR, yen for
JPY, fils for BHD), so sums are exact integer arithmetic, the canonical bytes that are hashed have one spelling per
amount, and Postgres stores a bigint.  Rounding is the tariff engine's business and happens *before* an amount
reaches the ledger; the ledger refuses (never rounds) an amount it cannot represent exactly.

Invariants:
- `to_minor(a, c)` is exact: `from_minor(to_minor(a, c), c) == a` for every accepted amount.
- Accepted amounts are finite, strictly positive and below MAX_MINOR minor units; anything else raises
  InvalidAmount with the reason.
- Amounts are never floats: a float raises InvalidAmount (binary floats cannot hold 0.10 exactly).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

#: ISO 4217 minor units of the currencies the platform settles in (a currency missing here is refused, not
#: guessed).  Sources: ISO 4217 list (published by SIX); the three-decimal dinars and the zero-decimal yen/won/
#: krona are here so that the "minor units differ" paths are exercised, not only EUR.
MINOR_UNITS: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "NOK": 2, "SEK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2,
    "RON": 2, "BGN": 2, "CAD": 2, "AUD": 2, "NZD": 2, "CNY": 2, "INR": 2, "SGD": 2, "HKD": 2, "MXN": 2,
    "BRL": 2, "ZAR": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0,
    "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}

#: upper bound of one posting, in minor units (10^15 cents is ten trillion euros): far beyond any real charge,
#: far below a bigint, so balances of many postings stay exact in numeric columns
MAX_MINOR = 10**15

_PLAIN_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class InvalidAmount(ValueError):
    """An amount the ledger cannot post exactly; the message says why."""


class UnknownCurrency(ValueError):
    """A currency code that is not in MINOR_UNITS."""


def minor_units(currency: str) -> int:
    """Decimal places of `currency` (ISO 4217)."""
    try:
        return MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"unknown currency {currency!r}: the ledger settles in "
                              f"{', '.join(sorted(MINOR_UNITS))}") from None


def parse_amount(text: str, currency: str) -> Decimal:
    """The amount written as a plain decimal string ("12.34"), checked like `to_minor`.

    Exponent notation, signs, spaces and thousands separators are refused: an amount on the log has one
    spelling that any reader parses the same way."""
    if not isinstance(text, str) or not _PLAIN_DECIMAL.match(text):
        raise InvalidAmount(f"amount {text!r} is not a plain positive decimal such as '12.34'")
    amount = Decimal(text)
    to_minor(amount, currency)
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` in minor units of `currency`; exact or InvalidAmount."""
    places = minor_units(currency)
    if isinstance(amount, float) or not isinstance(amount, (Decimal, int)) or isinstance(amount, bool):
        raise InvalidAmount(f"amount {amount!r} must be a Decimal (never a float)")
    amount = Decimal(amount)
    if not amount.is_finite():
        raise InvalidAmount(f"amount {amount} is not finite")
    if amount <= 0:
        raise InvalidAmount(f"amount {amount} must be positive (the direction says debit or credit)")
    try:
        scaled = amount.scaleb(places)
        minor = int(scaled)
    except (InvalidOperation, OverflowError):
        raise InvalidAmount(f"amount {amount} is out of range") from None
    if scaled != minor:
        raise InvalidAmount(f"amount {amount} has more decimals than {currency} has minor units ({places}); "
                            "round it before posting")
    if minor >= MAX_MINOR:
        raise InvalidAmount(f"amount {amount} {currency} exceeds the per-posting bound of {MAX_MINOR} minor units")
    return minor


def from_minor(minor: int, currency: str) -> Decimal:
    """The Decimal of `minor` units of `currency`, with exactly the currency's decimal places."""
    places = minor_units(currency)
    return Decimal(int(minor)).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_amount(minor: int, currency: str) -> str:
    """Canonical text of an amount (the form events and the audit API use): '12.34', '-0.50', '1500'."""
    return str(from_minor(minor, currency))
