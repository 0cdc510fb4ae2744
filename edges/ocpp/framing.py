"""OCPP-J framing (RPC over WebSocket), version-independent and pure.

A frame is a JSON array: CALL `[2, id, action, payload]`, CALLRESULT `[3, id, payload]`, CALLERROR
`[4, id, code, description, details]`.  Parsing never raises: a bad frame becomes a `FrameError` carrying the
error code to answer with, so the connection keeps serving.

The versions spell their RPC-framework errors differently (OCPP-J 1.6 §4.2.3 vs OCPP-J 2.0.1 §4.3): 1.6 has
`FormationViolation` and answers a broken frame structure with `ProtocolError`; 2.0.1 renamed the first to
`FormatViolation` and added `RpcFrameworkError` (the frame is not a valid RPC message, e.g. its id cannot be read)
and `MessageTypeNotSupported` (a message type number it does not know).  A `Dialect` carries one version's
spellings, so the parser stays shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

CALL, CALLRESULT, CALLERROR = 2, 3, 4
#: used as the message id when a frame is too broken to carry one (OCPP-J 2.0.1 §4.2.3 says "-1"; 1.6 peers
#: accept it too)
UNKNOWN_ID = "-1"
MAX_MESSAGE_ID = 36


@dataclass(frozen=True)
class Dialect:
    """The CALLERROR codes one OCPP-J version answers framing problems with."""

    formation: str  # not JSON, not an array, payload not an object
    unknown_type: str  # message type number other than 2, 3, 4
    structure: str  # message id missing/not a string, wrong number of elements
    bad_action: str  # the action is not a string


V16_DIALECT = Dialect("FormationViolation", "FormationViolation", "ProtocolError", "FormationViolation")
V201_DIALECT = Dialect("FormatViolation", "MessageTypeNotSupported", "RpcFrameworkError", "RpcFrameworkError")


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


def _dialect(d: Dialect | str) -> Dialect:
    # a bare string is the 1.6 shape with that formation code (kept for callers that predate dialects)
    return d if isinstance(d, Dialect) else Dialect(d, d, "ProtocolError", d)


def parse(text: str | bytes, dialect: Dialect | str) -> Frame | FrameError:
    """Parse one frame, answering problems in `dialect`'s spelling."""
    d = _dialect(dialect)
    if isinstance(text, bytes):
        return FrameError(d.formation, "OCPP-J frames are text frames, not binary")
    try:
        msg = _loads(text)
    except (json.JSONDecodeError, RecursionError):
        return FrameError(d.formation, "frame is not valid JSON")
    if not isinstance(msg, list) or not msg:
        return FrameError(d.formation, "frame is not a JSON array")
    type_id = msg[0]
    mid = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else UNKNOWN_ID
    if type_id not in (CALL, CALLRESULT, CALLERROR) or isinstance(type_id, bool):
        return FrameError(d.unknown_type, f"unknown message type id {type_id!r}", mid)
    if len(msg) < 2 or not isinstance(msg[1], str):
        return FrameError(d.structure, "message id missing or not a string", mid, type_id)
    if len(mid) > MAX_MESSAGE_ID:
        return FrameError(d.formation, "message id longer than 36 characters", UNKNOWN_ID, type_id)
    if type_id == CALL:
        if len(msg) != 4:
            return FrameError(d.structure, "a CALL has exactly 4 elements", mid, type_id)
        if not isinstance(msg[2], str):
            return FrameError(d.bad_action, "action is not a string", mid, type_id)
        if not isinstance(msg[3], dict):
            return FrameError(d.formation, "payload is not a JSON object", mid, type_id, msg[2])
        return Frame(CALL, mid, action=msg[2], payload=msg[3])
    if type_id == CALLRESULT:
        if len(msg) != 3:
            return FrameError(d.structure, "a CALLRESULT has exactly 3 elements", mid, type_id)
        return Frame(CALLRESULT, mid, payload=msg[2])
    if len(msg) != 5:
        return FrameError(d.structure, "a CALLERROR has exactly 5 elements", mid, type_id)
    return Frame(CALLERROR, mid, error_code=str(msg[2]), error_description=str(msg[3]), error_details=msg[4])


_scan_once = json.JSONDecoder().scan_once


def _loads(text: str) -> Any:
    """`json.loads` of one frame.  A frame that is one JSON array with nothing around it -- every frame a charger
    sends in practice -- is read by the decoder's scanner directly: `json.loads` adds a whitespace pass before
    and after it, which was most of its cost for an OCPP-sized frame (~2.3 us -> ~0.7 us).  Anything else
    (whitespace around the array, data after it, invalid JSON) goes through `json.loads`, whose value and errors
    stay the reference."""
    if text[:1] == "[":
        try:
            msg, end = _scan_once(text, 0)
        except (StopIteration, json.JSONDecodeError):
            return json.loads(text)  # raises the reference error
        if end == len(text):
            return msg
    return json.loads(text)


def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _compact_encoder() -> Callable[[Any], str]:
    """Compact JSON (the text `json.dumps(obj, separators=(",", ":"))` gives), with its C encoder built ONCE.

    `JSONEncoder.encode` builds a new C encoder object on every call, which cost more than encoding an answer
    (~1.6 us against ~0.6 us).  Built without a circular-reference check: what is encoded here are answers made
    by our own handlers from JSON-shaped data, never a structure that contains itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: the library's own way
        return json.JSONEncoder(separators=(",", ":")).encode
    encode = make(None, _not_serializable, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda obj: "".join(encode(obj, 0))


_compact = _compact_encoder()


def call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return _compact([CALL, message_id, action, payload])


def call_result(message_id: str, payload: dict[str, Any]) -> str:
    return _compact([CALLRESULT, message_id, payload])


def call_error(message_id: str, code: str, description: str, details: dict[str, Any] | None = None) -> str:
    return _compact([CALLERROR, message_id, code, description[:255], details or {}])
