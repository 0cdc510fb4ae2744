"""OCPP-J framing and 1.6 validation: every bad frame maps to the CALLERROR code OCPP-J 1.6 §4.2.3 names."""

from __future__ import annotations

import json

import pytest

from edges.ocpp import framing
from edges.ocpp.v16.validation import check

F = "FormationViolation"


@pytest.mark.parametrize("text, code", [
    ("not json", F),
    ("{\"a\": 1}", F),
    ("[]", F),
    ("[9, \"1\", \"Heartbeat\", {}]", F),
    ("[true, \"1\", \"Heartbeat\", {}]", F),
    ("[2]", "ProtocolError"),
    ("[2, 17, \"Heartbeat\", {}]", "ProtocolError"),
    ("[2, \"1\", \"Heartbeat\"]", "ProtocolError"),
    ("[2, \"1\", 5, {}]", F),
    ("[2, \"1\", \"Heartbeat\", []]", F),
    ("[3, \"1\"]", "ProtocolError"),
    ("[4, \"1\", \"X\"]", "ProtocolError"),
    ("[2, \"" + "x" * 37 + "\", \"Heartbeat\", {}]", F),
    (b"[2, \"1\", \"Heartbeat\", {}]", F),
])
def test_bad_frames_become_frame_errors_with_the_right_code(text, code) -> None:  # noqa: ANN001
    out = framing.parse(text, F)
    assert isinstance(out, framing.FrameError)
    assert out.code == code


def test_frame_error_keeps_the_message_id_when_it_can_be_read() -> None:
    out = framing.parse('[2, "abc", 5, {}]', F)
    assert isinstance(out, framing.FrameError) and out.message_id == "abc"
    assert framing.parse("garbage", F).message_id == "-1"  # type: ignore[union-attr]


def test_good_frames_parse() -> None:
    c = framing.parse('[2,"m1","Heartbeat",{}]', F)
    assert c == framing.Frame(2, "m1", action="Heartbeat", payload={})
    r = framing.parse('[3,"m1",{"currentTime":"x"}]', F)
    assert isinstance(r, framing.Frame) and r.payload == {"currentTime": "x"}
    e = framing.parse('[4,"m1","NotImplemented","nope",{}]', F)
    assert isinstance(e, framing.Frame) and e.error_code == "NotImplemented"


def test_call_error_text_is_a_valid_ocpp_j_callerror() -> None:
    msg = json.loads(framing.call_error("m1", "ProtocolError", "x" * 400))
    assert msg[0] == 4 and msg[1] == "m1" and msg[2] == "ProtocolError" and len(msg[3]) == 255 and msg[4] == {}


BOOT = {"chargePointVendor": "v", "chargePointModel": "m"}


@pytest.mark.parametrize("action, payload, code", [
    ("BootNotification", {"chargePointVendor": 5, "chargePointModel": "m"}, "TypeConstraintViolation"),
    ("BootNotification", {"chargePointVendor": "v"}, "OccurenceConstraintViolation"),
    ("BootNotification", {**BOOT, "extra": 1}, "FormationViolation"),
    ("BootNotification", {**BOOT, "chargePointModel": "m" * 21}, "PropertyConstraintViolation"),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
     "PropertyConstraintViolation"),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "noon"},
     "TypeConstraintViolation"),
])
def test_schema_violations_map_to_1_6_error_codes(action, payload, code) -> None:  # noqa: ANN001
    out = check(action, payload)
    assert out is not None and out[0] == code


def test_valid_payloads_pass() -> None:
    assert check("BootNotification", BOOT) is None
    assert check("Heartbeat", {}) is None
    assert check("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available",
                                        "timestamp": "2026-01-01T00:00:00Z"}) is None
