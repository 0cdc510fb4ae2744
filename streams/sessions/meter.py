"""OCPP meter values -> typed quantities (Wh, W, A, V, %).  Pure: no I/O.

One `meterValue` element (1.6 `MeterValues`/`transactionData`, 2.0.1 `TransactionEvent.meterValue`) is a timestamp
and a list of sampled values.  This module reads the few quantities the session processor types (the active energy
import *register*, active import power, import current, state of charge, voltage) and leaves everything else to
the verbatim `measurands` JSON of the sample event, so nothing a charger sent is lost to this mapping.

Rules, and why:
- Units: 1.6 sends values as strings with an optional `unit` (`Wh` default for energy, `kWh`, `W`, `kW`, ...);
  2.0.1 sends numbers with `unitOfMeasure {unit, multiplier}` (value x 10^multiplier).  Every value is converted
  with Decimal, so 12.345 kWh is exactly 12345 Wh.  A unit we do not know for a measurand (say `varh` on an active
  energy register) leaves the typed field empty rather than guessing.
- Only *registers* count as energy (`Energy.Active.Import.Register`): an `.Interval` measurand is a delta and is
  never mistaken for a register.  A negative, non-finite or unparsable register (1.6 `SignedData`, "abc") is not
  a reading.
- Phases: an unphased value wins; otherwise energy and power are the sum over L1..L3 (Lx-N counted once per
  phase), current is the highest phase current (what a fuse or a MAX_CURRENT tariff sees), voltage is the mean
  phase-to-neutral voltage (phase-to-phase only when no phase-to-neutral value exists).
- Location: the billing meter is at the outlet, so values located at the `Outlet` (or with no location, the
  default) win; `Inlet`/`Cable` values are used only when a sample has no outlet value.  State of charge is
  taken from any location (it is measured in the EV).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"
SOC = "SoC"

_SCALE: dict[str, dict[str, Decimal]] = {
    ENERGY_REGISTER: {"wh": Decimal(1), "kwh": Decimal(1000), "mwh": Decimal(1_000_000)},
    POWER: {"w": Decimal(1), "kw": Decimal(1000), "mw": Decimal(1_000_000)},
    CURRENT: {"a": Decimal(1)},
    VOLTAGE: {"v": Decimal(1), "kv": Decimal(1000)},
    SOC: {"percent": Decimal(1), "%": Decimal(1)},
}
#: the unit OCPP implies when a sampled value names none
_DEFAULT_UNIT = {ENERGY_REGISTER: "wh", POWER: "w", CURRENT: "a", VOLTAGE: "v", SOC: "percent"}
_PHASE = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}
_LINE_TO_LINE = ("L1-L2", "L2-L3", "L3-L1")
_OUTLET = (None, "Outlet")
_FALLBACK = ("Inlet", "Cable")


@dataclass(frozen=True)
class Quantity:
    """One sampled value, converted: `value` is in the measurand's base unit (Wh, W, A, V, %), or None."""

    measurand: str
    value: Decimal | None
    phase: str | None
    location: str | None
    context: str | None


@dataclass(frozen=True)
class Sample:
    """The typed reading of one meterValue element."""

    at_text: str
    register_wh: Decimal | None
    power_w: Decimal | None
    current_a: Decimal | None
    voltage_v: Decimal | None
    soc_percent: Decimal | None
    context: str | None
    #: the element's sampledValue list, verbatim
    sampled: list[Any]


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def quantity(sv: Mapping[str, Any], ocpp_version: str) -> Quantity:
    """Convert one sampledValue of either protocol version."""
    measurand = sv.get("measurand") or ENERGY_REGISTER  # both versions: the default is the energy register
    value = _decimal(sv.get("value"))
    if ocpp_version.startswith("ocpp1"):
        if sv.get("format") == "SignedData":
            value = None
        unit = sv.get("unit")
        multiplier = 0
    else:
        uom = sv.get("unitOfMeasure") or {}
        unit = uom.get("unit")
        try:
            multiplier = int(uom.get("multiplier", 0) or 0)
        except (TypeError, ValueError):
            value, multiplier = None, 0
    scales = _SCALE.get(measurand)
    if scales is None or value is None:
        return Quantity(measurand, None, sv.get("phase"), sv.get("location"), sv.get("context"))
    factor = scales.get((unit or _DEFAULT_UNIT[measurand]).lower())
    if factor is None or not -9 <= multiplier <= 9:
        converted = None
    else:
        converted = value.scaleb(multiplier) * factor
        if measurand == ENERGY_REGISTER and converted < 0:
            converted = None  # a register never reads negative: not a reading
    return Quantity(measurand, converted, sv.get("phase"), sv.get("location"), sv.get("context"))


def _pick(qs: list[Quantity], measurand: str, how: str) -> Decimal | None:
    """The value of `measurand` in a sample, combining phases as `how` says (sum, max, mean)."""
    mine = [q for q in qs if q.measurand == measurand and q.value is not None]
    if not mine:
        return None
    if measurand != SOC:
        outlet = [q for q in mine if q.location in _OUTLET]
        mine = outlet or [q for q in mine if q.location in _FALLBACK]
    unphased = [q for q in mine if q.phase is None]
    if unphased:
        return unphased[0].value
    per_phase: dict[str, Decimal] = {}
    for q in mine:
        if q.phase in _PHASE:
            per_phase.setdefault(_PHASE[q.phase], q.value)  # type: ignore[arg-type]
    if how == "mean" and not per_phase:
        l2l = [q.value for q in mine if q.phase in _LINE_TO_LINE]
        return sum(l2l, Decimal(0)) / len(l2l) if l2l else None  # type: ignore[arg-type]
    if not per_phase:
        return None  # only a neutral-conductor value: not a total
    values = list(per_phase.values())
    if how == "sum":
        return sum(values, Decimal(0))
    if how == "max":
        return max(values)
    return sum(values, Decimal(0)) / len(values)


def read_sample(element: Mapping[str, Any], ocpp_version: str) -> Sample:
    """Type one meterValue element (`{"timestamp", "sampledValue": [...]}`)."""
    sampled = list(element.get("sampledValue") or [])
    qs = [quantity(sv, ocpp_version) for sv in sampled if isinstance(sv, Mapping)]
    register = _pick(qs, ENERGY_REGISTER, "sum")
    context = next((q.context for q in qs if q.measurand == ENERGY_REGISTER and q.value is not None), None)
    if context is None and qs:
        context = qs[0].context
    return Sample(
        at_text=str(element.get("timestamp", "")),
        register_wh=register,
        power_w=_pick(qs, POWER, "sum"),
        current_a=_pick(qs, CURRENT, "max"),
        voltage_v=_pick(qs, VOLTAGE, "mean"),
        soc_percent=_pick(qs, SOC, "mean"),
        context=context,
        sampled=sampled,
    )


def register_in(elements: Iterable[Mapping[str, Any]], ocpp_version: str, context: str) -> Decimal | None:
    """The energy register of the first element whose register reading has `context` (e.g. Transaction.Begin)."""
    for el in elements:
        qs = [quantity(sv, ocpp_version) for sv in el.get("sampledValue") or [] if isinstance(sv, Mapping)]
        tagged = [q for q in qs if q.context == context]
        value = _pick(tagged, ENERGY_REGISTER, "sum")
        if value is not None:
            return value
    return None


def verbatim(sampled: list[Any]) -> str:
    """The sampledValue list as JSON text, keys as the charger sent them."""
    return json.dumps(sampled, separators=(",", ":"), ensure_ascii=False, default=str)
