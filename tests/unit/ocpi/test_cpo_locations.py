"""Our stations as OCPI Locations (edges/ocpi/cpo_locations.py): always valid OCPI, statuses mapped, offline
means UNKNOWN."""

from __future__ import annotations

from datetime import datetime, timezone

from edges.ocpi.cpo_locations import ConnectorRow, StationRow, location_doc
from edges.ocpi.models import check

T = datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc)


def _doc(online: bool = True, connectors: list[ConnectorRow] | None = None) -> dict:
    s = StationRow("ST-1", "Depot 1", "chargeverse", "Keizersgracht 1, Amsterdam", 52.37, 4.89, online, T)
    conns = connectors if connectors is not None else [
        ConnectorRow(0, None, None, "Available", T),
        ConnectorRow(1, "IEC_62196_T2", 22.0, "Charging", T),
        ConnectorRow(2, "IEC_62196_T2_COMBO", 150.0, "Faulted", T)]
    return location_doc(s, conns, country_code="NL", party_id="CVS", country="NLD", time_zone="Europe/Amsterdam")


def test_a_station_is_a_valid_location_without_warnings() -> None:
    doc = _doc()
    v = check("location", doc)
    assert v.ok and v.warnings == [], (v.errors, v.warnings)
    assert doc["coordinates"] == {"latitude": "52.370000", "longitude": "4.890000"}
    assert doc["last_updated"] == "2024-05-01T08:30:00Z"


def test_connector_zero_is_the_charge_point_not_an_evse_and_statuses_map() -> None:
    doc = _doc()
    assert [(e["uid"], e["status"]) for e in doc["evses"]] == [("ST-1-1", "CHARGING"), ("ST-1-2", "OUTOFORDER")]
    ac, dc = (e["connectors"][0] for e in doc["evses"])
    assert (ac["power_type"], ac["format"], ac["max_voltage"], ac["max_amperage"], ac["max_electric_power"]) == (
        "AC_3_PHASE", "SOCKET", 230, 32, 22000)
    assert (dc["power_type"], dc["format"], dc["max_amperage"]) == ("DC", "CABLE", 300)


def test_an_offline_station_reports_unknown_and_a_station_without_connectors_is_still_valid() -> None:
    assert {e["status"] for e in _doc(online=False)["evses"]} == {"UNKNOWN"}
    doc = _doc(connectors=[])
    assert doc["evses"] == [] and check("location", doc).ok
