"""The command catalogue refuses what a charger would refuse, before anything reaches the log."""

import pytest

from chargeverse.ocpp_commands import (CERTIFICATE_ACTIONS, CSMS_INITIATED, V16, V201, CommandInvalid, validate,
                                       valid_result, versions_for)


def test_remote_start_is_a_16_call_and_request_start_a_201_call():
    assert validate("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1}) == V16
    assert validate("RequestStartTransaction",
                    {"idToken": {"idToken": "TAG1", "type": "ISO14443"}, "remoteStartId": 7}) == V201


def test_an_action_in_both_versions_picks_the_version_whose_schema_accepts_the_payload():
    assert validate("Reset", {"type": "Soft"}) == V16
    assert validate("Reset", {"type": "Immediate"}) == V201


def test_explicit_version_is_enforced():
    with pytest.raises(CommandInvalid, match="not a central-system call in ocpp2.0.1"):
        validate("RemoteStartTransaction", {"idTag": "T"}, V201)
    with pytest.raises(CommandInvalid, match="unknown OCPP version"):
        validate("Reset", {"type": "Soft"}, "ocpp9")


@pytest.mark.parametrize("action,payload,why", [
    ("RemoteStartTransaction", {}, "idTag"),
    ("RemoteStartTransaction", {"idTag": "x" * 21}, "longer"),
    ("ChangeAvailability", {"connectorId": 1, "type": "Sometimes"}, "Sometimes"),
    ("Reset", {"type": "Soft", "extra": 1}, "Additional"),
])
def test_schema_violations_name_the_field(action, payload, why):
    with pytest.raises(CommandInvalid) as exc:
        validate(action, payload)
    assert why.lower() in str(exc.value).lower()


def test_charger_initiated_actions_are_not_commands():
    for action in ("BootNotification", "Heartbeat", "StartTransaction", "TransactionEvent", "Nope"):
        with pytest.raises(CommandInvalid, match="not a central-system call"):
            validate(action, {})
        assert versions_for(action) == []


def test_payload_must_be_an_object():
    with pytest.raises(CommandInvalid, match="JSON object"):
        validate("ClearCache", [])


def test_every_catalogued_action_has_request_and_response_schemas():
    for version, actions in CSMS_INITIATED.items():
        for action in actions:
            # compiling both schemas must work; an empty payload is either valid or refused with a reason
            try:
                validate(action, {}, version)
            except CommandInvalid as exc:
                assert str(exc)
            valid_result(version, action, {})


def test_certificate_actions_are_catalogued():
    assert CERTIFICATE_ACTIONS <= CSMS_INITIATED[V16] | CSMS_INITIATED[V201]


def test_results_are_checked_against_the_response_schema():
    assert valid_result(V16, "RemoteStartTransaction", {"status": "Accepted"})
    assert not valid_result(V16, "RemoteStartTransaction", {"status": "Maybe"})
