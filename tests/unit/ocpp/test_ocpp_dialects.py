"""Framing errors are answered in the negotiated version's spelling (OCPP-J 1.6 §4.2.3 vs OCPP-J 2.0.1 §4.3),
and schema violations map to each version's constraint codes."""

from __future__ import annotations

import pytest

from edges.ocpp import framing
from edges.ocpp.v16.validation import check as check16
from edges.ocpp.v201.validation import check as check201

V16, V201 = framing.V16_DIALECT, framing.V201_DIALECT


@pytest.mark.parametrize("text, code16, code201", [
    ("not json", "FormationViolation", "FormatViolation"),
    ("[]", "FormationViolation", "FormatViolation"),
    ('[9, "1", "Heartbeat", {}]', "FormationViolation", "MessageTypeNotSupported"),
    ('[2, 17, "Heartbeat", {}]', "ProtocolError", "RpcFrameworkError"),
    ('[2, "1", "Heartbeat"]', "ProtocolError", "RpcFrameworkError"),
    ('[2, "1", 5, {}]', "FormationViolation", "RpcFrameworkError"),
    ('[2, "1", "Heartbeat", []]', "FormationViolation", "FormatViolation"),
    ('[3, "1"]', "ProtocolError", "RpcFrameworkError"),
    (b'[2, "1", "Heartbeat", {}]', "FormationViolation", "FormatViolation"),
])
def test_each_version_spells_framing_errors_its_own_way(text, code16, code201) -> None:  # noqa: ANN001
    a, b = framing.parse(text, V16), framing.parse(text, V201)
    assert isinstance(a, framing.FrameError) and a.code == code16
    assert isinstance(b, framing.FrameError) and b.code == code201


def test_a_bare_formation_code_still_means_the_16_shape() -> None:
    assert framing.parse('[2, "1", "Heartbeat"]', "FormationViolation").code == "ProtocolError"  # type: ignore[union-attr]


BOOT201 = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}


@pytest.mark.parametrize("payload, code", [
    ({"chargingStation": {"model": "m"}, "reason": "PowerUp"}, "OccurrenceConstraintViolation"),
    ({**BOOT201, "reason": "Bored"}, "PropertyConstraintViolation"),
    ({**BOOT201, "chargingStation": {"model": 5, "vendorName": "v"}}, "TypeConstraintViolation"),
    ({**BOOT201, "extra": True}, "FormatViolation"),
    ({**BOOT201, "chargingStation": {"model": "m" * 21, "vendorName": "v"}}, "PropertyConstraintViolation"),
])
def test_201_schema_violations_use_201_spellings(payload, code) -> None:  # noqa: ANN001
    out = check201("BootNotification", payload)
    assert out is not None and out[0] == code, out


def test_the_same_violation_is_spelled_differently_in_16() -> None:
    assert check16("BootNotification", {"chargePointVendor": "v"})[0] == "OccurenceConstraintViolation"  # type: ignore[index]
    assert check201("Heartbeat", {"x": 1})[0] == "FormatViolation"  # type: ignore[index]
    assert check16("Heartbeat", {"x": 1})[0] == "FormationViolation"  # type: ignore[index]


def test_201_date_times_are_checked() -> None:
    bad = {"timestamp": "yesterday", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    assert check201("StatusNotification", bad)[0] == "TypeConstraintViolation"  # type: ignore[index]
