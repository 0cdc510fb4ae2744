"""Price a charging session (OCPI charging periods) with an OCPI 2.2.1 tariff into CDR totals.

Rules implemented (OCPI 2.2.1, ``mod_tariffs`` and ``mod_cdrs``, release-2.2.1-bugfixes text):

* **Element choice** -- for every period and every dimension (FLAT, ENERGY, TIME,
  PARKING_TIME) the first tariff element that has a component of that dimension *and* whose
  restrictions all match at the period's start supplies the price; no match, no cost.
  Restrictions are evaluated in the location's local time (``time_zone``, via zoneinfo):
  ``start_time`` inclusive / ``end_time`` exclusive (end < start wraps past midnight, end
  "00:00" is end of day, start == end is the whole day), ``start_date`` inclusive /
  ``end_date`` exclusive, ``day_of_week`` of the local date; ``min_kwh``/``max_kwh`` against
  the energy charged *before* the period; ``min_duration``/``max_duration`` against the time
  since the session (or the reservation) started; current/power minimums are compared with the
  period's lowest reported value (MIN_CURRENT, else CURRENT, else MAX_CURRENT) and maximums
  with its highest (MAX_*, else the average, else MIN_*); a period that reports no current
  (power) never matches a current (power) restriction.  Minimums are inclusive, maximums
  exclusive.  Periods are priced whole by the element active at their start: splitting a
  period where a restriction flips is the CPO's job (OCPI ``mod_cdrs``); our own sessions get
  split by :func:`ledger.tariff.builder.build_charging_periods`.
* **Quantities** -- ENERGY volumes (kWh), TIME and PARKING_TIME volumes (h) as reported.  A
  period reporting none of TIME, PARKING_TIME or RESERVATION_TIME is charging for its whole
  length (start to next start / session end), which is how CPOs send ENERGY-only periods.
  Time volumes are resolved to the microsecond.
* **Reservation** -- periods with RESERVATION_TIME form the reservation phase, which must come
  before the session's periods.  They are priced only by elements with a ``reservation``
  restriction (TIME prices the reservation time, FLAT is the reservation fee).  A reservation
  that expired (default: the CDR has no session periods) uses RESERVATION_EXPIRES elements
  first and RESERVATION elements as fallback, per the spec note.  Session periods never use
  reservation elements, and reservation periods never use the others.
* **FLAT** -- a one-off fee per phase: the FLAT component active at the first period of the
  reservation phase and the one active at the first period of the session are charged once
  each ("start or transaction fee").  The spec does not say what happens when a *different*
  FLAT element matches later in the session (e.g. a daytime and a night-time start fee); we
  charge only the one in force at the start, because that is the fee the driver accepted when
  starting and charging both would bill two start fees for one session.  A FLAT in an element whose other components are all
  PARKING_TIME is a parking fee (``total_parking_cost``); in a reservation element it is a
  reservation fee (``total_reservation_cost``); otherwise it is ``total_fixed_cost``.
* **step_size** -- applied once per session for ENERGY and once for the time-based
  dimensions together: take the *last* period in which the dimension was priced (for time:
  the last priced TIME, PARKING_TIME or reservation time, parking counting as after charging
  within one period), round the session's *total* priced amount of that quantity up to a
  multiple of that period's component ``step_size``, and bill the extra at that period's price.
  So charging time followed by parking is never rounded (OCPI's "not taken into account when
  switching ... to paying for parking"), and the spec's examples (tariff_14 cases 1-3,
  complex tariff, reservation examples) come out as published.  ``step_size`` 0 means none.
* **VAT** per component: incl = excl * (100 + vat) / 100; no ``vat`` means none applicable.
* **min_price / max_price** bound the session total excl. and incl. VAT independently ("they
  both apply"); component totals are left as the tariff computes them, so
  ``total_cost`` may differ from their sum when a bound applied (``uncapped_total_cost`` keeps
  the tariff sum).

Rounding rule: every amount is computed exactly (40-digit Decimal; the per-hour division by
3600 happens once per total), bounds are applied to the exact total, and then **each reported
total is rounded on its own, half-up, to the currency's minor units**.  Reason: the spec's
worked examples do exactly this -- the complex tariff's 2.875 + 3.30 + 4.125 is reported as
10.30 (rounding components first would give 10.31), and tariff_alt_url's 5.625 as 5.63
(half-up, not half-even).  Consequence: ``total_cost`` can differ from the sum of the rounded
component totals by a minor unit or two; the ledger must post ``total_cost`` and treat the
components as an analysis.

Pure: no I/O, no clock, no global state touched (arithmetic runs in a local Decimal context).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.tariff.errors import InvalidSessionError, TariffNotApplicableError
from ledger.tariff.model import (
    Candidate,
    Dimension,
    Phase,
    PriceComponent,
    Tariff,
    TariffRestrictions,
    parse_datetime,
    parse_tariff,
)
from ledger.tariff.money import ENGINE_CONTEXT, ZERO, Price, quantum
from ledger.tariff.periods import ChargingPeriod, format_datetime, parse_charging_periods

_MICRO = Decimal("0.000001")
_QTY = Decimal("0.0001")  # OCPI numbers: 4 decimals
_3600 = Decimal(3600)
_360000 = Decimal(360000)
_1000 = Decimal(1000)
_100000 = Decimal(100000)
_100 = Decimal(100)
_ONE_US = dt.timedelta(microseconds=1)

_E = Dimension.ENERGY
_T = Dimension.TIME
_P = Dimension.PARKING_TIME
_F = Dimension.FLAT

# time kinds for the step_size rule
_KIND_TIME = 0
_KIND_PARKING = 1
_KIND_RESERVATION = 2


@lru_cache(maxsize=512)
def _zone_by_name(name: str) -> dt.tzinfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSessionError(f"unknown time zone {name!r}") from None


def resolve_zone(time_zone: str | dt.tzinfo | None) -> dt.tzinfo:
    """IANA name (the OCPI Location ``time_zone``) or tzinfo -> tzinfo; None means UTC."""
    if time_zone is None:
        return dt.UTC
    if isinstance(time_zone, dt.tzinfo):
        return time_zone
    if not isinstance(time_zone, str):
        raise InvalidSessionError(f"time_zone must be an IANA name, got {time_zone!r}")
    return _zone_by_name(time_zone)


def seconds_of(delta: dt.timedelta) -> Decimal:
    """Exact seconds of a timedelta as Decimal (microsecond resolution)."""
    return Decimal(delta // _ONE_US).scaleb(-6)


def hours_to_seconds(hours: Decimal) -> Decimal:
    return (hours * _3600).quantize(_MICRO, rounding=ROUND_HALF_UP)


def first_match(
    candidates: tuple[Candidate, ...],
    local: dt.datetime | None,
    energy_before_wh: Decimal,
    duration: dt.timedelta,
    current_low: Decimal | None,
    current_high: Decimal | None,
    power_low: Decimal | None,
    power_high: Decimal | None,
) -> tuple[int, PriceComponent] | None:
    """OCPI's rule: the first candidate whose element restrictions match supplies the price."""
    for index, component, restrictions in candidates:
        if restrictions is None or restrictions.matches(
            local, energy_before_wh, duration, current_low, current_high, power_low, power_high
        ):
            return index, component
    return None


