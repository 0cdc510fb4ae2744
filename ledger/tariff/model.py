"""OCPI 2.2.1 tariff objects, parsed once and validated strictly.

A partner's tariff arrives as JSON; :func:`parse_tariff` turns it into immutable objects and
refuses anything the pricing rules could not interpret unambiguously (unknown dimension,
negative price or step_size, ``start_time`` not ``HH:MM``, ``min_kwh`` >= ``max_kwh``,
a reservation element with an ENERGY component, ``min_price`` above ``max_price``, ...)
with an :class:`InvalidTariffError` naming the field.  Fields that do not affect the price
(``tariff_alt_text``, ``energy_mix``, ``last_updated`` ...) are kept only as far as
:mod:`ledger.tariff.describe` needs them.

The parse also *compiles* the tariff for the engine: per pricing phase (charging session,
reservation, expired reservation) and per dimension, the ordered list of candidate
``(element, component)`` pairs, so pricing a period is "walk a short list, take the first
whose restrictions match" -- OCPI's rule that the first matching element supplies each
dimension.

Invariants: a parsed :class:`Tariff` never changes; every price, VAT and bound is a
finite non-negative Decimal; restriction times are seconds of the local day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from ledger.tariff.errors import InvalidTariffError
from ledger.tariff.money import ZERO, Price, minor_units, quantum, to_decimal


class Dimension(StrEnum):
    """OCPI ``TariffDimensionType``."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class ReservationRestriction(StrEnum):
    """OCPI ``ReservationRestrictionType``."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class Phase(StrEnum):
    """Which part of a CDR a charging period belongs to (decides which elements may apply)."""

    SESSION = "SESSION"  # charging and parking: elements without a reservation restriction
    RESERVATION = "RESERVATION"  # reservation followed by a session: RESERVATION elements
    RESERVATION_EXPIRED = "RESERVATION_EXPIRED"  # RESERVATION_EXPIRES elements, then RESERVATION


DAYS_OF_WEEK: tuple[str, ...] = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_DAY_INDEX = {name: i for i, name in enumerate(DAYS_OF_WEEK)}  # == datetime.weekday()

_TIME_RE = re.compile(r"([0-1][0-9]|2[0-3]):([0-5][0-9])")
_DATE_RE = re.compile(r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
SECONDS_PER_DAY = 86_400
_WH_PER_KWH = Decimal(1000)


@dataclass(frozen=True, slots=True)
class PriceComponent:
    """One OCPI ``PriceComponent``: ``price`` per kWh (ENERGY), per hour (TIME/PARKING_TIME)
    or per session (FLAT), excl. VAT; ``vat`` in percent or None (no VAT applicable);
    ``step_size`` in Wh (ENERGY) or seconds (TIME/PARKING_TIME), 0 meaning "no rounding"."""

    type: Dimension
    price: Decimal
    vat: Decimal | None
    step_size: int
    #: 100 + vat (or 100): multiply an excl.-VAT numerator by this and divide by 100 for incl.
    vat_factor: Decimal = field(compare=False, repr=False, default=Decimal(100))


@dataclass(frozen=True, slots=True)
class TariffRestrictions:
    """OCPI ``TariffRestrictions`` in engine units.

    ``start_time``/``end_time`` are seconds of the local day (``end_time`` "00:00" is stored as
    86400, "end of day"); energy bounds are in Wh; duration bounds are timedeltas; current in
    A, power in kW; ``day_of_week`` holds ``datetime.weekday()`` numbers (Monday = 0).
    """

    start_time: int | None = None
    end_time: int | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    min_wh: Decimal | None = None
    max_wh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: dt.timedelta | None = None
    max_duration: dt.timedelta | None = None
    day_of_week: frozenset[int] | None = None
    reservation: ReservationRestriction | None = None

    @property
    def uses_local_time(self) -> bool:
        return (
            self.start_time is not None
            or self.end_time is not None
            or self.start_date is not None
            or self.end_date is not None
            or self.day_of_week is not None
        )

    @property
    def uses_electrical(self) -> bool:
        return (
            self.min_current is not None
            or self.max_current is not None
            or self.min_power is not None
            or self.max_power is not None
        )

    def matches(
        self,
        local: dt.datetime | None,
        energy_before_wh: Decimal,
        duration: dt.timedelta,
        current_low: Decimal | None,
        current_high: Decimal | None,
        power_low: Decimal | None,
        power_high: Decimal | None,
    ) -> bool:
        """True when this element is active at the start of a period.

        ``local`` is the period start in the location's time zone (None only when no
        element of the tariff uses local time); ``energy_before_wh`` the energy charged in
        the session before the period; ``duration`` the time since the session (phase)
        started; ``*_low``/``*_high`` the period's lowest/highest current (A) and power (kW),
        None when the period does not report them (then a current/power bound never matches).
        Bounds follow OCPI: minimums inclusive, maximums exclusive.
        """
        if self.start_time is not None or self.end_time is not None:
            assert local is not None
            second = local.hour * 3600 + local.minute * 60 + local.second
            start = 0 if self.start_time is None else self.start_time
            end = SECONDS_PER_DAY if self.end_time is None else self.end_time
            if start < end:
                if not start <= second < end:
                    return False
            elif start > end:  # wraps around midnight, e.g. 22:00-06:00
                if end <= second < start:
                    return False
            # start == end: the whole day
        if self.day_of_week is not None:
            assert local is not None
            if local.weekday() not in self.day_of_week:
                return False
        if self.start_date is not None or self.end_date is not None:
            assert local is not None
            day = local.date()
            if self.start_date is not None and day < self.start_date:
                return False
            if self.end_date is not None and day >= self.end_date:
                return False
        if self.min_wh is not None and energy_before_wh < self.min_wh:
            return False
        if self.max_wh is not None and energy_before_wh >= self.max_wh:
            return False
        if self.min_duration is not None and duration < self.min_duration:
            return False
        if self.max_duration is not None and duration >= self.max_duration:
            return False
        if self.min_current is not None and (current_low is None or current_low < self.min_current):
            return False
        if self.max_current is not None and (current_high is None or current_high >= self.max_current):
            return False
        if self.min_power is not None and (power_low is None or power_low < self.min_power):
            return False
        if self.max_power is not None and (power_high is None or power_high >= self.max_power):
            return False
        return True


@dataclass(frozen=True, slots=True)
class TariffElement:
    index: int
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None

    @property
    def is_parking_only(self) -> bool:
        """All non-FLAT components are PARKING_TIME: a FLAT fee here is a parking fee."""
        others = [c for c in self.price_components if c.type is not Dimension.FLAT]
        return bool(others) and all(c.type is Dimension.PARKING_TIME for c in others)


#: (element index, component, restrictions or None) -- a candidate for one dimension.
Candidate = tuple[int, PriceComponent, TariffRestrictions | None]


@dataclass(frozen=True, slots=True)
class Tariff:
    """A validated OCPI 2.2.1 ``Tariff`` plus its compiled candidate lists."""

    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    min_price: Price | None = None
    max_price: Price | None = None
    #: min/max price "incl_vat" may be absent in OCPI; then only the excl. bound applies.
    min_price_has_incl: bool = True
    max_price_has_incl: bool = True
    start_date_time: dt.datetime | None = None
    end_date_time: dt.datetime | None = None
    country_code: str | None = None
    party_id: str | None = None
    type: str | None = None
    alt_text: tuple[tuple[str, str], ...] = ()
    alt_url: str | None = None
    #: compiled: phase -> dimension -> ordered candidates
    candidates: Mapping[Phase, Mapping[Dimension, tuple[Candidate, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    uses_local_time: bool = field(default=False, compare=False, repr=False)
    uses_electrical: bool = field(default=False, compare=False, repr=False)
    #: indexes of elements whose non-FLAT components are all PARKING_TIME (FLAT there = parking fee)
    parking_only_elements: frozenset[int] = field(default=frozenset(), compare=False, repr=False)

    @property
    def has_reservation_elements(self) -> bool:
        return any(e.restrictions is not None and e.restrictions.reservation is not None for e in self.elements)


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


def _number(raw: Any, where: str, *, allow_negative: bool = False) -> Decimal:
    try:
        value = to_decimal(raw, where)
    except (TypeError, ValueError) as exc:
        raise InvalidTariffError(f"{where}: {exc}") from None
    if not allow_negative and value < ZERO:
        raise InvalidTariffError(f"{where} must not be negative, got {value}")
    return value


def _integer(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
        raise InvalidTariffError(f"{where} must be an integer, got {raw!r}")
    value = _number(raw, where)
    if value != value.to_integral_value():
        raise InvalidTariffError(f"{where} must be an integer, got {value}")
    return int(value)


def _time_of_day(raw: Any, where: str, *, is_end: bool) -> int:
    if not isinstance(raw, str) or not _TIME_RE.fullmatch(raw):
        raise InvalidTariffError(f"{where} must be HH:MM (00:00-23:59), got {raw!r}")
    seconds = int(raw[:2]) * 3600 + int(raw[3:]) * 60
    if is_end and seconds == 0:
        return SECONDS_PER_DAY  # OCPI: "To stop at end of the day use: 00:00"
    return seconds


def _date(raw: Any, where: str) -> dt.date:
    if not isinstance(raw, str) or not _DATE_RE.fullmatch(raw):
        raise InvalidTariffError(f"{where} must be YYYY-MM-DD, got {raw!r}")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidTariffError(f"{where} is not a calendar date: {raw!r}") from None


def parse_datetime(raw: Any, where: str, error: type[Exception] = InvalidTariffError) -> dt.datetime:
    """OCPI DateTime (RFC 3339, UTC when no offset is given) -> aware datetime."""
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise error(f"{where} is not an RFC 3339 date-time: {raw!r}") from None
    else:
        raise error(f"{where} must be a date-time string, got {raw!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # OCPI: DateTime is UTC
    return value


def _price(raw: Any, where: str) -> tuple[Price, bool]:
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{where} must be an object with excl_vat/incl_vat")
    if "excl_vat" not in raw:
        raise InvalidTariffError(f"{where}.excl_vat is required")
    excl = _number(raw["excl_vat"], f"{where}.excl_vat")
    if raw.get("incl_vat") is None:
        return Price(excl, excl), False
    incl = _number(raw["incl_vat"], f"{where}.incl_vat")
    return Price(excl, incl), True


def _bound_pair(
    raw: Mapping[str, Any], low_key: str, high_key: str, where: str, scale: Decimal | None = None
) -> tuple[Decimal | None, Decimal | None]:
    low = None if raw.get(low_key) is None else _number(raw[low_key], f"{where}.{low_key}")
    high = None if raw.get(high_key) is None else _number(raw[high_key], f"{where}.{high_key}")
    if low is not None and high is not None and low >= high:
        raise InvalidTariffError(f"{where}: {low_key} ({low}) must be below {high_key} ({high}); the element could never apply")
    if scale is not None:
        low = None if low is None else low * scale
        high = None if high is None else high * scale
    return low, high


_RESTRICTION_KEYS = frozenset(
    {
        "start_time", "end_time", "start_date", "end_date", "min_kwh", "max_kwh", "min_current", "max_current",
        "min_power", "max_power", "min_duration", "max_duration", "day_of_week", "reservation",
    }
)  # fmt: skip


def _restrictions(raw: Any, where: str) -> TariffRestrictions | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{where} must be an object")
    unknown = set(raw) - _RESTRICTION_KEYS
    if unknown:
        raise InvalidTariffError(f"{where}: unknown restriction(s) {sorted(unknown)}")
    start_time = None if raw.get("start_time") is None else _time_of_day(raw["start_time"], f"{where}.start_time", is_end=False)
    end_time = None if raw.get("end_time") is None else _time_of_day(raw["end_time"], f"{where}.end_time", is_end=True)
    start_date = None if raw.get("start_date") is None else _date(raw["start_date"], f"{where}.start_date")
    end_date = None if raw.get("end_date") is None else _date(raw["end_date"], f"{where}.end_date")
    if start_date is not None and end_date is not None and start_date >= end_date:
        raise InvalidTariffError(f"{where}: start_date must be before end_date (end_date is exclusive)")
    min_wh, max_wh = _bound_pair(raw, "min_kwh", "max_kwh", where, _WH_PER_KWH)
    min_current, max_current = _bound_pair(raw, "min_current", "max_current", where)
    min_power, max_power = _bound_pair(raw, "min_power", "max_power", where)
    min_duration = None if raw.get("min_duration") is None else _integer(raw["min_duration"], f"{where}.min_duration")
    max_duration = None if raw.get("max_duration") is None else _integer(raw["max_duration"], f"{where}.max_duration")
    if min_duration is not None and max_duration is not None and min_duration >= max_duration:
        raise InvalidTariffError(f"{where}: min_duration must be below max_duration; the element could never apply")
    days = raw.get("day_of_week")
    day_set: frozenset[int] | None = None
    if days is not None:
        if isinstance(days, str) or not isinstance(days, Sequence):
            raise InvalidTariffError(f"{where}.day_of_week must be a list of DayOfWeek")
        try:
            day_set = frozenset(_DAY_INDEX[d] for d in days)
        except (KeyError, TypeError):
            raise InvalidTariffError(f"{where}.day_of_week: unknown day in {list(days)!r}") from None
        if not day_set:
            day_set = None  # an empty list restricts nothing (cardinality *)
    reservation = raw.get("reservation")
    if reservation is not None:
        try:
            reservation = ReservationRestriction(reservation)
        except ValueError:
            raise InvalidTariffError(f"{where}.reservation: unknown value {reservation!r}") from None
    return TariffRestrictions(
        start_time=start_time,
        end_time=end_time,
        start_date=start_date,
        end_date=end_date,
        min_wh=min_wh,
        max_wh=max_wh,
        min_current=min_current,
        max_current=max_current,
        min_power=min_power,
        max_power=max_power,
        min_duration=None if min_duration is None else dt.timedelta(seconds=min_duration),
        max_duration=None if max_duration is None else dt.timedelta(seconds=max_duration),
        day_of_week=day_set,
        reservation=reservation,
    )


def _component(raw: Any, where: str) -> PriceComponent:
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{where} must be an object")
    try:
        dimension = Dimension(raw.get("type"))
    except ValueError:
        raise InvalidTariffError(f"{where}.type: unknown tariff dimension {raw.get('type')!r}") from None
    if "price" not in raw:
        raise InvalidTariffError(f"{where}.price is required")
    price = _number(raw["price"], f"{where}.price")
    vat = None if raw.get("vat") is None else _number(raw["vat"], f"{where}.vat")
    if vat is not None and vat > 100:
        raise InvalidTariffError(f"{where}.vat is a percentage, {vat} is above 100")
    step = _integer(raw.get("step_size", 0), f"{where}.step_size") if raw.get("step_size") is not None else 0
    return PriceComponent(
        type=dimension,
        price=price,
        vat=vat,
        step_size=step,
        vat_factor=Decimal(100) if vat is None else Decimal(100) + vat,
    )


def parse_tariff(raw: Mapping[str, Any] | Tariff) -> Tariff:
    """Validate an OCPI 2.2.1 Tariff object (as decoded JSON) and compile it for pricing.

    Passing an already parsed :class:`Tariff` returns it unchanged (so callers may cache).
    """
    if isinstance(raw, Tariff):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"a tariff must be a JSON object, got {type(raw).__name__}")
    tariff_id = raw.get("id")
    if not isinstance(tariff_id, str) or not tariff_id or len(tariff_id) > 36:
        raise InvalidTariffError(f"tariff id must be a string of 1-36 characters, got {tariff_id!r}")
    currency = raw.get("currency")
    minor_units(currency)  # UnknownCurrencyError
    elements_raw = raw.get("elements")
    if isinstance(elements_raw, (str, bytes)) or not isinstance(elements_raw, Sequence) or not elements_raw:
        raise InvalidTariffError(f"tariff {tariff_id}: elements must be a non-empty list")
    elements: list[TariffElement] = []
    for i, element_raw in enumerate(elements_raw):
        where = f"elements[{i}]"
        if not isinstance(element_raw, Mapping):
            raise InvalidTariffError(f"{where} must be an object")
        components_raw = element_raw.get("price_components")
        if isinstance(components_raw, (str, bytes)) or not isinstance(components_raw, Sequence) or not components_raw:
            raise InvalidTariffError(f"{where}.price_components must be a non-empty list")
        components = tuple(_component(c, f"{where}.price_components[{j}]") for j, c in enumerate(components_raw))
        restrictions = _restrictions(element_raw.get("restrictions"), f"{where}.restrictions")
        if restrictions is not None and restrictions.reservation is not None:
            bad = [c.type.value for c in components if c.type not in (Dimension.FLAT, Dimension.TIME)]
            if bad:
                raise InvalidTariffError(f"{where}: a reservation element can only have FLAT and TIME components, has {bad}")
        elements.append(TariffElement(index=i, price_components=components, restrictions=restrictions))

    min_price, min_incl = (None, True) if raw.get("min_price") is None else _price(raw["min_price"], "min_price")
    max_price, max_incl = (None, True) if raw.get("max_price") is None else _price(raw["max_price"], "max_price")
    if min_price is not None and max_price is not None:
        if min_price.excl_vat > max_price.excl_vat or (min_incl and max_incl and min_price.incl_vat > max_price.incl_vat):
            raise InvalidTariffError("min_price must not exceed max_price")
        # a total is reported in whole minor units: some such amount must lie within both bounds
        q = quantum(currency)
        pairs = [(min_price.excl_vat, max_price.excl_vat)]
        if min_incl and max_incl:
            pairs.append((min_price.incl_vat, max_price.incl_vat))
        for low, high in pairs:
            if low.quantize(q, rounding=ROUND_CEILING) > high.quantize(q, rounding=ROUND_FLOOR):
                raise InvalidTariffError(
                    f"min_price {low} and max_price {high} leave no amount in whole {currency} minor units"
                )
    start = None if raw.get("start_date_time") is None else parse_datetime(raw["start_date_time"], "start_date_time")
    end = None if raw.get("end_date_time") is None else parse_datetime(raw["end_date_time"], "end_date_time")
    if start is not None and end is not None and start >= end:
        raise InvalidTariffError("start_date_time must be before end_date_time")
    alt_text: list[tuple[str, str]] = []
    for entry in raw.get("tariff_alt_text") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("text"), str):
            alt_text.append((str(entry.get("language", "")), entry["text"]))

    return Tariff(
        id=tariff_id,
        currency=currency,
        elements=tuple(elements),
        min_price=min_price,
        max_price=max_price,
        min_price_has_incl=min_incl,
        max_price_has_incl=max_incl,
        start_date_time=start,
        end_date_time=end,
        country_code=raw.get("country_code"),
        party_id=raw.get("party_id"),
        type=raw.get("type"),
        alt_text=tuple(alt_text),
        alt_url=raw.get("tariff_alt_url"),
        candidates=_compile(elements),
        uses_local_time=any(e.restrictions is not None and e.restrictions.uses_local_time for e in elements),
        uses_electrical=any(e.restrictions is not None and e.restrictions.uses_electrical for e in elements),
        parking_only_elements=frozenset(e.index for e in elements if e.is_parking_only),
    )


def _compile(elements: Sequence[TariffElement]) -> dict[Phase, dict[Dimension, tuple[Candidate, ...]]]:
    def reservation_kind(element: TariffElement) -> ReservationRestriction | None:
        return None if element.restrictions is None else element.restrictions.reservation

    session = [e for e in elements if reservation_kind(e) is None]
    reserved = [e for e in elements if reservation_kind(e) is ReservationRestriction.RESERVATION]
    expired = [e for e in elements if reservation_kind(e) is ReservationRestriction.RESERVATION_EXPIRES]
    # OCPI: for an expired reservation the RESERVATION_EXPIRES element wins over RESERVATION
    # for the same dimension, whatever the order; RESERVATION elements are the fallback.
    order = {Phase.SESSION: session, Phase.RESERVATION: reserved, Phase.RESERVATION_EXPIRED: expired + reserved}
    compiled: dict[Phase, dict[Dimension, tuple[Candidate, ...]]] = {}
    for phase, phase_elements in order.items():
        compiled[phase] = {
            dimension: tuple(
                (e.index, c, e.restrictions) for e in phase_elements for c in e.price_components if c.type is dimension
            )
            for dimension in Dimension
        }
    return compiled
