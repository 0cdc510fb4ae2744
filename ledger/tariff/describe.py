"""A tariff in human terms, for the driver API ("€0.25/kWh, €2.00/h after 1 h; parking €5.00/h").

One clause per tariff element, in the tariff's order (which is also the order of precedence),
each listing its prices followed by when it applies; then the session minimum/maximum.
Prices include VAT by default because that is what a consumer pays; ``include_vat=False``
gives the business view.  Unit prices are shown with the currency's minor units, or more
digits when the tariff has them (€0.275/kWh is not rounded to €0.28 -- a display must not
misstate a price).  English only; a partner's ``tariff_alt_text`` is the place for other
languages and is returned by :func:`alt_text` when present.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ledger.tariff.model import (
    SECONDS_PER_DAY,
    Dimension,
    PriceComponent,
    ReservationRestriction,
    Tariff,
    TariffElement,
    TariffRestrictions,
    parse_tariff,
)
from ledger.tariff.money import HUNDRED, minor_units

SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥", "INR": "₹", "KRW": "₩", "CNY": "¥"}
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def format_money(amount: Decimal, currency: str) -> str:
    """``€0.25``, ``CHF 0.50``: at least the minor units, more only if the amount has them."""
    digits = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    shown_digits = max(digits, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    text = f"{amount:.{min(shown_digits, 6)}f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"


def _number(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def format_duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)


def _clock(seconds: int) -> str:
    seconds %= SECONDS_PER_DAY
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _days(days: frozenset[int]) -> str:
    ordered = sorted(days)
    runs: list[list[int]] = []
    for d in ordered:
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_DAY_ABBR[run[0]]}–{_DAY_ABBR[run[-1]]}")
        else:
            parts.extend(_DAY_ABBR[d] for d in run)
    return ", ".join(parts)


def _when(r: TariffRestrictions) -> str:
    parts: list[str] = []
    if r.min_duration is not None and r.max_duration is not None:
        parts.append(
            f"from {format_duration(int(r.min_duration.total_seconds()))} to {format_duration(int(r.max_duration.total_seconds()))}"
        )
    elif r.min_duration is not None:
        parts.append(f"after {format_duration(int(r.min_duration.total_seconds()))}")
    elif r.max_duration is not None:
        parts.append(f"for the first {format_duration(int(r.max_duration.total_seconds()))}")
    if r.min_wh is not None and r.max_wh is not None:
        parts.append(f"from {_number(r.min_wh / 1000)} to {_number(r.max_wh / 1000)} kWh")
    elif r.min_wh is not None:
        parts.append(f"after {_number(r.min_wh / 1000)} kWh")
    elif r.max_wh is not None:
        parts.append(f"for the first {_number(r.max_wh / 1000)} kWh")
    if r.start_time is not None and r.end_time is not None:
        if r.start_time % SECONDS_PER_DAY != r.end_time % SECONDS_PER_DAY:
            parts.append(f"{_clock(r.start_time)}–{_clock(r.end_time)}")
    elif r.start_time is not None:
        parts.append(f"from {_clock(r.start_time)}")
    elif r.end_time is not None:
        parts.append(f"until {_clock(r.end_time)}")
    if r.day_of_week is not None:
        parts.append(_days(r.day_of_week))
    if r.start_date is not None:
        parts.append(f"from {r.start_date.isoformat()}")
    if r.end_date is not None:
        parts.append(f"before {r.end_date.isoformat()}")
    for low, high, unit in ((r.min_current, r.max_current, "A"), (r.min_power, r.max_power, "kW")):
        if low is not None and high is not None:
            parts.append(f"at {_number(low)}–{_number(high)} {unit}")
        elif low is not None:
            parts.append(f"at {_number(low)} {unit} or more")
        elif high is not None:
            parts.append(f"below {_number(high)} {unit}")
    if r.reservation is ReservationRestriction.RESERVATION_EXPIRES:
        parts.append("if the reservation expires unused")
    return " ".join(parts)


def _component(c: PriceComponent, element: TariffElement, currency: str, include_vat: bool) -> str:
    price = c.price * c.vat_factor / HUNDRED if include_vat else c.price
    money = format_money(price, currency)
    reservation = element.restrictions is not None and element.restrictions.reservation is not None
    if c.type is Dimension.FLAT:
        if reservation:
            return f"{money} reservation fee"
        return f"{money} parking fee" if element.is_parking_only else f"{money} per session"
    if c.type is Dimension.ENERGY:
        text = f"{money}/kWh"
        if c.step_size > 1:
            text += f" (billed per {_number(Decimal(c.step_size) / 1000)} kWh)"
        return text
    text = f"{money}/h"
    if c.type is Dimension.PARKING_TIME:
        text = f"parking {text}"
    elif reservation:
        text = f"reservation {text}"
    if c.step_size > 1:
        text += f" (billed per {format_duration(c.step_size)})"
    return text


def describe_tariff(tariff: Tariff | Mapping[str, Any], *, include_vat: bool = True) -> str:
    """One line describing ``tariff`` for a driver (see module docstring)."""
    t = parse_tariff(tariff)
    if all(c.price == 0 for e in t.elements for c in e.price_components) and (
        t.min_price is None or t.min_price.excl_vat == 0
    ):
        return "Free of charge"
    clauses: list[str] = []
    for element in t.elements:
        prices = ", ".join(_component(c, element, t.currency, include_vat) for c in element.price_components)
        when = "" if element.restrictions is None else _when(element.restrictions)
        clauses.append(f"{prices} {when}".strip())
    limits = []
    if t.min_price is not None:
        limits.append(f"minimum {format_money(t.min_price.incl_vat if include_vat else t.min_price.excl_vat, t.currency)}")
    if t.max_price is not None:
        limits.append(f"maximum {format_money(t.max_price.incl_vat if include_vat else t.max_price.excl_vat, t.currency)}")
    if limits:
        clauses.append(" ".join(limits) + " per session")
    text = "; ".join(clauses)
    return text + (" (incl. VAT)" if include_vat else " (excl. VAT)")


def alt_text(tariff: Tariff | Mapping[str, Any], language: str = "en") -> str | None:
    """The partner's own ``tariff_alt_text`` in ``language`` (or the first one), if any."""
    t = parse_tariff(tariff)
    for lang, text in t.alt_text:
        if lang.lower() == language.lower():
            return text
    return t.alt_text[0][1] if t.alt_text else None