def electrical_bounds(dims: Mapping[str, Decimal]) -> tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]:
    """(current_low, current_high, power_low, power_high) of a period, see module docstring."""
    avg_c = dims.get("CURRENT")
    min_c = dims.get("MIN_CURRENT")
    max_c = dims.get("MAX_CURRENT")
    avg_p = dims.get("POWER")
    min_p = dims.get("MIN_POWER")
    max_p = dims.get("MAX_POWER")
    c_low = min_c if min_c is not None else (avg_c if avg_c is not None else max_c)
    c_high = max_c if max_c is not None else (avg_c if avg_c is not None else min_c)
    p_low = min_p if min_p is not None else (avg_p if avg_p is not None else max_p)
    p_high = max_p if max_p is not None else (avg_p if avg_p is not None else min_p)
    return c_low, c_high, p_low, p_high


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BilledComponent:
    """What one price component billed in one period (exact, unrounded).

    ``amount`` and ``step_amount`` are in engine units (Wh for ENERGY, seconds for TIME and
    PARKING_TIME, None for FLAT); the OCPI-unit views and the cost are computed on access.
    """

    dimension: Dimension
    element_index: int
    amount: Decimal | None
    #: the part added by step_size rounding (engine units)
    step_amount: Decimal
    component: PriceComponent
    #: which CDR total it belongs to: "fixed", "energy", "time", "parking" or "reservation"
    total: str

    @property
    def price(self) -> Decimal:
        return self.component.price

    @property
    def vat(self) -> Decimal | None:
        return self.component.vat

    @property
    def volume(self) -> Decimal:
        """Billed volume in OCPI units (kWh, hours; 1 for FLAT), step_size extra included."""
        if self.amount is None:
            return Decimal(1)
        with localcontext(ENGINE_CONTEXT):
            return (self.amount + self.step_amount) / (_1000 if self.dimension is _E else _3600)

    @property
    def step_extra(self) -> Decimal:
        """The part of ``volume`` added by step_size rounding (OCPI units)."""
        if self.amount is None:
            return ZERO
        with localcontext(ENGINE_CONTEXT):
            return self.step_amount / (_1000 if self.dimension is _E else _3600)

    @property
    def cost(self) -> Price:
        c = self.component
        with localcontext(ENGINE_CONTEXT):
            if self.amount is None:
                return Price(c.price, c.price * c.vat_factor / _100)
            excl = (self.amount + self.step_amount) * c.price / (_1000 if self.dimension is _E else _3600)
            return Price(excl, excl * c.vat_factor / _100)


