"""A session's samples -> OCPI-style charging periods, for pricing.  Pure: no I/O.

`charging_periods(samples, started_at=..., stopped_at=..., total_energy_wh=...)` takes the session's
SessionMeterSample records (any order) and returns OCPI 2.2.1 ChargingPeriod-shaped dicts:
`{"start_date_time": datetime, "dimensions": [{"type": "ENERGY", "volume": Decimal}, ...]}`.  A new period starts
whenever the session switches between *charging* and *parking* (plugged in, energy not flowing) or *unplugged*.

How each stretch between two consecutive samples is classed, first rule that knows wins:
1. 2.0.1 chargingState in force (carried forward from the last sample that had one): Charging and SuspendedEVSE
   (the charger, not the EV, paused: the driver is not parking) are charging; EVConnected and SuspendedEV are
   parking; Idle (no EV connected) is unplugged.
2. Energy measured across the stretch itself (a register reading at both ends): an average power above
   `idle_power_w` is charging, otherwise parking.  Measured energy beats an instantaneous power sample.
3. Power (1.6): the last known Power.Active.Import above `idle_power_w` is charging, otherwise parking.
4. Energy over the smallest stretch between two register readings that contains it, as in 2.
5. Nothing known: charging (never bill parking on no evidence).
The stretch from the start to the first sample has no state, power or register reading at its start, so it is
charging (rule 5): the start baseline may have been inferred, so "no energy yet" is no evidence of parking.

Dimensions per period (OCPI units): ENERGY kWh (charging periods always, others only when non-zero), TIME hours
(charging), PARKING_TIME hours (parking), MAX_POWER kW and MAX_CURRENT A (charging periods, when a sample in
the period or at its ends has them).  Volumes
are Decimal: kWh to 3 decimals (Wh), hours to 6 decimals (3.6 ms), rounded as running totals so that the periods
add up exactly to the rounded session energy and duration.  Cumulative energy is the running maximum of
the samples' `energy_wh` in time order; when `total_energy_wh` (SessionStopped.energy_wh) is given the periods'
ENERGY adds up to exactly it: cumulative energy is capped at it and any remainder (energy after the last sample)
goes to the last charging period.  An unplugged period carries ENERGY only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping

CHARGING, PARKING, UNPLUGGED = "charging", "parking", "unplugged"
_STATE_CLASS = {"Charging": CHARGING, "SuspendedEVSE": CHARGING, "EVConnected": PARKING, "SuspendedEV": PARKING,
                "Idle": UNPLUGGED}
_KWH = Decimal("0.001")
_HOURS = Decimal("0.000001")


@dataclass
class _Point:
    at: datetime
    energy_wh: Decimal
    has_register: bool
    power_w: Decimal | None
    current_a: Decimal | None
    charging_state: str | None


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _seconds(a: datetime, b: datetime) -> Decimal:
    delta = b - a
    return Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)


def charging_periods(samples: Iterable[Mapping[str, Any]], *, started_at: datetime,
                     stopped_at: datetime | None = None, total_energy_wh: float | Decimal | None = None,
                     idle_power_w: Decimal = Decimal(100)) -> list[dict[str, Any]]:
    """OCPI-style charging periods of one session (module docstring for the rules)."""
    rows = sorted((s for s in samples if s["at"] >= started_at and (stopped_at is None or s["at"] <= stopped_at)),
                  key=lambda s: s["at"])
    end = stopped_at or (rows[-1]["at"] if rows else started_at)
    total = _d(total_energy_wh)
    points: list[_Point] = [_Point(started_at, Decimal(0), False, None, None, None)]
    running, state = Decimal(0), None
    for s in rows:
        running = max(running, _d(s.get("energy_wh")) or Decimal(0))
        if total is not None:
            running = min(running, total)
        state = s.get("charging_state") or state
        points.append(_Point(s["at"], running, s.get("register_wh") is not None, _d(s.get("power_w")),
                             _d(s.get("current_a")), state))
    points.append(_Point(end, running, False, None, None, state))

    # the register stretches: average power between consecutive points that read the register
    reg = [i for i, p in enumerate(points[:-1]) if p.has_register]
    stretch_power: dict[int, Decimal] = {}
    for a, b in zip(reg, reg[1:]):
        secs = _seconds(points[a].at, points[b].at)
        avg = (points[b].energy_wh - points[a].energy_wh) * 3600 / secs if secs > 0 else None
        for i in range(a, b):
            if avg is not None:
                stretch_power[i] = avg

    classes: list[str] = []
    last_power: Decimal | None = None
    for i in range(len(points) - 1):
        p = points[i]
        if p.power_w is not None:
            last_power = p.power_w
        direct = p.has_register and points[i + 1].has_register and i in stretch_power
        if p.charging_state in _STATE_CLASS:
            cls = _STATE_CLASS[p.charging_state]
        elif direct:
            cls = CHARGING if stretch_power[i] > idle_power_w else PARKING
        elif last_power is not None:
            cls = CHARGING if last_power > idle_power_w else PARKING
        elif i in stretch_power:
            cls = CHARGING if stretch_power[i] > idle_power_w else PARKING
        else:
            cls = CHARGING
        classes.append(cls)

    periods: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for i, cls in enumerate(classes):
        a, b = points[i], points[i + 1]
        if b.at <= a.at and b.energy_wh == a.energy_wh:
            continue  # an instant: nothing to bill
        if current is None or current["class"] != cls:
            current = {"class": cls, "start": a.at, "seconds": Decimal(0), "energy": Decimal(0),
                       "max_power": None, "max_current": None}
            periods.append(current)
        current["seconds"] += _seconds(a.at, b.at)
        current["energy"] += b.energy_wh - a.energy_wh
        if cls == CHARGING:  # samples at either end of a charging stretch
            for value, key in ((a.power_w, "max_power"), (a.current_a, "max_current"),
                               (b.power_w, "max_power"), (b.current_a, "max_current")):
                if value is not None and (current[key] is None or value > current[key]):
                    current[key] = value
    if not periods:
        periods.append({"class": CHARGING, "start": started_at, "seconds": Decimal(0), "energy": Decimal(0),
                        "max_power": None, "max_current": None})
    if total is not None:
        remainder = total - running
        if remainder > 0:
            target = next((p for p in reversed(periods) if p["class"] == CHARGING), periods[-1])
            target["energy"] += remainder
    out, energy_so_far, seconds_so_far = [], Decimal(0), Decimal(0)
    for p in periods:  # rounded as running totals, so the periods add up exactly to the rounded session totals
        kwh = ((energy_so_far + p["energy"]) / 1000).quantize(_KWH) - (energy_so_far / 1000).quantize(_KWH)
        hours = ((seconds_so_far + p["seconds"]) / 3600).quantize(_HOURS) - (seconds_so_far / 3600).quantize(_HOURS)
        energy_so_far += p["energy"]
        seconds_so_far += p["seconds"]
        out.append(_ocpi(p, kwh, hours))
    return out


def _ocpi(p: Mapping[str, Any], kwh: Decimal, hours: Decimal) -> dict[str, Any]:
    dims: list[dict[str, Any]] = []
    if p["class"] == CHARGING or kwh != 0:
        dims.append({"type": "ENERGY", "volume": kwh})
    if p["class"] == CHARGING:
        dims.append({"type": "TIME", "volume": hours})
    elif p["class"] == PARKING:
        dims.append({"type": "PARKING_TIME", "volume": hours})
    if p["max_power"] is not None:
        dims.append({"type": "MAX_POWER", "volume": (p["max_power"] / 1000).quantize(_KWH)})
    if p["max_current"] is not None:
        dims.append({"type": "MAX_CURRENT", "volume": p["max_current"]})
    if not dims:
        dims.append({"type": "ENERGY", "volume": kwh})
    return {"start_date_time": p["start"], "dimensions": dims}
