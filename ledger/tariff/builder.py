"""Build OCPI charging periods from an OCPP session's meter samples, split where the tariff changes.

Why: OCPI requires a new charging period "every moment/event that has relevance for the total
costs" (``mod_cdrs``), and the engine prices each period whole by the element active at its
start.  A session we metered ourselves (OCPP MeterValues) therefore has to be cut at every
instant where the tariff's choice of element could change: local-time boundaries
(``start_time``/``end_time``, midnight for dates and weekdays, in the location's zone, DST
included), ``min/max_duration`` thresholds, ``min/max_kwh`` thresholds (found by linear
interpolation of the energy register), changes of power/current level (each sample interval has
one level: the sample at its start) and charging <-> parked changes.  Consecutive pieces in
which the same elements apply are merged again, so a flat tariff yields one period per
charging/parking stretch.

Sample semantics: ``energy_wh`` is the cumulative import register (Wh) and must never go down;
``power_w``/``current_a`` (optional) and ``charging`` hold from a sample until the next one;
the last sample ends the session.  Energy inside an interval is spread linearly in time.
Without a tariff only charging/parked changes split periods.

Invariants: the periods tile [first sample, last sample] without gaps; their ENERGY sums to the
register difference exactly; every period has TIME (charging) or PARKING_TIME (parked) equal to
its length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from ledger.tariff.engine import first_match, resolve_zone, seconds_of
from ledger.tariff.errors import InvalidSessionError
from ledger.tariff.model import SECONDS_PER_DAY, Dimension, Phase, Tariff, parse_tariff
from ledger.tariff.money import ENGINE_CONTEXT, ZERO, to_decimal
from ledger.tariff.periods import ChargingPeriod

_HOURS_Q = Decimal("1E-12")  # 3.6 ns: the engine recovers microseconds exactly
_WH_Q = Decimal("0.001")  # interpolated register values to the mWh (totals telescope exactly)
_3600 = Decimal(3600)
_1000 = Decimal(1000)


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One meter reading of a session (OCPP MeterValues, already decoded)."""

    timestamp: dt.datetime
    energy_wh: Decimal | int | float | str
    power_w: Decimal | int | float | str | None = None
    current_a: Decimal | int | float | str | None = None
    charging: bool = True


@dataclass(frozen=True, slots=True)
class BuiltSession:
    """Periods ready for :func:`ledger.tariff.engine.price_session` (pass ``start``/``end`` too)."""

    start: dt.datetime
    end: dt.datetime
    periods: tuple[ChargingPeriod, ...]


def _num(value: Any, where: str) -> Decimal:
    try:
        return to_decimal(value, where)
    except (TypeError, ValueError) as exc:
        raise InvalidSessionError(f"{where}: {exc}") from None


def build_charging_periods(
    samples: Sequence[MeterSample | Mapping[str, Any]],
    *,
    tariff: Tariff | Mapping[str, Any] | None = None,
    time_zone: str | dt.tzinfo | None = "UTC",
    reservation_start: dt.datetime | None = None,
) -> BuiltSession:
    """Turn meter samples into OCPI charging periods (see module docstring).

    ``reservation_start``: when the EVSE was reserved for this driver before the first sample,
    a RESERVATION_TIME period from then to the first sample is put in front.
    """
    if len(samples) < 2:
        raise InvalidSessionError("need at least two meter samples (start and end of the session)")
    tz = resolve_zone(time_zone)
    parsed_tariff = None if tariff is None else parse_tariff(tariff)
    with localcontext(ENGINE_CONTEXT):
        points = _validate(samples)
        return _build(points, parsed_tariff, tz, reservation_start)


# (t, energy Wh, power kW | None, current A | None, charging)
_Point = tuple[dt.datetime, Decimal, Decimal | None, Decimal | None, bool]


