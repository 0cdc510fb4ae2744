"""Our own stations (the `stations` projection, fed from OCPP) as OCPI 2.2.1 Locations.  Pure: no I/O.

One OCPP charge point is one Location; each OCPP connector (1.6: connector = EVSE) is one EVSE with one
Connector.  EVSE uid `<station>-<connector>`, connector id `1`.  Status from the OCPP status; an offline station's
EVSEs are UNKNOWN (OCPI: "also used when offline").  What the station registration does not record - city,
country, time zone - is filled from settings, `#NA` where nothing can be said (OCPI 2.2.1 §4.1.9); adding those
fields to StationRegistered is the proper fix.  `last_updated` is the station row's `updated_at` (which every
station event advances), so `date_from` pulls see every change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edges.ocpi.status import ocpi_timestamp

OCPP_STATUS = {"Available": "AVAILABLE", "Preparing": "CHARGING", "Charging": "CHARGING",
               "SuspendedEV": "CHARGING", "SuspendedEVSE": "CHARGING", "Finishing": "CHARGING",
               "Reserved": "RESERVED", "Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER",
               # OCPP 2.0.1 connector statuses
               "Occupied": "CHARGING"}
DC_TYPES = frozenset({"CHADEMO", "CHAOJI", "GBT_DC", "IEC_62196_T1_COMBO", "IEC_62196_T2_COMBO", "TESLA_S",
                      "TESLA_R", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN"})
AC_VOLTAGE = 230  # OCPI: line to neutral for AC_3_PHASE
DC_VOLTAGE = 500


@dataclass(frozen=True)
class StationRow:
    station_id: str
    name: str | None
    operator: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    online: bool
    updated_at: datetime


@dataclass(frozen=True)
class ConnectorRow:
    connector_id: int
    standard: str | None
    max_power_kw: float | None
    status: str | None
    status_at: datetime | None


def evse_uid(station_id: str, connector_id: int) -> str:
    return f"{station_id}-{connector_id}"


def connector_doc(c: ConnectorRow, stamp: datetime) -> dict[str, Any]:
    standard = c.standard or "IEC_62196_T2"
    dc = standard in DC_TYPES
    volts = DC_VOLTAGE if dc else AC_VOLTAGE
    watts = int(round((c.max_power_kw or 0) * 1000))
    amps = math.ceil(watts / volts) if dc else math.ceil(watts / (3 * volts))
    doc: dict[str, Any] = {"id": "1", "standard": standard, "format": "CABLE" if dc else "SOCKET",
                           "power_type": "DC" if dc else "AC_3_PHASE", "max_voltage": volts,
                           "max_amperage": amps}
    if watts:
        doc["max_electric_power"] = watts
    doc["last_updated"] = ocpi_timestamp(stamp)
    return doc


def location_doc(s: StationRow, connectors: list[ConnectorRow], *, country_code: str, party_id: str,
                 country: str, time_zone: str) -> dict[str, Any]:
    stamp = s.updated_at
    evses = []
    for c in sorted(connectors, key=lambda c: c.connector_id):
        if c.connector_id == 0:  # OCPP 1.6 connector 0 is the charge point itself
            continue
        status = OCPP_STATUS.get(c.status or "", "UNKNOWN") if s.online else "UNKNOWN"
        evses.append({"uid": evse_uid(s.station_id, c.connector_id), "status": status,
                      "capabilities": ["REMOTE_START_STOP_CAPABLE", "RFID_READER"],
                      "connectors": [connector_doc(c, stamp)],
                      "physical_reference": str(c.connector_id), "last_updated": ocpi_timestamp(stamp)})
    doc: dict[str, Any] = {"country_code": country_code, "party_id": party_id, "id": s.station_id,
                           "publish": True}
    if s.name:
        doc["name"] = s.name[:255]
    doc.update(address=(s.address or "#NA")[:255], city="#NA", country=country,
               coordinates={"latitude": f"{s.latitude or 0.0:.6f}", "longitude": f"{s.longitude or 0.0:.6f}"},
               evses=evses)
    if s.operator:
        doc["operator"] = {"name": s.operator[:100]}
    doc.update(time_zone=time_zone, last_updated=ocpi_timestamp(stamp))
    return doc
