"""OCPI Commands, the pure part (edges/ocpi/commands.py): request checks, OCPI -> OCPP mapping for both OCPP
versions (every payload checked against the official OCPP schema), and OCPP outcomes -> CommandResult."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chargeverse.ocpp_commands import V16, V201, validate
from edges.ocpi.commands import (NOT_SUPPORTED, REJECTED, UNKNOWN_SESSION, Refused, Session, check_request,
                                 command_result, connector_of, reservation_number, start_id, to_ocpp)

TOKEN = {"country_code": "NL", "party_id": "EMX", "uid": "DRIVER-0001", "type": "RFID", "contract_id": "NL-EMX-1",
         "issuer": "X", "valid": True, "whitelist": "ALLOWED", "last_updated": "2024-05-01T10:00:00Z"}
URL = "https://emsp.example.com/ocpi/emsp/2.2.1/commands/START_SESSION/c1"


def start(**kw: Any) -> dict[str, Any]:
    return {"response_url": URL, "token": TOKEN, "location_id": "ST1", **kw}


# ---- request checks --------------------------------------------------------------------------------------------


def test_good_requests_pass() -> None:
    assert check_request("START_SESSION", start(evse_uid="ST1-2", connector_id="1")) == []
    assert check_request("STOP_SESSION", {"response_url": URL, "session_id": "s1"}) == []
    assert check_request("RESERVE_NOW", {"response_url": URL, "token": TOKEN, "expiry_date": "2024-05-01T12:00:00Z",
                                         "reservation_id": "r1", "location_id": "ST1"}) == []
    assert check_request("CANCEL_RESERVATION", {"response_url": URL, "reservation_id": "r1"}) == []
    assert check_request("UNLOCK_CONNECTOR", {"response_url": URL, "location_id": "ST1", "evse_uid": "ST1-1",
                                              "connector_id": "1"}) == []


@pytest.mark.parametrize("command,body,needle", [
    ("FLY", {}, "unknown command"),
    ("START_SESSION", [], "JSON object"),
    ("START_SESSION", {"token": TOKEN, "location_id": "ST1"}, "response_url: required"),
    ("START_SESSION", start(response_url="ftp://x"), "http(s)"),
    ("START_SESSION", start(token="DRIVER"), "token: must be a Token"),
    ("START_SESSION", start(token={**TOKEN, "uid": None}), "token.uid"),
    ("START_SESSION", start(location_id="x" * 37), "location_id"),
    ("START_SESSION", start(connector_id="1"), "needs evse_uid"),
    ("STOP_SESSION", {"response_url": URL}, "session_id: required"),
    ("UNLOCK_CONNECTOR", {"response_url": URL, "location_id": "ST1", "evse_uid": "ST1-1"}, "connector_id"),
])
def test_bad_requests_say_what_is_wrong(command: str, body: Any, needle: str) -> None:
    errors = check_request(command, body)
    assert errors and any(needle in e for e in errors), errors


# ---- mapping ---------------------------------------------------------------------------------------------------


def test_connector_of_evse_uid() -> None:
    assert connector_of("ST1", "ST1-2") == 2 and connector_of("st1", "ST1-2") == 2
    assert connector_of("ST1", "ST2-2") is None and connector_of("ST1", "ST1-x") is None
    assert connector_of("ST1", "ST1-0") is None and connector_of("ST1", None) is None


def test_reservation_numbers_are_stable_int32_and_numeric_ids_kept() -> None:
    assert reservation_number("42") == 42
    n = reservation_number("RES-abc")
    assert n == reservation_number("res-ABC") and 0 < n < 2 ** 31
    assert 0 < reservation_number("99999999999") < 2 ** 31
    assert 0 < start_id("c1") < 2 ** 31 and start_id("c1") == start_id("c1") != start_id("c2")


CASES = [
    ("START_SESSION", start(evse_uid="ST1-2", connector_id="1"), V16, "RemoteStartTransaction",
     {"idTag": "DRIVER-0001", "connectorId": 2}),
    ("START_SESSION", start(), V16, "RemoteStartTransaction", {"idTag": "DRIVER-0001"}),
    ("START_SESSION", start(evse_uid="ST1-2"), V201, "RequestStartTransaction",
     {"remoteStartId": start_id("cmd"), "idToken": {"idToken": "DRIVER-0001", "type": "ISO14443"}, "evseId": 2}),
    ("RESERVE_NOW", {"response_url": URL, "token": TOKEN, "expiry_date": "2024-05-01T12:00:00Z",
                     "reservation_id": "17", "location_id": "ST1"}, V16, "ReserveNow",
     {"connectorId": 0, "expiryDate": "2024-05-01T12:00:00Z", "idTag": "DRIVER-0001", "reservationId": 17}),
    ("RESERVE_NOW", {"response_url": URL, "token": TOKEN, "expiry_date": "2024-05-01T12:00:00Z",
                     "reservation_id": "17", "location_id": "ST1", "evse_uid": "ST1-1"}, V201, "ReserveNow",
     {"id": 17, "expiryDateTime": "2024-05-01T12:00:00Z",
      "idToken": {"idToken": "DRIVER-0001", "type": "ISO14443"}, "evseId": 1}),
    ("UNLOCK_CONNECTOR", {"response_url": URL, "location_id": "ST1", "evse_uid": "ST1-3", "connector_id": "1"},
     V16, "UnlockConnector", {"connectorId": 3}),
    ("UNLOCK_CONNECTOR", {"response_url": URL, "location_id": "ST1", "evse_uid": "ST1-3", "connector_id": "1"},
     V201, "UnlockConnector", {"evseId": 3, "connectorId": 1}),
]


@pytest.mark.parametrize("command,body,version,action,payload", CASES)
def test_mapping_to_ocpp_is_schema_valid(command: str, body: dict, version: str, action: str,
                                         payload: dict) -> None:
    assert check_request(command, body) == []
    call = to_ocpp(command, body, command_id="cmd", station_known=True, version=version)
    assert (call.charge_point_id, call.action, call.payload, call.version) == ("ST1", action, payload, version)
    assert validate(call.action, call.payload, call.version) == version


def test_unknown_version_means_ocpp16() -> None:
    assert to_ocpp("START_SESSION", start(), command_id="c", station_known=True, version=None).version == V16


@pytest.mark.parametrize("session,version,action,payload", [
    (Session("ST9", "123", V16, True), V16, "RemoteStopTransaction", {"transactionId": 123}),
    (Session("ST9", "tx-9", V201, True), V201, "RequestStopTransaction", {"transactionId": "tx-9"}),
])
def test_stop_session_goes_to_the_sessions_charger(session: Session, version: str, action: str,
                                                   payload: dict) -> None:
    call = to_ocpp("STOP_SESSION", {"response_url": URL, "session_id": "s1"}, command_id="c", station_known=False,
                   version=None, session=session)
    assert (call.charge_point_id, call.action, call.payload) == ("ST9", action, payload)
    validate(call.action, call.payload, version)


def test_cancel_reservation_goes_where_the_reservation_went() -> None:
    call = to_ocpp("CANCEL_RESERVATION", {"response_url": URL, "reservation_id": "RES-1"}, command_id="c",
                   station_known=False, version=V16, reservation_station="ST4")
    assert (call.charge_point_id, call.action, call.payload) == ("ST4", "CancelReservation",
                                                                {"reservationId": reservation_number("RES-1")})
    validate(call.action, call.payload, V16)


@pytest.mark.parametrize("command,body,kw,result,needle", [
    ("START_SESSION", start(), {"station_known": False}, REJECTED, "unknown location"),
    ("START_SESSION", start(evse_uid="OTHER-1"), {"station_known": True}, REJECTED, "unknown EVSE"),
    ("START_SESSION", start(evse_uid="ST1-1", connector_id="2"), {"station_known": True}, REJECTED,
     "unknown connector"),
    ("STOP_SESSION", {"response_url": URL, "session_id": "s1"}, {"station_known": False}, UNKNOWN_SESSION,
     "no active session"),
    ("STOP_SESSION", {"response_url": URL, "session_id": "s1"},
     {"station_known": False, "session": Session("ST1", "1", V16, False)}, UNKNOWN_SESSION, "no active session"),
    ("CANCEL_RESERVATION", {"response_url": URL, "reservation_id": "r"}, {"station_known": False}, REJECTED,
     "no reservation"),
])
def test_refusals(command: str, body: dict, kw: dict, result: str, needle: str) -> None:
    with pytest.raises(Refused) as e:
        to_ocpp(command, body, command_id="c", version=None, **kw)
    assert e.value.result == result and needle in e.value.message


def test_unsupported_command_is_refused_not_supported() -> None:
    with pytest.raises(Refused) as e:
        to_ocpp("FLY", {"location_id": "ST1"}, command_id="c", station_known=True, version=None)
    assert e.value.result == NOT_SUPPORTED


# ---- results ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action,outcome,result,expect", [
    ("RemoteStartTransaction", "RESULT", {"status": "Accepted"}, "ACCEPTED"),
    ("RemoteStartTransaction", "RESULT", {"status": "Rejected"}, "REJECTED"),
    ("RequestStopTransaction", "RESULT", {"status": "Accepted"}, "ACCEPTED"),
    ("UnlockConnector", "RESULT", {"status": "Unlocked"}, "ACCEPTED"),
    ("UnlockConnector", "RESULT", {"status": "UnlockFailed"}, "FAILED"),
    ("UnlockConnector", "RESULT", {"status": "NotSupported"}, "NOT_SUPPORTED"),
    ("UnlockConnector", "RESULT", {"status": "OngoingAuthorizedTransaction"}, "REJECTED"),
    ("ReserveNow", "RESULT", {"status": "Occupied"}, "EVSE_OCCUPIED"),
    ("ReserveNow", "RESULT", {"status": "Faulted"}, "EVSE_INOPERATIVE"),
    ("ReserveNow", "RESULT", {"status": "Unavailable"}, "EVSE_INOPERATIVE"),
    ("CancelReservation", "RESULT", {"status": "Accepted"}, "ACCEPTED"),
    ("CancelReservation", "RESULT", {"status": "Rejected"}, "UNKNOWN_RESERVATION"),
    ("RemoteStartTransaction", "RESULT", {"status": "Maybe"}, "FAILED"),
    ("RemoteStartTransaction", "ERROR", None, "FAILED"),
    ("RemoteStartTransaction", "OFFLINE", None, "FAILED"),
    ("RemoteStartTransaction", "REFUSED", None, "FAILED"),
    ("RemoteStartTransaction", "TIMEOUT", None, "TIMEOUT"),
    ("RemoteStartTransaction", "EXPIRED", None, "TIMEOUT"),
])
def test_ocpp_outcomes_become_command_results(action: str, outcome: str, result: Any, expect: str) -> None:
    got, message = command_result(action, outcome, json.dumps(result) if result is not None else None)
    assert got == expect
    assert (message is None) == (expect == "ACCEPTED")


def test_unreadable_result_is_failed() -> None:
    assert command_result("RemoteStartTransaction", "RESULT", "not json")[0] == "FAILED"
    assert command_result("RemoteStartTransaction", "RESULT", "[1]")[0] == "FAILED"
