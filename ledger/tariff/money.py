"""Money for the tariff engine: Decimal amounts, ISO 4217 minor units, one rounding rule.

Why Decimal and never float: tariff prices (0.25/kWh), VAT (5.2 %) and volumes (20.45 kWh)
are decimal fractions that binary floats cannot hold, and a CDR total that is off by one
cent is a dispute.  Every number entering the engine goes through :func:`to_decimal`,
which takes ints, strings and Decimals as they are and floats through their shortest
``repr`` (so the JSON literal ``0.1`` becomes ``Decimal("0.1")``, not
``0.1000000000000000055...``); NaN, infinities and booleans are refused.

The rounding rule (see also the package docstring): amounts are computed *exactly* (in a
40-digit context, with the single inexact step -- division by 3600 for per-hour prices --
done once per total) and each reported total is then rounded **half-up** to the
currency's minor units (``EUR`` 2, ``JPY`` 0, ``KWD`` 3).  Half-up (not banker's
rounding) because the OCPI 2.2.1 worked example for ``tariff_alt_url`` rounds 5.125 to
5.13 and 5.625 to 5.63.

Invariant: :func:`round_money` is monotone (a >= b implies round(a) >= round(b)) and maps
non-negative amounts to non-negative amounts -- the property tests rely on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from ledger.tariff.errors import UnknownCurrencyError

#: Decimal context for all engine arithmetic: 40 significant digits is far more than any
#: realistic CDR needs (10^9 EUR with 10^-20 precision) and keeps the one division exact
#: to well below a minor unit.
ENGINE_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

_CODES_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_CODES_3 = "BHD IQD JOD KWD LYD OMR TND"
_CODES_4 = "CLF UYW"
_CODES_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR "
    "FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)

#: ISO 4217 alphabetic code -> number of minor-unit digits (active currencies, 2024 list).
MINOR_UNITS: dict[str, int] = {
    **{code: 2 for code in _CODES_2.split()},
    **{code: 0 for code in _CODES_0.split()},
    **{code: 3 for code in _CODES_3.split()},
    **{code: 4 for code in _CODES_4.split()},
}

_QUANTUM: dict[str, Decimal] = {code: Decimal(1).scaleb(-digits) for code, digits in MINOR_UNITS.items()}


def minor_units(currency: str) -> int:
    """Digits after the decimal point of ``currency``; :class:`UnknownCurrencyError` if unknown."""
    try:
        return MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrencyError(f"unknown ISO 4217 currency {currency!r}") from None


def quantum(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (``Decimal('0.01')`` for EUR)."""
    try:
        return _QUANTUM[currency]
    except (KeyError, TypeError):
        raise UnknownCurrencyError(f"unknown ISO 4217 currency {currency!r}") from None


def round_money(amount: Decimal, currency_quantum: Decimal) -> Decimal:
    """Round half-up to the currency quantum (use :func:`quantum` to get it once)."""
    return amount.quantize(currency_quantum, rounding=ROUND_HALF_UP, context=ENGINE_CONTEXT)


def to_decimal(value: Any, what: str = "number") -> Decimal:
    """Convert an OCPI JSON number to Decimal without going through binary floating point.

    Raises ``TypeError`` for booleans/None/other types and ``ValueError`` for NaN, infinities
    and malformed strings; callers wrap these into the engine's own errors with a field name.
    """
    if type(value) is Decimal:
        if not value.is_finite():
            raise ValueError(f"{what} must be finite, got {value}")
        return value
    if type(value) is int:
        return Decimal(value)
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value}")
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {value!r}") from None
        if not result.is_finite():
            raise ValueError(f"{what} must be finite, got {value!r}")
        return result
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, Decimal)):  # subclasses (IntEnum, ...)
        return to_decimal(int(value) if isinstance(value, int) else Decimal(value), what)
    raise TypeError(f"{what} must be a number, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Price:
    """OCPI ``Price``: an amount excluding and including VAT, in one currency.

    ``incl_vat`` is always present in what the engine produces: a price component without
    ``vat`` contributes the same amount to both (OCPI: "If omitted, no VAT is applicable").
    """

    excl_vat: Decimal
    incl_vat: Decimal

    def __add__(self, other: Price) -> Price:
        return Price(self.excl_vat + other.excl_vat, self.incl_vat + other.incl_vat)

    def __sub__(self, other: Price) -> Price:
        return Price(self.excl_vat - other.excl_vat, self.incl_vat - other.incl_vat)

    def rounded(self, currency_quantum: Decimal) -> Price:
        return Price(round_money(self.excl_vat, currency_quantum), round_money(self.incl_vat, currency_quantum))

    def to_ocpi(self) -> dict[str, Decimal]:
        """``{"excl_vat": ..., "incl_vat": ...}`` with Decimal values (serialise them as JSON numbers)."""
        return {"excl_vat": self.excl_vat, "incl_vat": self.incl_vat}


ZERO_PRICE = Price(ZERO, ZERO)