def _validate(samples: Sequence[MeterSample | Mapping[str, Any]]) -> list[_Point]:
    points: list[_Point] = []
    previous: _Point | None = None
    for i, raw in enumerate(samples):
        where = f"samples[{i}]"
        sample = raw if isinstance(raw, MeterSample) else MeterSample(**raw)
        t = sample.timestamp
        if not isinstance(t, dt.datetime) or t.tzinfo is None:
            raise InvalidSessionError(f"{where}.timestamp must be a time-zone aware datetime")
        t = t.astimezone(dt.UTC)  # same-tzinfo subtraction is wall-clock in Python: use UTC
        energy = _num(sample.energy_wh, f"{where}.energy_wh")
        power = None if sample.power_w is None else _num(sample.power_w, f"{where}.power_w")
        current = None if sample.current_a is None else _num(sample.current_a, f"{where}.current_a")
        if energy < ZERO:
            raise InvalidSessionError(f"{where}.energy_wh is negative ({energy})")
        if power is not None and power < ZERO:
            raise InvalidSessionError(f"{where}.power_w is negative ({power}); export is not billed here")
        if current is not None and current < ZERO:
            raise InvalidSessionError(f"{where}.current_a is negative ({current})")
        if previous is not None:
            if t <= previous[0]:
                raise InvalidSessionError(f"{where}.timestamp {t} is not after the previous sample ({previous[0]})")
            if energy < previous[1]:
                raise InvalidSessionError(
                    f"{where}: energy register went backwards ({previous[1]} -> {energy} Wh): negative energy"
                )
        point = (t, energy, None if power is None else power / _1000, current, bool(sample.charging))
        points.append(point)
        previous = point
    return points


