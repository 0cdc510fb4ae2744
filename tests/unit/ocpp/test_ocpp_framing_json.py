"""edges/ocpp/framing.py's JSON: its fast reading and writing give exactly what the json module gives, including
its errors, for every kind of frame text (the fast paths are an optimisation, never a second dialect)."""

from __future__ import annotations

import json
import math

import pytest

from edges.ocpp import framing

V16 = "FormationViolation"

TEXTS = [
    '[2,"1","Heartbeat",{}]',
    '[2,"a-b","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging"}]',
    '[3,"x",{"currentTime":"2026-11-27T10:00:00Z"}]',
    '[4,"x","NotImplemented","nope",{}]',
    ' [2,"1","Heartbeat",{}]',            # whitespace before
    '[2,"1","Heartbeat",{}] ',            # whitespace after
    '[2,"1","Heartbeat",{}]\n',
    '[2,"1","Heartbeat",{}][1]',          # data after the array
    '[2,"1","Heartbeat",{}',              # cut short
    '[2,"1","Heartbeat",{},]',            # trailing comma
    '[2,"1","Heartbeat",{"a":NaN}]',      # what json.loads accepts, we accept
    '[2,"1","DataTransfer",{"vendorId":"\\u00e9\\ud83d\\ude00","data":"caf\u00e9"}]',
    '[]', '[1', '[', '', '{"a":1}', '"text"', '2', 'null', '[2,"1","A",{"v":1e400}]',
]


def _reference(text: str) -> object:
    try:
        return ("ok", json.loads(text))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg, exc.pos)


def _ours(text: str) -> object:
    try:
        return ("ok", framing._loads(text))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg, exc.pos)


@pytest.mark.parametrize("text", TEXTS)
def test_reading_a_frame_gives_what_json_loads_gives(text: str) -> None:
    ours, ref = _ours(text), _reference(text)
    if ref[0] == "ok" and isinstance(ref[1], list) and ref[1] and isinstance(ref[1][-1], dict) \
            and any(isinstance(v, float) and math.isnan(v) for v in ref[1][-1].values()):
        assert ours[0] == "ok" and math.isnan(ours[1][-1]["a"])  # NaN != NaN
    else:
        assert ours == ref


@pytest.mark.parametrize("text", ['[2,"1","Heartbeat",{}] ', '[2,"1","Heartbeat",{}][1]', '[2,"1"', ' [3,"1",{}]'])
def test_whole_frames_parse_the_same_with_or_without_the_fast_path(text: str) -> None:
    parsed = framing.parse(text, V16)
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        assert isinstance(parsed, framing.FrameError) and parsed.description == "frame is not valid JSON"
    else:
        assert isinstance(parsed, framing.Frame) and parsed.type_id == msg[0] and parsed.message_id == msg[1]


def test_a_deeply_nested_frame_is_refused_as_invalid_json_not_a_crash() -> None:
    text = '[2,"1","DataTransfer",{"vendorId":"v","data":' + "[" * 100_000 + "]" * 100_000 + "}]"
    parsed = framing.parse(text, V16)
    assert isinstance(parsed, framing.FrameError) and parsed.code == "FormationViolation"


PAYLOADS = [
    {}, {"currentTime": "2026-11-27T10:00:00.000Z", "interval": 300, "status": "Accepted"},
    {"idTagInfo": {"status": "Accepted", "expiryDate": None}, "transactionId": 2**40},
    {"text": "café ☕ \U0001F600 \"quoted\" \\ back\nline\t\x00"}, {"f": 0.1, "g": 1e-7, "h": -0.0, "big": 1e300},
    {"list": [1, [2, [3, {}]], True, False, None]}, {"nan": float("nan"), "inf": float("inf")},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_answers_are_the_text_json_dumps_gives(payload: dict) -> None:
    assert framing.call_result("m-1", payload) == json.dumps([3, "m-1", payload], separators=(",", ":"))
    assert framing.call("m-2", "SetChargingProfile", payload) == json.dumps(
        [2, "m-2", "SetChargingProfile", payload], separators=(",", ":"))


def test_something_that_is_not_json_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        framing.call_result("m", {"when": object()})
    with pytest.raises(TypeError):
        json.dumps({"when": object()})
