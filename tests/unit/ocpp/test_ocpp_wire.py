"""The edge's compiled Avro writers (edges/ocpp/wire.py) give byte for byte what the platform codec gives, for
every shape of OcppFrame/OcppConnection the edge writes, and refuse what the codec refuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chargeverse.avro import Codec, EncodeError, default_codec
from chargeverse.events import envelope
from edges.ocpp.wire import compile_encoder


@pytest.fixture(scope="module")
def codec() -> Codec:
    return default_codec()


def frame(**kw: object) -> dict:
    rec = envelope(source="edges.ocpp/host:1:9000", correlation_id="conn-1")
    rec.update(charge_point_id="CP-1", direction="IN", ocpp_version="ocpp1.6", connection_id="conn-1",
               raw='[2,"m1","Heartbeat",{}]', message_type_id=2, message_id="m1", action="Heartbeat", valid=True,
               error_code=None, error_description=None, answers=None, normalized=None, retransmission_of=None)
    rec.update(kw)
    return rec


@pytest.mark.parametrize("fields", [
    {},
    {"direction": "OUT", "message_type_id": 3, "raw": '[3,"m1",{}]', "answers": '[2,"m1","Heartbeat",{}]',
     "causation_id": "e-1", "retransmission_of": "e-0"},
    {"valid": False, "error_code": "FormationViolation", "error_description": "frame is not valid JSON",
     "message_type_id": None, "message_id": "-1", "action": None, "raw": "x" * 5000},
    {"raw": "Zähler ⚡ 測定", "normalized": "{}", "message_type_id": 4, "message_id": "é" * 36},
    {"occurred_at": datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc)},  # before the epoch
    {"occurred_at": datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=2)))},  # another zone
    {"recorded_at": datetime(2026, 11, 27, 12, 0, 0, 123456)},  # naive: read as UTC by both
])
def test_frames_encode_to_the_codecs_bytes(codec: Codec, fields: dict) -> None:
    rec = frame(**fields)
    enc = compile_encoder(codec, "OcppFrame")
    assert enc is not None
    assert enc(rec) == codec.encode("OcppFrame", rec)
    assert codec.decode(enc(rec))[1]["raw"] == rec["raw"]


def test_missing_optional_fields_take_their_defaults(codec: Codec) -> None:
    rec = frame()
    del rec["causation_id"], rec["retransmission_of"]
    assert compile_encoder(codec, "OcppFrame")(rec) == codec.encode("OcppFrame", rec)  # type: ignore[misc]


@pytest.mark.parametrize("state, close_code, address", [("CONNECTED", None, "127.0.0.1"),
                                                        ("DISCONNECTED", 1006, None),
                                                        ("DISCONNECTED", 4000, "::1")])
def test_connection_events_encode_to_the_codecs_bytes(codec: Codec, state: str, close_code: int | None,
                                                      address: str | None) -> None:
    rec = envelope(source="edges.ocpp/x", correlation_id="conn-1")
    rec.update(charge_point_id="CP-1", connection_id="conn-1", state=state, ocpp_version="ocpp2.0.1",
               edge_instance="host:1:9000", remote_address=address, close_code=close_code, security_profile=3)
    enc = compile_encoder(codec, "OcppConnection")
    assert enc is not None and enc(rec) == codec.encode("OcppConnection", rec)


@pytest.mark.parametrize("bad", [{"direction": "SIDEWAYS"}, {"message_type_id": "2"},
                                 {"message_type_id": 1 << 40}, {"raw": None}, {"charge_point_id": b"CP"}])
def test_what_the_codec_refuses_is_refused(codec: Codec, bad: dict) -> None:
    rec = frame(**bad)
    with pytest.raises(EncodeError):
        codec.encode("OcppFrame", rec)
    with pytest.raises(EncodeError):
        compile_encoder(codec, "OcppFrame")(rec)  # type: ignore[misc]


def test_a_required_field_missing_is_refused(codec: Codec) -> None:
    rec = frame()
    del rec["raw"]
    with pytest.raises(EncodeError, match="raw"):
        compile_encoder(codec, "OcppFrame")(rec)  # type: ignore[misc]
