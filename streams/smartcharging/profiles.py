"""Turn one EV's planned power per slot into OCPP charging-profile payloads (plain dicts, pure).

WHY these choices:

* **Absolute TxProfile** starting at the plan's first slot: the plan is in wall-clock slots, and a
  TxProfile binds it to the running transaction so it disappears when the car leaves.
* **Limits are rounded *down* to 0.1** (the schemas allow one decimal): the charger may never be told
  more than the optimiser planned, or the site limit tree could be exceeded.
* **Consecutive equal slots are merged** into one period: fewer periods, same meaning (the 2.0.1
  schema allows at most 1024 periods; 1.6 chargers commonly accept far fewer).
* **Amperes** are per phase: ``A = W / (phases * voltage)``; the default 230 V is the European
  line-to-neutral voltage, pass ``voltage=120``/``277`` etc. for other grids.
* Limits are returned as Python floats already rounded to one decimal; the OCPP library validates
  with ``parse_float=Decimal`` after JSON encoding, which is how the tests check them too.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Literal, Sequence

__all__ = ["periods", "tx_profile_v16", "set_charging_profile_v201"]

Unit = Literal["W", "A"]


def _floor1(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10


def periods(
    power_kw: Sequence[float], slot_seconds: int, unit: Unit = "W", phases: int = 3, voltage: float = 230.0
) -> list[dict]:
    """Merged schedule periods ``[{startPeriod, limit, numberPhases}]`` for slots of `slot_seconds`."""
    if unit not in ("W", "A"):
        raise ValueError("unit must be 'W' or 'A'")
    if phases not in (1, 2, 3) or voltage <= 0 or slot_seconds <= 0:
        raise ValueError("phases must be 1..3, voltage and slot_seconds positive")
    out: list[dict] = []
    for i, p in enumerate(power_kw):
        w = max(0.0, float(p)) * 1000.0
        limit = _floor1(w if unit == "W" else w / (phases * voltage))
        if out and out[-1]["limit"] == limit:
            continue
        out.append({"startPeriod": i * slot_seconds, "limit": limit, "numberPhases": phases})
    if not out:
        out.append({"startPeriod": 0, "limit": 0.0, "numberPhases": phases})
    return out


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("start must be timezone-aware (OCPP times are absolute)")
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def tx_profile_v16(
    power_kw: Sequence[float],
    start: datetime,
    slot_seconds: int,
    connector_id: int,
    profile_id: int,
    transaction_id: int | None = None,
    unit: Unit = "W",
    phases: int = 3,
    voltage: float = 230.0,
    stack_level: int = 0,
    min_kw: float | None = None,
) -> dict:
    """OCPP 1.6 ``SetChargingProfile.req`` payload carrying a TxProfile for one transaction."""
    sched: dict = {
        "duration": slot_seconds * max(1, len(power_kw)),
        "startSchedule": _iso(start),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods(power_kw, slot_seconds, unit, phases, voltage),
    }
    if min_kw:
        w = min_kw * 1000.0
        sched["minChargingRate"] = _floor1(w if unit == "W" else w / (phases * voltage))
    profile: dict = {
        "chargingProfileId": int(profile_id),
        "stackLevel": int(stack_level),
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "validTo": _iso(start + timedelta(seconds=slot_seconds * max(1, len(power_kw)))),
        "chargingSchedule": sched,
    }
    if transaction_id is not None:
        profile["transactionId"] = int(transaction_id)
    return {"connectorId": int(connector_id), "csChargingProfiles": profile}


def set_charging_profile_v201(
    power_kw: Sequence[float],
    start: datetime,
    slot_seconds: int,
    evse_id: int,
    profile_id: int,
    transaction_id: str | None = None,
    unit: Unit = "W",
    phases: int = 3,
    voltage: float = 230.0,
    stack_level: int = 0,
    min_kw: float | None = None,
    schedule_id: int | None = None,
) -> dict:
    """OCPP 2.0.1 ``SetChargingProfileRequest`` payload with a TxProfile.

    2.0.1 requires an ``id`` on the schedule and allows a 36-character string transactionId.
    """
    if transaction_id is not None and len(transaction_id) > 36:
        raise ValueError("OCPP 2.0.1 transactionId is at most 36 characters")
    sched: dict = {
        "id": int(schedule_id if schedule_id is not None else profile_id),
        "startSchedule": _iso(start),
        "duration": slot_seconds * max(1, len(power_kw)),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods(power_kw, slot_seconds, unit, phases, voltage)[:1024],
    }
    if min_kw:
        w = min_kw * 1000.0
        sched["minChargingRate"] = _floor1(w if unit == "W" else w / (phases * voltage))
    profile: dict = {
        "id": int(profile_id),
        "stackLevel": int(stack_level),
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "validTo": _iso(start + timedelta(seconds=slot_seconds * max(1, len(power_kw)))),
        "chargingSchedule": [sched],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return {"evseId": int(evse_id), "chargingProfile": profile}
