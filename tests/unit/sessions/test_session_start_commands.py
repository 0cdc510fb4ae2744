"""The pure parts of starting and stopping a charge from the app (edges/api/session_control.py): the OCPP call per
version (valid against the official schemas), the start request's status, and the reason a driver is shown when a
start did not happen."""

from __future__ import annotations

import pytest

from chargeverse.ocpp_commands import V16, V201, validate
from edges.api.session_control import start_command, start_detail, start_status, stop_command


@pytest.mark.parametrize("version,action", [(V16, "RemoteStartTransaction"), (V201, "RequestStartTransaction")])
def test_the_start_call_is_the_versions_own_and_schema_valid(version: str, action: str) -> None:
    got, payload = start_command(version, "APPABCDEFGHJKLMNPQR", 2, 7)
    assert got == action and validate(got, payload, version) == version
    if version == V16:
        assert payload == {"idTag": "APPABCDEFGHJKLMNPQR", "connectorId": 2}
    else:
        assert payload["idToken"] == {"idToken": "APPABCDEFGHJKLMNPQR", "type": "Central"}
        assert (payload["evseId"], payload["remoteStartId"]) == (2, 7)


def test_the_stop_call_carries_the_chargers_transaction_id_in_its_versions_type() -> None:
    assert stop_command(V16, "42") == ("RemoteStopTransaction", {"transactionId": 42})
    assert stop_command(None, "42") == ("RemoteStopTransaction", {"transactionId": 42})  # unknown version: 1.6
    assert stop_command(V201, "tx-9") == ("RequestStopTransaction", {"transactionId": "tx-9"})
    with pytest.raises(ValueError):
        stop_command(V16, "not-a-number")  # the API answers 409: cannot be stopped remotely


@pytest.mark.parametrize("outcome,result,session,status", [
    (None, None, None, "PENDING"),
    ("RESULT", {"status": "Accepted"}, None, "ACCEPTED"),
    ("RESULT", {"status": "Rejected"}, None, "REJECTED"),
    ("RESULT", None, None, "REJECTED"),
    ("OFFLINE", None, None, "FAILED"),
    ("TIMEOUT", None, None, "FAILED"),
    ("REFUSED", None, None, "FAILED"),
    ("EXPIRED", None, None, "FAILED"),
    ("RESULT", {"status": "Accepted"}, "S1", "STARTED"),
    (None, None, "S1", "STARTED"),
])
def test_start_status(outcome: str | None, result: object, session: str | None, status: str) -> None:
    assert start_status(outcome, result, session) == status


def test_a_start_that_did_not_happen_says_why() -> None:
    assert start_detail(None, None, None, None) is None
    assert start_detail("RESULT", {"status": "Accepted"}, None, None) is None
    assert start_detail("RESULT", {"status": "Rejected"}, None, None) == "the charger answered 'Rejected'"
    assert start_detail("RESULT", {"status": "Rejected", "statusInfo": {
        "reasonCode": "Occupied", "additionalInfo": "EVSE reserved"}}, None, None) == \
        "the charger answered 'Rejected': Occupied - EVSE reserved"
    assert start_detail("OFFLINE", None, None, "the charger is not connected") == \
        "the charger is offline (the charger is not connected)"
    assert start_detail("REFUSED", None, "WrongVersion", "RemoteStartTransaction is not a ocpp2.0.1 call") == \
        "the command was not sent (WrongVersion: RemoteStartTransaction is not a ocpp2.0.1 call)"
    assert start_detail("TIMEOUT", None, None, None) == "the charger did not answer"
    assert start_detail("ERROR", None, "NotSupported", None) == "the charger answered with an error (NotSupported)"
