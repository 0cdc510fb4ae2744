"""Money for billing: Decimal amounts, ISO 4217 currencies and their minor units.

Why a module of its own: every billing decision compares or posts amounts, and two rules must hold everywhere:
- an amount is a `Decimal`, never a float (a float cannot hold 0.10 exactly; a ledger built on it drifts);
- what is *posted* or *charged* has at most the currency's minor units (cents for EUR, none for JPY, mils for
  KWD). OCPI carries up to 4 decimals; we round once, at the border between a CDR and money that moves, with
  ROUND_HALF_UP ("commercial" rounding, what a driver checks by hand), and derive the other figure of a pair by
  subtraction so the pair still adds up (e.g. VAT = rounded gross - rounded net).

Currencies we do not know are refused (`UnknownCurrency`) rather than guessed at two decimals: a wrong exponent
is a factor of 10 or 100 on a card charge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: ISO 4217 minor units (number of decimals) of the currencies we accept. Kept explicit: an unknown code is an
#: error, not an assumed 2.  Source: the ISO 4217 list (public facts).
MINOR_UNITS: dict[str, int] = {
    # 2 decimals
    **{c: 2 for c in (
        "EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN", "HRK", "RSD", "TRY",
        "CAD", "AUD", "NZD", "SGD", "HKD", "CNY", "INR", "ZAR", "MXN", "BRL", "ILS", "AED", "SAR", "QAR",
        "THB", "MYR", "PHP", "IDR", "TWD", "UAH", "MAD", "EGP", "ARS", "COP", "PEN", "MDL", "GEL", "ALL", "MKD",
        "BAM", "KZT", "NGN", "KES", "RUB",
    )},
    # 0 decimals
    **{c: 0 for c in ("JPY", "KRW", "ISK", "CLP", "VND", "XAF", "XOF", "XPF", "UGX", "PYG", "RWF", "KMF",
                      "GNF", "DJF", "BIF", "VUV")},
    # 3 decimals
    **{c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")},
}

_CODE = re.compile(r"^[A-Z]{3}$")
ZERO = Decimal(0)


class UnknownCurrency(ValueError):
    """Not an ISO 4217 code we know the minor units of."""


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class NotRepresentable(ValueError):
    """An amount has more decimals than its currency's minor units (round it first, explicitly)."""


def minor_units(currency: str) -> int:
    """Decimals of `currency` (2 for EUR, 0 for JPY, 3 for KWD); `UnknownCurrency` otherwise."""
    if not isinstance(currency, str) or not _CODE.match(currency):
        raise UnknownCurrency(f"not an ISO 4217 code: {currency!r}")
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def is_known_currency(currency: Any) -> bool:
    try:
        minor_units(currency)
        return True
    except UnknownCurrency:
        return False


def unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: 0.01 EUR, 1 JPY, 0.001 KWD."""
    return Decimal(1).scaleb(-minor_units(currency))


def to_decimal(value: Any) -> Decimal:
    """A Decimal from a JSON-ish number. Floats go through their shortest repr (0.1 -> Decimal('0.1'), not the
    binary expansion); bools, NaN, infinities and non-numeric strings are refused with ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d


def quantize(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded to the currency's minor units, half up (2.345 EUR -> 2.35; -2.345 -> -2.35)."""
    return amount.quantize(unit(currency), rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str) -> int:
    """Integer minor units (4.40 EUR -> 440).  Refuses (NotRepresentable) an amount that would need rounding:
    rounding is a business decision made by the caller, never a side effect of an API call."""
    q = quantize(amount, currency)
    if q != amount:
        raise NotRepresentable(f"{amount} {currency} has more than {minor_units(currency)} decimals")
    return int(q.scaleb(minor_units(currency)))


def from_minor(value: int, currency: str) -> Decimal:
    """Decimal amount of `value` minor units (440, EUR -> Decimal('4.40'))."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"minor units must be an int, got {value!r}")
    return Decimal(value).scaleb(-minor_units(currency)).quantize(unit(currency))


def fmt(amount: Decimal) -> str:
    """Plain decimal string for events and CSV ('4.40', never '4.4E+1' or '-0')."""
    if amount.is_zero():
        amount = amount.copy_abs()
    return format(amount, "f")


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency. Arithmetic only within one currency (CurrencyMismatch otherwise)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise ValueError(f"Money amount must be a finite Decimal, got {self.amount!r}")
        minor_units(self.currency)

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(ZERO, currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def rounded(self) -> Money:
        return Money(quantize(self.amount, self.currency), self.currency)

    def minor(self) -> int:
        return to_minor(self.amount, self.currency)

    def __str__(self) -> str:
        return f"{fmt(self.amount)} {self.currency}"
