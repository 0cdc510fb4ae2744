"""OCPP-J framing (RPC over WebSocket), version-independent and pure.

A frame is a JSON array: CALL `[2, id, action, payload]`, CALLRESULT `[3, id, payload]`, CALLERROR
`[4, id, code, description, details]`.  Parsing never raises: a bad frame becomes a `FrameError` carrying the
error code to answer with, so the connection keeps serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CALL, CALLRESULT, CALLERROR = 2, 3, 4
#: used as the message id when a frame is too broken to carry one (OCPP-J 2.0.1 §4.2.3 says "-1"; 1.6 peers
#: accept it too)
UNKNOWN_ID = "-1"


@dataclass(frozen=True)
class Frame:
    type_id: int
    message_id: str
    action: str | None = None  # CALL only
    payload: Any = None  # CALL / CALLRESULT payload
    error_code: str | None = None  # CALLERROR only
    error_description: str | None = None
    error_details: Any = None


@dataclass(frozen=True)
class FrameError:
    """Why a frame could not be read, as the CALLERROR code of the negotiated version."""

    code: str
    description: str
    message_id: str = UNKNOWN_ID
    type_id: int | None = None
    action: str | None = None


def parse(text: str | bytes, formation_code: str) -> Frame | FrameError:
    """Parse one frame.  `formation_code` is the version's spelling (1.6 FormationViolation, 2.0.1
    FormatViolation)."""
    if isinstance(text, bytes):
        return FrameError(formation_code, "OCPP-J frames are text frames, not binary")
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return FrameError(formation_code, "frame is not valid JSON")
    if not isinstance(msg, list) or not msg:
        return FrameError(formation_code, "frame is not a JSON array")
    type_id = msg[0]
    mid = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else UNKNOWN_ID
    if type_id not in (CALL, CALLRESULT, CALLERROR) or isinstance(type_id, bool):
        return FrameError(formation_code, f"unknown message type id {type_id!r}", mid)
    if len(msg) < 2 or not isinstance(msg[1], str):
        return FrameError("ProtocolError", "message id missing or not a string", mid, type_id)
    if len(mid) > 36:
        return FrameError(formation_code, "message id longer than 36 characters", UNKNOWN_ID, type_id)
    if type_id == CALL:
        if len(msg) != 4:
            return FrameError("ProtocolError", "a CALL has exactly 4 elements", mid, type_id)
        if not isinstance(msg[2], str):
            return FrameError(formation_code, "action is not a string", mid, type_id)
        if not isinstance(msg[3], dict):
            return FrameError(formation_code, "payload is not a JSON object", mid, type_id, msg[2])
        return Frame(CALL, mid, action=msg[2], payload=msg[3])
    if type_id == CALLRESULT:
        if len(msg) != 3:
            return FrameError("ProtocolError", "a CALLRESULT has exactly 3 elements", mid, type_id)
        return Frame(CALLRESULT, mid, payload=msg[2])
    if len(msg) != 5:
        return FrameError("ProtocolError", "a CALLERROR has exactly 5 elements", mid, type_id)
    return Frame(CALLERROR, mid, error_code=str(msg[2]), error_description=str(msg[3]), error_details=msg[4])


def call_result(message_id: str, payload: dict[str, Any]) -> str:
    return json.dumps([CALLRESULT, message_id, payload], separators=(",", ":"))


def call_error(message_id: str, code: str, description: str, details: dict[str, Any] | None = None) -> str:
    return json.dumps([CALLERROR, message_id, code, description[:255], details or {}], separators=(",", ":"))