@dataclass(frozen=True, slots=True)
class PricedPeriod:
    """A charging period of the priced CDR: the input period, its end, and what it billed."""

    start_date_time: dt.datetime
    end_date_time: dt.datetime
    dimensions: Mapping[str, Decimal]
    tariff_id: str
    phase: Phase
    components: tuple[BilledComponent, ...]

    def to_ocpi(self) -> dict[str, Any]:
        return {
            "start_date_time": format_datetime(self.start_date_time),
            "dimensions": [{"type": k, "volume": v} for k, v in self.dimensions.items()],
            "tariff_id": self.tariff_id,
        }


#: names of the Price totals of a CDR, in OCPI order
COST_TOTALS: tuple[str, ...] = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)
QUANTITY_TOTALS: tuple[str, ...] = ("total_energy", "total_time", "total_parking_time")


@dataclass(frozen=True, slots=True)
class PricedCdr:
    """The priced session: OCPI CDR totals (rounded per the module rule) plus the breakdown."""

    tariff_id: str
    currency: str
    start_date_time: dt.datetime
    end_date_time: dt.datetime
    charging_periods: tuple[PricedPeriod, ...]
    total_cost: Price
    total_fixed_cost: Price
    total_energy: Decimal
    total_energy_cost: Price
    total_time: Decimal
    total_time_cost: Price
    total_parking_time: Decimal
    total_parking_cost: Price
    total_reservation_cost: Price
    #: total before min_price/max_price, rounded the same way
    uncapped_total_cost: Price
    #: the exact total after min/max (what total_cost rounds)
    total_cost_exact: Price
    reservation_expired: bool

    @property
    def price_limit_applied(self) -> bool:
        return self.uncapped_total_cost != self.total_cost

    def totals(self) -> dict[str, Price | Decimal]:
        """All OCPI totals by field name."""
        return {name: getattr(self, name) for name in (*COST_TOTALS, *QUANTITY_TOTALS)}

    def to_ocpi(self) -> dict[str, Any]:
        """The CDR fields this engine owns, in OCPI JSON shape (Decimal numbers)."""
        out: dict[str, Any] = {
            "start_date_time": format_datetime(self.start_date_time),
            "end_date_time": format_datetime(self.end_date_time),
            "currency": self.currency,
            "charging_periods": [p.to_ocpi() for p in self.charging_periods],
            "total_energy": self.total_energy,
            "total_time": self.total_time,
            "total_parking_time": self.total_parking_time,
        }
        for name in COST_TOTALS:
            out[name] = getattr(self, name).to_ocpi()
        return out


# --------------------------------------------------------------------------------------------
# pricing
# --------------------------------------------------------------------------------------------


