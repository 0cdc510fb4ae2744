"""OCPI 2.2.1 Commands, the pure part: request checks, OCPI command -> OCPP call, OCPP outcome -> CommandResult.
No I/O: what must be looked up (the station, the session, where a reservation went) is passed in.

CPO role: an accepted OCPI command becomes one OcppCommandRequested on `ocpp.commands` (the OCPP edge holding
the charger's socket sends it).  Mapping (1.6 / 2.0.1):
- START_SESSION -> RemoteStartTransaction {connectorId, idTag} / RequestStartTransaction {remoteStartId, idToken,
  evseId}; the OCPI location id is our station id, the EVSE uid `<station>-<connector>` (edges/ocpi/cpo_locations.py)
- STOP_SESSION -> RemoteStopTransaction {transactionId} / RequestStopTransaction {transactionId} of the session
- RESERVE_NOW -> ReserveNow {connectorId (0: any), expiryDate, idTag, reservationId} / {id, expiryDateTime,
  idToken, evseId}
- CANCEL_RESERVATION -> CancelReservation {reservationId}, sent to the charger that got the reservation
- UNLOCK_CONNECTOR -> UnlockConnector {connectorId} / {evseId, connectorId}
OCPP wants integer reservation ids; OCPI's are strings: a numeric one is used as is, any other is mapped by a
stable hash into 1..2^31-1 (`reservation_number`), so RESERVE_NOW and its CANCEL_RESERVATION agree.

The OCPP outcome comes back as a CommandResult (`command_result`): the charger's status word mapped to OCPI's
CommandResultType; a CALLERROR, an offline charger or a refused call is FAILED; no answer (or an expired
command) is TIMEOUT.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from chargeverse.ocpp_commands import V16, V201
from edges.ocpi.models import check

COMMANDS = ("START_SESSION", "STOP_SESSION", "RESERVE_NOW", "CANCEL_RESERVATION", "UNLOCK_CONNECTOR")
#: CommandResponseType
ACCEPTED, REJECTED, NOT_SUPPORTED, UNKNOWN_SESSION = "ACCEPTED", "REJECTED", "NOT_SUPPORTED", "UNKNOWN_SESSION"
#: CommandResultType
RESULT_TYPES = ("ACCEPTED", "CANCELED_RESERVATION", "EVSE_OCCUPIED", "EVSE_INOPERATIVE", "FAILED", "NOT_SUPPORTED",
                "REJECTED", "TIMEOUT", "UNKNOWN_RESERVATION")
RESPONSE_TYPES = (ACCEPTED, NOT_SUPPORTED, REJECTED, UNKNOWN_SESSION)

_REQUIRED = {
    "START_SESSION": ("response_url", "token", "location_id"),
    "STOP_SESSION": ("response_url", "session_id"),
    "RESERVE_NOW": ("response_url", "token", "expiry_date", "reservation_id", "location_id"),
    "CANCEL_RESERVATION": ("response_url", "reservation_id"),
    "UNLOCK_CONNECTOR": ("response_url", "location_id", "evse_uid", "connector_id"),
}
_MAX = {"location_id": 36, "evse_uid": 36, "connector_id": 36, "session_id": 36, "reservation_id": 36,
        "authorization_reference": 36, "response_url": 255}


def check_request(command: str, body: Any) -> list[str]:
    """Everything wrong with an OCPI command request (empty: fine)."""
    if command not in COMMANDS:
        return [f"unknown command {command!r}; known: {', '.join(COMMANDS)}"]
    if not isinstance(body, dict):
        return [f"a {command} request must be a JSON object"]
    errors = []
    for f in _REQUIRED[command]:
        if body.get(f) in (None, ""):
            errors.append(f"{f}: required")
    for f, n in _MAX.items():
        v = body.get(f)
        if v is not None and (not isinstance(v, str) or len(v) > n):
            errors.append(f"{f}: must be a string of at most {n} characters")
    url = body.get("response_url")
    if isinstance(url, str) and url and not url.startswith(("http://", "https://")):
        errors.append("response_url: must be an http(s) URL")
    if isinstance(body.get("token"), dict):
        v = check("token", body["token"])
        errors += [f"token.{e}" for e in v.errors]
    elif "token" in body and body["token"] is not None:
        errors.append("token: must be a Token object")
    if command == "UNLOCK_CONNECTOR" or (command in ("START_SESSION", "RESERVE_NOW") and body.get("connector_id")):
        if body.get("connector_id") is not None and not body.get("evse_uid"):
            errors.append("connector_id: needs evse_uid")
    return errors


def connector_of(station_id: str, evse_uid: str | None) -> int | None:
    """Our connector number from an EVSE uid `<station>-<n>`; None when the uid is not one of the station's."""
    if evse_uid is None:
        return None
    prefix = f"{station_id}-"
    if not evse_uid.upper().startswith(prefix.upper()):
        return None
    tail = evse_uid[len(prefix):]
    return int(tail) if tail.isdigit() and int(tail) > 0 else None


def reservation_number(reservation_id: str) -> int:
    if reservation_id.isdigit() and 0 < int(reservation_id) < 2 ** 31:
        return int(reservation_id)
    h = int.from_bytes(hashlib.sha256(reservation_id.upper().encode()).digest()[:8], "big")
    return 1 + h % (2 ** 31 - 1)


def start_id(command_id: str) -> int:
    """A stable positive int32 from a command id (2.0.1 remoteStartId)."""
    return 1 + int.from_bytes(hashlib.sha256(command_id.encode()).digest()[:8], "big") % (2 ** 31 - 1)


def _id_tag(token: dict[str, Any]) -> str:
    return str(token["uid"])[:20]