def _split_times(tariff: Tariff, tz: dt.tzinfo, t0: dt.datetime, t_end: dt.datetime) -> list[dt.datetime]:
    """Instants strictly inside (t0, t_end) where a local-time or duration restriction can flip."""
    day_seconds: set[int] = set()
    durations: set[dt.timedelta] = set()
    for element in tariff.elements:
        r = element.restrictions
        if r is None or r.reservation is not None:
            continue
        for s in (r.start_time, r.end_time):
            if s is not None:
                day_seconds.add(s % SECONDS_PER_DAY)
        if r.start_date is not None or r.end_date is not None or r.day_of_week is not None:
            day_seconds.add(0)
        for d in (r.min_duration, r.max_duration):
            if d is not None:
                durations.add(d)
    out: list[dt.datetime] = []
    if day_seconds:
        day = t0.astimezone(tz).date() - dt.timedelta(days=1)
        last_day = t_end.astimezone(tz).date() + dt.timedelta(days=1)
        while day <= last_day:
            for s in day_seconds:
                local = dt.datetime(day.year, day.month, day.day, s // 3600, (s % 3600) // 60, tzinfo=tz)
                # a wall time repeated when clocks go back happens twice (fold 0 and 1)
                for instant in {local.astimezone(dt.UTC), local.replace(fold=1).astimezone(dt.UTC)}:
                    if t0 < instant < t_end:
                        out.append(instant)
            day += dt.timedelta(days=1)
        # a clock change moves the local time of day without any boundary being crossed
        out.extend(_offset_changes(tz, t0, t_end))
    for d in durations:
        instant = t0 + d
        if t0 < instant < t_end:
            out.append(instant)
    return out


def _offset_changes(tz: dt.tzinfo, t0: dt.datetime, t_end: dt.datetime) -> list[dt.datetime]:
    """UTC instants in (t0, t_end) where ``tz`` changes its UTC offset (DST).

    Compares the offset once a day and bisects over whole seconds where it differs (zone
    transitions fall on whole seconds), so any session length costs a few look-ups.
    """
    out: list[dt.datetime] = []
    a = t0.replace(microsecond=0)
    while a < t_end:
        b = min(a + dt.timedelta(days=1), t_end)
        offset = a.astimezone(tz).utcoffset()
        if b.astimezone(tz).utcoffset() != offset:
            lo, hi = 0, int((b - a).total_seconds()) + 1  # offset(a + lo) == offset != offset(a + hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if (a + dt.timedelta(seconds=mid)).astimezone(tz).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            change = a + dt.timedelta(seconds=hi)
            if t0 < change < t_end:
                out.append(change)
        a = b
    return out


def _energy_thresholds(tariff: Tariff) -> set[Decimal]:
    out: set[Decimal] = set()
    for element in tariff.elements:
        r = element.restrictions
        if r is None or r.reservation is not None:
            continue
        for wh in (r.min_wh, r.max_wh):
            if wh is not None and wh > ZERO:
                out.add(wh)
    return out


def _build(
    points: list[_Point], tariff: Tariff | None, tz: dt.tzinfo, reservation_start: dt.datetime | None
) -> BuiltSession:
    t0, e0 = points[0][0], points[0][1]
    t_end = points[-1][0]
    # cut points per sample interval: {interval index: {time: energy}}
    cuts: dict[int, dict[dt.datetime, Decimal]] = {}
    if tariff is not None:
        times = sorted(_split_times(tariff, tz, t0, t_end))
        j = 0
        for instant in times:
            while points[j + 1][0] <= instant:
                j += 1
            if points[j][0] == instant:
                continue
            ta, ea = points[j][0], points[j][1]
            tb, eb = points[j + 1][0], points[j + 1][1]
            energy = ea + (eb - ea) * seconds_of(instant - ta) / seconds_of(tb - ta)
            cuts.setdefault(j, {})[instant] = energy.quantize(_WH_Q, rounding=ROUND_HALF_UP)
        for threshold in _energy_thresholds(tariff):
            target = e0 + threshold
            for j in range(len(points) - 1):
                ea, eb = points[j][1], points[j + 1][1]
                if ea < target < eb:
                    ta, tb = points[j][0], points[j + 1][0]
                    micros = int((tb - ta) // dt.timedelta(microseconds=1) * (target - ea) / (eb - ea))
                    instant = ta + dt.timedelta(microseconds=micros)
                    if ta < instant < tb:
                        cuts.setdefault(j, {})[instant] = target  # exact threshold at the cut
                    break

    candidates = None if tariff is None else tariff.candidates[Phase.SESSION]
    uses_local = tariff is not None and tariff.uses_local_time
    groups: list[list[Any]] = []  # [signature, start, end, wh, c_lo, c_hi, p_lo, p_hi, charging]
    for j in range(len(points) - 1):
        ta, ea, power, current, charging = points[j]
        tb, eb = points[j + 1][0], points[j + 1][1]
        bounds = [(ta, ea)]
        for instant, energy in sorted(cuts.get(j, {}).items()):
            # keep the register monotone despite mWh quantisation next to an exact kWh cut
            bounds.append((instant, min(max(energy, bounds[-1][1]), eb)))
        bounds.append((tb, eb))
        for k in range(len(bounds) - 1):
            (pa, qa), (pb, qb) = bounds[k], bounds[k + 1]
            if candidates is None:
                signature: tuple[Any, ...] = (charging,)
            else:
                local = pa.astimezone(tz) if uses_local else None
                before = qa - e0
                duration = pa - t0
                args = (local, before, duration, current, current, power, power)
                energy_hit = first_match(candidates[Dimension.ENERGY], *args)
                time_dim = Dimension.TIME if charging else Dimension.PARKING_TIME
                time_hit = first_match(candidates[time_dim], *args)
                signature = (
                    charging,
                    None if energy_hit is None else energy_hit[0],
                    None if time_hit is None else time_hit[0],
                )
            if groups and groups[-1][0] == signature and groups[-1][2] == pa:
                g = groups[-1]
                g[2] = pb
                g[3] += qb - qa
                g[4], g[5] = _low(g[4], current), _high(g[5], current)
                g[6], g[7] = _low(g[6], power), _high(g[7], power)
            else:
                groups.append([signature, pa, pb, qb - qa, current, current, power, power, charging])

    periods: list[ChargingPeriod] = []
    start = t0
    if reservation_start is not None:
        if reservation_start.tzinfo is None:
            raise InvalidSessionError("reservation_start must be time-zone aware")
        reservation_start = reservation_start.astimezone(dt.UTC)
        if reservation_start > t0:
            raise InvalidSessionError("reservation_start is after the first meter sample")
        start = reservation_start
        hours = (seconds_of(t0 - reservation_start) / _3600).quantize(_HOURS_Q, rounding=ROUND_HALF_UP)
        periods.append(ChargingPeriod(reservation_start, {"RESERVATION_TIME": hours}))
    for _sig, pa, pb, wh, c_lo, c_hi, p_lo, p_hi, charging in groups:
        hours = (seconds_of(pb - pa) / _3600).quantize(_HOURS_Q, rounding=ROUND_HALF_UP)
        dims: dict[str, Decimal] = {"ENERGY": wh / _1000, ("TIME" if charging else "PARKING_TIME"): hours}
        if c_lo is not None:
            dims["MIN_CURRENT"] = c_lo
            dims["MAX_CURRENT"] = c_hi
        if p_lo is not None:
            dims["MIN_POWER"] = p_lo
            dims["MAX_POWER"] = p_hi
        periods.append(ChargingPeriod(pa, dims))
    return BuiltSession(start=start, end=t_end, periods=tuple(periods))


def _low(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def _high(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b
