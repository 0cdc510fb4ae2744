"""OCPI charging periods: the input shape the engine prices.

A CDR or Session carries ``charging_periods``: each has a ``start_date_time`` and a list of
``dimensions`` (``{"type": "ENERGY", "volume": 20}``) and ends where the next starts (the last
ends with the session).  :func:`parse_charging_periods` turns that JSON into immutable
:class:`ChargingPeriod` objects with Decimal volumes and refuses what cannot be a real
session: unknown or repeated dimension types, negative energy or time, periods out of order.

Units are OCPI's: ENERGY kWh, TIME / PARKING_TIME / RESERVATION_TIME hours, CURRENT A,
POWER kW, STATE_OF_CHARGE percent.  ``RESERVATION`` is accepted as an alias of
``RESERVATION_TIME`` (some partners send the tariff restriction name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.tariff.errors import InvalidSessionError
from ledger.tariff.model import parse_datetime
from ledger.tariff.money import to_decimal

#: OCPI 2.2.1 ``CdrDimensionType``.
CDR_DIMENSIONS: frozenset[str] = frozenset(
    {
        "CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT", "MAX_POWER",
        "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE", "TIME",
    }
)  # fmt: skip
_ALIASES = {"RESERVATION": "RESERVATION_TIME"}
#: volumes that are amounts consumed: never negative in a priced period
NON_NEGATIVE: frozenset[str] = frozenset({"ENERGY", "TIME", "PARKING_TIME", "RESERVATION_TIME"})


@dataclass(frozen=True, slots=True)
class ChargingPeriod:
    """One OCPI ``ChargingPeriod``: start (aware, any zone), volumes by dimension type, tariff id."""

    start: dt.datetime
    dimensions: Mapping[str, Decimal]
    tariff_id: str | None = None

    def to_ocpi(self) -> dict[str, Any]:
        """OCPI JSON shape (Decimal volumes; ``start_date_time`` in UTC with ``Z``)."""
        out: dict[str, Any] = {
            "start_date_time": format_datetime(self.start),
            "dimensions": [{"type": k, "volume": v} for k, v in self.dimensions.items()],
        }
        if self.tariff_id is not None:
            out["tariff_id"] = self.tariff_id
        return out


def format_datetime(value: dt.datetime) -> str:
    """OCPI DateTime: UTC, ``Z`` suffix, microseconds only when present."""
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat() + "Z"


def _volume(raw: Any, where: str) -> Decimal:
    try:
        return to_decimal(raw, where)
    except (TypeError, ValueError) as exc:
        raise InvalidSessionError(f"{where}: {exc}") from None


_FLOAT = float
_DEC = Decimal


def _fast_volume(raw: Any) -> Decimal | None:
    """The common JSON shapes without the general converter's checks (None: use the slow path)."""
    kind = type(raw)
    if kind is _FLOAT:
        if raw - raw == 0.0:  # finite
            return _DEC(repr(raw))
        return None
    if kind is int:
        return _DEC(raw)
    if kind is _DEC:
        return raw if raw.is_finite() else None
    return None


def parse_dimensions(raw: Any, where: str) -> dict[str, Decimal]:
    dims: dict[str, Decimal] = {}
    if type(raw) is list:
        items: Iterable[Any] = raw
        pairs = False
    elif isinstance(raw, Mapping):  # already {type: volume}
        items = raw.items()
        pairs = True
    elif isinstance(raw, (list, tuple)):
        items = raw
        pairs = False
    else:
        raise InvalidSessionError(f"{where} must be a list of CdrDimension")
    for j, entry in enumerate(items):
        if pairs:
            kind, volume = entry
        else:
            try:
                kind = entry["type"]
                volume = entry["volume"]
            except (TypeError, KeyError, IndexError):
                raise InvalidSessionError(f"{where}[{j}] must be an object with type and volume") from None
        if kind not in CDR_DIMENSIONS:
            alias = _ALIASES.get(kind) if isinstance(kind, str) else None
            if alias is None:
                raise InvalidSessionError(f"{where}: unknown CdrDimensionType {kind!r}")
            kind = alias
        if kind in dims:
            raise InvalidSessionError(f"{where}: dimension {kind} appears twice")
        value = _fast_volume(volume)
        if value is None:
            value = _volume(volume, f"{where}.{kind}")
        if value < 0 and kind in NON_NEGATIVE:
            raise InvalidSessionError(f"{where}: negative {kind} volume {value}")
        dims[kind] = value
    return dims


def parse_charging_periods(raw: Iterable[Mapping[str, Any] | ChargingPeriod]) -> tuple[ChargingPeriod, ...]:
    """OCPI ``charging_periods`` JSON -> validated :class:`ChargingPeriod` tuple (order kept)."""
    out: list[ChargingPeriod] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, ChargingPeriod):
            out.append(entry)
            continue
        where = f"charging_periods[{i}]"
        if not isinstance(entry, Mapping):
            raise InvalidSessionError(f"{where} must be an object")
        start = parse_datetime(entry.get("start_date_time"), f"{where}.start_date_time", InvalidSessionError)
        dims = parse_dimensions(entry.get("dimensions"), f"{where}.dimensions")
        tariff_id = entry.get("tariff_id")
        if tariff_id is not None and not isinstance(tariff_id, str):
            raise InvalidSessionError(f"{where}.tariff_id must be a string")
        out.append(ChargingPeriod(start, dims, tariff_id))
    return tuple(out)
