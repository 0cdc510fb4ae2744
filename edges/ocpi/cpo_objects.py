"""Our own sessions and tariffs as OCPI 2.2.1 objects (CPO role).  Pure: no I/O.

Shared by the senders (edges/ocpi/cpo_senders.py, served from the projections) and the push processor
(streams/ocpi_push/fold.py, built from the events), so a partner sees the same object whether it pulls or is
pushed to.  Session ids are our session ids cut to OCPI's CiString(36), as the CDR billing builds does
(streams/billing/fold.py); EVSE uids as edges/ocpi/cpo_locations.py makes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edges.ocpi.cpo_locations import evse_uid
from edges.ocpi.status import ocpi_timestamp

#: OCPP 2.0.1 idToken types -> OCPI TokenType
TOKEN_TYPES = {"ISO14443": "RFID", "ISO15693": "RFID", "eMAID": "APP_USER", "Central": "OTHER"}


def ocpi_session_id(session_id: str) -> str:
    return session_id[:36]


def token_type(t: Any) -> str:
    return TOKEN_TYPES.get(str(t), "RFID") if t else "RFID"


def session_doc(*, country_code: str, party_id: str, session_id: str, charge_point_id: str,
                connector_id: int | None, started_at: datetime, stopped_at: datetime | None, energy_wh: float,
                uid: str | None, id_token_type: str | None, token_party: tuple[str, str], currency: str,
                status: str, last_updated: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {"country_code": country_code, "party_id": party_id, "id": ocpi_session_id(session_id),
                           "start_date_time": ocpi_timestamp(started_at)}
    if stopped_at is not None:
        doc["end_date_time"] = ocpi_timestamp(stopped_at)
    doc.update(kwh=round(max(energy_wh, 0.0) / 1000, 3),
               cdr_token={"country_code": token_party[0], "party_id": token_party[1], "uid": uid or "",
                          "type": token_type(id_token_type), "contract_id": uid or ""},
               auth_method="WHITELIST", location_id=charge_point_id,
               evse_uid=evse_uid(charge_point_id, int(connector_id or 1)), connector_id="1", currency=currency,
               status=status, last_updated=ocpi_timestamp(last_updated))
    return doc


def tariff_doc(tariff: dict[str, Any], *, country_code: str, party_id: str, tariff_id: str,
               last_updated: datetime) -> dict[str, Any]:
    """The operator's tariff as our party's OCPI Tariff (owner and id ours; a missing last_updated filled)."""
    out = dict(tariff)
    out["country_code"], out["party_id"], out["id"] = country_code, party_id, tariff_id
    out.setdefault("last_updated", ocpi_timestamp(last_updated))
    return out