def price_session(
    tariff: Tariff | Mapping[str, Any],
    charging_periods: Sequence[ChargingPeriod | Mapping[str, Any]],
    *,
    start: dt.datetime | str | None = None,
    end: dt.datetime | str | None = None,
    time_zone: str | dt.tzinfo | None = "UTC",
    reservation_expired: bool | None = None,
    check_validity: bool = True,
) -> PricedCdr:
    """Price a session's charging periods with ``tariff`` and return the CDR totals.

    ``start``/``end``: the session (CDR) start and end; default start = first period start,
    default end = last period start + its TIME/PARKING_TIME/RESERVATION_TIME.  ``time_zone``:
    the location's IANA zone (restrictions are local time).  ``reservation_expired``: None
    infers it (reservation periods and no session periods).  ``check_validity``: refuse a
    tariff whose ``start_date_time``/``end_date_time`` do not cover the session start.
    Raises :class:`InvalidSessionError`, :class:`TariffNotApplicableError`,
    :class:`InvalidTariffError`.
    """
    tariff = parse_tariff(tariff)
    if charging_periods and not isinstance(charging_periods[0], ChargingPeriod):
        periods: Sequence[ChargingPeriod] = parse_charging_periods(charging_periods)
    else:
        periods = charging_periods
    if not periods:
        raise InvalidSessionError("a session needs at least one charging period")
    tz = resolve_zone(time_zone)
    if isinstance(start, str):
        start = _parse_session_time(start, "start")
    if isinstance(end, str):
        end = _parse_session_time(end, "end")
    for value, what in ((start, "start"), (end, "end")):
        if value is not None and not isinstance(value, dt.datetime):
            raise InvalidSessionError(f"session {what} must be a datetime or RFC 3339 string, got {value!r}")
    with localcontext(ENGINE_CONTEXT):
        return _price(tariff, periods, start, end, tz, reservation_expired, check_validity)


def _parse_session_time(raw: str, what: str) -> dt.datetime:
    return parse_datetime(raw, f"session {what}", InvalidSessionError)


def _utc_starts(periods: Sequence[ChargingPeriod], session_start: dt.datetime) -> list[dt.datetime]:
    """Period starts as UTC instants, checked for order.

    Everything is normalised to UTC because Python subtracts two datetimes that share a tzinfo
    by wall clock, which is wrong across a DST change.
    """
    previous = session_start
    starts: list[dt.datetime] = []
    for i, period in enumerate(periods):
        if not isinstance(period, ChargingPeriod):
            raise InvalidSessionError(f"charging_periods[{i}] is not a ChargingPeriod")
        start = period.start
        if start.tzinfo is not dt.UTC:
            if start.tzinfo is None:
                raise InvalidSessionError(f"charging_periods[{i}].start_date_time has no time zone")
            start = start.astimezone(dt.UTC)
        if start < previous:
            what = "the session start" if i == 0 else f"charging_periods[{i - 1}]"
            raise InvalidSessionError(f"charging_periods[{i}] starts before {what} ({start} < {previous})")
        starts.append(start)
        previous = start
    return starts