def _id_token_201(token: dict[str, Any]) -> dict[str, str]:
    t = token.get("type")
    kind = {"RFID": "ISO14443", "APP_USER": "Central", "AD_HOC_USER": "Central"}.get(t if isinstance(t, str) else "",
                                                                                    "Central")
    return {"idToken": str(token["uid"])[:36], "type": kind}


@dataclass(frozen=True)
class OcppCall:
    charge_point_id: str
    action: str
    payload: dict[str, Any]
    version: str


class Refused(ValueError):
    """The command cannot be carried out; `result` is the CommandResponseType to answer with."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result
        self.message = message


@dataclass(frozen=True)
class Session:
    charge_point_id: str
    transaction_id: str | None
    ocpp_version: str | None
    active: bool


def to_ocpp(command: str, body: dict[str, Any], *, command_id: str, station_known: bool, version: str | None,
            session: Session | None = None, reservation_station: str | None = None) -> OcppCall:
    """The OCPP call for an OCPI command (already `check_request`-ed).  `station_known`: body.location_id is one of
    our own stations; `version`: the OCPP version the charger speaks (None: unknown, 1.6 assumed);
    `session`: STOP_SESSION's session; `reservation_station`: CANCEL_RESERVATION's charger.  Raises Refused."""
    v = version if version in (V16, V201) else V16
    if command == "STOP_SESSION":
        if session is None or not session.active or session.transaction_id is None:
            raise Refused(UNKNOWN_SESSION, f"no active session {body['session_id']}")
        v = session.ocpp_version if session.ocpp_version in (V16, V201) else V16
        if v == V16:
            if not session.transaction_id.lstrip("-").isdigit():
                raise Refused(REJECTED, "the session's transaction id is not a 1.6 integer")
            return OcppCall(session.charge_point_id, "RemoteStopTransaction",
                            {"transactionId": int(session.transaction_id)}, v)
        return OcppCall(session.charge_point_id, "RequestStopTransaction",
                        {"transactionId": session.transaction_id[:36]}, v)
    if command == "CANCEL_RESERVATION":
        if reservation_station is None:
            raise Refused(REJECTED, f"no reservation {body['reservation_id']} of ours")
        return OcppCall(reservation_station, "CancelReservation",
                        {"reservationId": reservation_number(body["reservation_id"])}, v)
    station = body["location_id"]
    if not station_known:
        raise Refused(REJECTED, f"unknown location {station}")
    evse = body.get("evse_uid")
    conn = connector_of(station, evse)
    if evse is not None and conn is None:
        raise Refused(REJECTED, f"unknown EVSE {evse} at location {station}")
    if body.get("connector_id") not in (None, "1"):
        raise Refused(REJECTED, f"unknown connector {body['connector_id']} of EVSE {evse}")
    if command == "START_SESSION":
        if v == V16:
            p: dict[str, Any] = {"idTag": _id_tag(body["token"])}
            if conn is not None:
                p["connectorId"] = conn
            return OcppCall(station, "RemoteStartTransaction", p, v)
        p = {"remoteStartId": start_id(command_id), "idToken": _id_token_201(body["token"])}
        if conn is not None:
            p["evseId"] = conn
        return OcppCall(station, "RequestStartTransaction", p, v)
    if command == "RESERVE_NOW":
        rid = reservation_number(body["reservation_id"])
        if v == V16:
            return OcppCall(station, "ReserveNow", {"connectorId": conn or 0, "expiryDate": body["expiry_date"],
                                                    "idTag": _id_tag(body["token"]), "reservationId": rid}, v)
        p = {"id": rid, "expiryDateTime": body["expiry_date"], "idToken": _id_token_201(body["token"])}
        if conn is not None:
            p["evseId"] = conn
        return OcppCall(station, "ReserveNow", p, v)
    if command == "UNLOCK_CONNECTOR":
        if conn is None:
            raise Refused(REJECTED, "UNLOCK_CONNECTOR needs an EVSE of the location")
        if v == V16:
            return OcppCall(station, "UnlockConnector", {"connectorId": conn}, v)
        return OcppCall(station, "UnlockConnector", {"evseId": conn, "connectorId": 1}, v)
    raise Refused(NOT_SUPPORTED, f"{command} is not supported")


_STATUS = {
    # RemoteStart/Stop, Request*, CancelReservation Accepted; UnlockConnector; ReserveNow
    "Accepted": "ACCEPTED", "Rejected": "REJECTED", "Unlocked": "ACCEPTED", "UnlockFailed": "FAILED",
    "NotSupported": "NOT_SUPPORTED", "OngoingAuthorizedTransaction": "REJECTED", "UnknownConnector": "REJECTED",
    "Faulted": "EVSE_INOPERATIVE", "Occupied": "EVSE_OCCUPIED", "Unavailable": "EVSE_INOPERATIVE",
}


def command_result(action: str, outcome: str, result_json: str | None) -> tuple[str, str | None]:
    """(CommandResultType, message) for an OCPP command's outcome."""
    if outcome in ("TIMEOUT", "EXPIRED"):
        return "TIMEOUT", "the charger did not answer in time"
    if outcome != "RESULT":
        return "FAILED", {"ERROR": "the charger answered with an error", "OFFLINE": "the charger is offline",
                          "REFUSED": "the call could not be sent to the charger"}.get(outcome, outcome.lower())
    try:
        status = (json.loads(result_json or "{}") or {}).get("status")
    except (ValueError, AttributeError):
        status = None
    if action == "CancelReservation" and status == "Rejected":
        return "UNKNOWN_RESERVATION", "the charger has no such reservation"
    mapped = _STATUS.get(status if isinstance(status, str) else "")
    if mapped is None:
        return "FAILED", f"unexpected answer status {status!r}"
    return mapped, None if mapped == "ACCEPTED" else f"the charger answered {status}"