def _price(
    tariff: Tariff,
    periods: Sequence[ChargingPeriod],
    start: dt.datetime | None,
    end: dt.datetime | None,
    tz: dt.tzinfo,
    reservation_expired: bool | None,
    check_validity: bool,
) -> PricedCdr:
    last = periods[-1]
    if start is None:
        session_start = periods[0].start
    elif start.tzinfo is None:
        raise InvalidSessionError("session start has no time zone")
    else:
        session_start = start
    if session_start.tzinfo is not dt.UTC:
        session_start = session_start.astimezone(dt.UTC)
    starts = _utc_starts(periods, session_start)
    last_start = starts[-1]
    if end is None:
        d = last.dimensions
        hours = d.get("TIME", ZERO) + d.get("PARKING_TIME", ZERO) + d.get("RESERVATION_TIME", ZERO)
        end = last_start + dt.timedelta(microseconds=int(hours_to_seconds(hours) * 1_000_000))
    elif end.tzinfo is None:
        raise InvalidSessionError("session end has no time zone")
    elif end.tzinfo is not dt.UTC:
        end = end.astimezone(dt.UTC)
    if end < last_start:
        raise InvalidSessionError(f"session ends ({end}) before its last charging period starts ({last_start})")
    if check_validity:
        if tariff.start_date_time is not None and session_start < tariff.start_date_time:
            raise TariffNotApplicableError(
                f"tariff {tariff.id} is valid from {tariff.start_date_time}, the session started {session_start}"
            )
        if tariff.end_date_time is not None and session_start > tariff.end_date_time:
            raise TariffNotApplicableError(
                f"tariff {tariff.id} expired at {tariff.end_date_time}, the session started {session_start}"
            )

    tariff_id = tariff.id
    n = len(periods)
    # phases
    n_reservation = 0
    for period in periods:
        if "RESERVATION_TIME" in period.dimensions:
            n_reservation += 1
        else:
            break
    for i in range(n_reservation, n):
        if "RESERVATION_TIME" in periods[i].dimensions:
            raise InvalidSessionError(f"charging_periods[{i}] is a reservation period after the session started")
    expired = (n_reservation == n) if reservation_expired is None else bool(reservation_expired)
    session_phase_start = starts[n_reservation] if n_reservation < n else end

    candidates = tariff.candidates
    res_phase = Phase.RESERVATION_EXPIRED if expired else Phase.RESERVATION
    res_cands = candidates[res_phase] if n_reservation else None
    ses_cands = candidates[Phase.SESSION]
    uses_local = tariff.uses_local_time
    uses_elec = tariff.uses_electrical
    none4: tuple[None, None, None, None] = (None, None, None, None)

    # accumulators (numerators: excl = sum(q * price), incl = sum(q * price * (100 + vat)))
    e_ex = e_in = t_ex = t_in = p_ex = p_in = r_ex = r_in = ZERO
    fixed_ex = fixed_in = fpark_ex = fpark_in = fres_ex = fres_in = ZERO
    total_energy = total_parking_h = ZERO
    energy_before = ZERO  # Wh, session phase only
    priced_wh = ZERO
    priced_s = [ZERO, ZERO, ZERO]
    last_energy: tuple[int, int, PriceComponent] | None = None  # (period, slot, component)
    last_time: tuple[int, int, int, PriceComponent] | None = None  # (period, slot, kind, component)
    # per period: rows [dimension, element, base amount, step extra, component, total-name]
    billed: list[list[list[Any]]] = []
    ends: list[dt.datetime] = []

    for i in range(n):
        period = periods[i]
        dims = period.dimensions
        p_start = starts[i]
        p_end = starts[i + 1] if i + 1 < n else end
        ends.append(p_end)
        if period.tariff_id is not None and period.tariff_id != tariff_id:
            raise TariffNotApplicableError(
                f"charging_periods[{i}] is for tariff {period.tariff_id!r}, priced with {tariff_id!r} "
                "(CDRs switching tariffs mid-session are not supported)"
            )
        rows: list[list[Any]] = []
        billed.append(rows)
        local = p_start.astimezone(tz) if uses_local else None
        c_low, c_high, p_low, p_high = electrical_bounds(dims) if uses_elec else none4

        if i < n_reservation:
            assert res_cands is not None
            duration = p_start - session_start
            if dims.get("ENERGY", ZERO) > ZERO:
                raise InvalidSessionError(f"charging_periods[{i}] is a reservation period but reports energy")
            if i == 0:
                hit = first_match(res_cands[_F], local, ZERO, duration, c_low, c_high, p_low, p_high)
                if hit is not None:
                    comp = hit[1]
                    fres_ex += comp.price
                    fres_in += comp.price * comp.vat_factor / _100
                    rows.append([_F, hit[0], None, ZERO, comp, "reservation"])
            res_s = hours_to_seconds(dims["RESERVATION_TIME"])
            if res_s:
                hit = first_match(res_cands[_T], local, ZERO, duration, c_low, c_high, p_low, p_high)
                if hit is not None:
                    comp = hit[1]
                    r_ex += res_s * comp.price
                    r_in += res_s * comp.price * comp.vat_factor
                    priced_s[_KIND_RESERVATION] += res_s
                    last_time = (i, len(rows), _KIND_RESERVATION, comp)
                    rows.append([_T, hit[0], res_s, ZERO, comp, "reservation"])
            continue

        duration = p_start - session_phase_start
        energy_kwh = dims.get("ENERGY")
        if i == n_reservation:
            hit = first_match(ses_cands[_F], local, energy_before, duration, c_low, c_high, p_low, p_high)
            if hit is not None:
                comp = hit[1]
                flat_in = comp.price * comp.vat_factor / _100
                if hit[0] in tariff.parking_only_elements:
                    fpark_ex += comp.price
                    fpark_in += flat_in
                    rows.append([_F, hit[0], None, ZERO, comp, "parking"])
                else:
                    fixed_ex += comp.price
                    fixed_in += flat_in
                    rows.append([_F, hit[0], None, ZERO, comp, "fixed"])
        if energy_kwh is not None and energy_kwh:
            total_energy += energy_kwh
            wh = energy_kwh * _1000
            hit = first_match(ses_cands[_E], local, energy_before, duration, c_low, c_high, p_low, p_high)
            if hit is not None:
                comp = hit[1]
                e_ex += wh * comp.price
                e_in += wh * comp.price * comp.vat_factor
                priced_wh += wh
                last_energy = (i, len(rows), comp)
                rows.append([_E, hit[0], wh, ZERO, comp, "energy"])
        else:
            wh = ZERO
        time_h = dims.get("TIME")
        parking_h = dims.get("PARKING_TIME")
        if time_h is None and parking_h is None:
            time_s = seconds_of(p_end - p_start)
            parking_s = ZERO
        else:
            time_s = ZERO if time_h is None else hours_to_seconds(time_h)
            if parking_h is None:
                parking_s = ZERO
            else:
                parking_s = hours_to_seconds(parking_h)
                total_parking_h += parking_h
        if time_s:
            hit = first_match(ses_cands[_T], local, energy_before, duration, c_low, c_high, p_low, p_high)
            if hit is not None:
                comp = hit[1]
                t_ex += time_s * comp.price
                t_in += time_s * comp.price * comp.vat_factor
                priced_s[_KIND_TIME] += time_s
                last_time = (i, len(rows), _KIND_TIME, comp)
                rows.append([_T, hit[0], time_s, ZERO, comp, "time"])
        if parking_s:
            hit = first_match(ses_cands[_P], local, energy_before, duration, c_low, c_high, p_low, p_high)
            if hit is not None:
                comp = hit[1]
                p_ex += parking_s * comp.price
                p_in += parking_s * comp.price * comp.vat_factor
                priced_s[_KIND_PARKING] += parking_s
                last_time = (i, len(rows), _KIND_PARKING, comp)
                rows.append([_P, hit[0], parking_s, ZERO, comp, "parking"])
        energy_before += wh

    # step_size: once for ENERGY, once for the time-based quantities (see module docstring)
    if last_energy is not None:
        i, slot, comp = last_energy
        if comp.step_size > 0:
            extra = _round_up(priced_wh, comp.step_size) - priced_wh
            if extra:
                e_ex += extra * comp.price
                e_in += extra * comp.price * comp.vat_factor
                billed[i][slot][3] = extra
    if last_time is not None:
        i, slot, kind, comp = last_time
        if comp.step_size > 0:
            total_s = priced_s[kind]
            extra = _round_up(total_s, comp.step_size) - total_s
            if extra:
                if kind == _KIND_TIME:
                    t_ex += extra * comp.price
                    t_in += extra * comp.price * comp.vat_factor
                elif kind == _KIND_PARKING:
                    p_ex += extra * comp.price
                    p_in += extra * comp.price * comp.vat_factor
                else:
                    r_ex += extra * comp.price
                    r_in += extra * comp.price * comp.vat_factor
                billed[i][slot][3] = extra

    q = quantum(tariff.currency)
    flats_ex = fixed_ex + fpark_ex + fres_ex
    flats_in = fixed_in + fpark_in + fres_in
    total_ex = flats_ex + e_ex / _1000 + (t_ex + p_ex + r_ex) / _3600
    total_in = flats_in + e_in / _100000 + (t_in + p_in + r_in) / _360000
    uncapped = Price(_r(total_ex, q), _r(total_in, q))
    if tariff.min_price is not None:
        if total_ex < tariff.min_price.excl_vat:
            total_ex = tariff.min_price.excl_vat
        if tariff.min_price_has_incl and total_in < tariff.min_price.incl_vat:
            total_in = tariff.min_price.incl_vat
    if tariff.max_price is not None:
        if total_ex > tariff.max_price.excl_vat:
            total_ex = tariff.max_price.excl_vat
        if tariff.max_price_has_incl and total_in > tariff.max_price.incl_vat:
            total_in = tariff.max_price.incl_vat

    priced_periods = tuple(
        PricedPeriod(
            start_date_time=starts[i],
            end_date_time=ends[i],
            dimensions=periods[i].dimensions,
            tariff_id=tariff_id,
            phase=res_phase if i < n_reservation else Phase.SESSION,
            components=tuple(BilledComponent(*row) for row in billed[i]),
        )
        for i in range(n)
    )
    zero = _zero_price(q)
    return PricedCdr(
        tariff_id=tariff_id,
        currency=tariff.currency,
        start_date_time=session_start,
        end_date_time=end,
        charging_periods=priced_periods,
        total_cost=_bounded_total(tariff, total_ex, total_in, q),
        total_fixed_cost=Price(_r(fixed_ex, q), _r(fixed_in, q)) if fixed_ex or fixed_in else zero,
        total_energy=total_energy.quantize(_QTY, rounding=ROUND_HALF_UP),
        total_energy_cost=Price(_r(e_ex / _1000, q), _r(e_in / _100000, q)) if e_ex or e_in else zero,
        total_time=(seconds_of(end - session_start) / _3600).quantize(_QTY, rounding=ROUND_HALF_UP),
        total_time_cost=Price(_r(t_ex / _3600, q), _r(t_in / _360000, q)) if t_ex or t_in else zero,
        total_parking_time=total_parking_h.quantize(_QTY, rounding=ROUND_HALF_UP),
        total_parking_cost=(
            Price(_r(fpark_ex + p_ex / _3600, q), _r(fpark_in + p_in / _360000, q))
            if fpark_ex or fpark_in or p_ex or p_in
            else zero
        ),
        total_reservation_cost=(
            Price(_r(fres_ex + r_ex / _3600, q), _r(fres_in + r_in / _360000, q))
            if fres_ex or fres_in or r_ex or r_in
            else zero
        ),
        uncapped_total_cost=uncapped,
        total_cost_exact=Price(total_ex, total_in),
        reservation_expired=expired if n_reservation else False,
    )


@lru_cache(maxsize=16)
def _zero_price(q: Decimal) -> Price:
    return Price(ZERO.quantize(q), ZERO.quantize(q))


def _bounded_total(tariff: Tariff, total_ex: Decimal, total_in: Decimal, q: Decimal) -> Price:
    """Round the (already bounded) exact total; a bound with more digits than the currency has
    is itself rounded inwards (max down, min up) so the reported total never crosses it."""
    ex = _r(total_ex, q)
    inc = _r(total_in, q)
    if tariff.max_price is not None:
        ex = min(ex, tariff.max_price.excl_vat.quantize(q, rounding=ROUND_FLOOR))
        if tariff.max_price_has_incl:
            inc = min(inc, tariff.max_price.incl_vat.quantize(q, rounding=ROUND_FLOOR))
    if tariff.min_price is not None:
        ex = max(ex, tariff.min_price.excl_vat.quantize(q, rounding=ROUND_CEILING))
        if tariff.min_price_has_incl:
            inc = max(inc, tariff.min_price.incl_vat.quantize(q, rounding=ROUND_CEILING))
    return Price(ex, inc)


def _r(amount: Decimal, q: Decimal) -> Decimal:
    """Half-up to the currency quantum (the package's rounding rule; runs in ENGINE_CONTEXT)."""
    return amount.quantize(q, ROUND_HALF_UP)


def _round_up(amount: Decimal, step: int) -> Decimal:
    return (amount / step).to_integral_value(rounding=ROUND_CEILING) * step


__all__ = [
    "COST_TOTALS",
    "QUANTITY_TOTALS",
    "BilledComponent",
    "PricedCdr",
    "PricedPeriod",
    "TariffRestrictions",
    "electrical_bounds",
    "first_match",
    "price_session",
    "resolve_zone",
]
