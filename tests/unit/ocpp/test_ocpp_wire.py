"""The edge's compiled Avro writers (edges/ocpp/wire.py) give byte for byte what the platform codec gives, for
every shape of OcppFrame/OcppConnection the edge writes, and refuse what the codec refuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chargeverse.avro import Codec, EncodeError, default_codec
from chargeverse.events import envelope
from edges.ocpp.wire import compile_encoder, frame_writer_factory


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


#: the frame shapes the edge writes: a CALL in, an answer out, a malformed frame, non-ASCII text
SHAPES = [
    {},
    {"direction": "OUT", "message_type_id": 3, "raw": '[3,"m1",{}]', "answers": '[2,"m1","Heartbeat",{}]',
     "causation_id": "e-1", "retransmission_of": "e-0"},
    {"valid": False, "error_code": "FormationViolation", "error_description": "frame is not valid JSON",
     "message_type_id": None, "message_id": "-1", "action": None, "raw": "x" * 5000},
    {"raw": "Zähler ⚡ 測定", "normalized": "{}", "message_type_id": 4, "message_id": "é" * 36},
]


@pytest.mark.parametrize("fields", [
    *SHAPES,
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


# ---- FrameWriter: one connection's frames, its constant fields encoded once -----------------------------------
FRAME_FIELDS = ("message_type_id", "message_id", "action", "valid", "error_code", "error_description", "answers",
                "normalized", "retransmission_of")


@pytest.mark.parametrize("fields", [
    *SHAPES,
    {"message_type_id": -(1 << 31), "action": "", "raw": ""},
])
@pytest.mark.parametrize("when", [datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=timezone.utc),
                                  datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc)])
def test_a_connections_frame_writer_gives_the_codecs_bytes(codec: Codec, fields: dict, when: datetime) -> None:
    rec = frame(**fields)
    rec["occurred_at"] = rec["recorded_at"] = when
    make = frame_writer_factory(codec)
    assert make is not None
    w = make(rec["source"], rec["charge_point_id"], rec["ocpp_version"], rec["connection_id"])
    micros = round((when - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6)
    got = w.write(rec["direction"], rec["event_id"], micros, rec["causation_id"], rec["raw"],
                  {k: rec[k] for k in FRAME_FIELDS if k in fields or k in ("message_type_id", "message_id", "action")})
    assert got == codec.encode("OcppFrame", rec)
    assert w.write(rec["direction"], rec["event_id"], when, rec["causation_id"], rec["raw"],
                   {k: rec[k] for k in FRAME_FIELDS}) == got  # a datetime works too, and explicit defaults


@pytest.mark.parametrize("direction, fields", [("SIDEWAYS", {}), ("IN", {"message_type_id": "2"}),
                                               ("IN", {"message_type_id": 1 << 40}),
                                               ("IN", {"message_id": 7})])
def test_the_frame_writer_refuses_what_the_codec_refuses(codec: Codec, direction: str, fields: dict) -> None:
    rec = frame(direction=direction, **fields)
    with pytest.raises(EncodeError):
        codec.encode("OcppFrame", rec)
    w = frame_writer_factory(codec)("src", "CP-1", "ocpp1.6", "conn-1")  # type: ignore[misc]
    with pytest.raises(EncodeError):
        w.write(direction, "e-1", 0, None, "raw", fields)


def test_no_frame_writer_when_the_schema_has_another_layout(codec: Codec) -> None:
    """A schema change the writer does not know falls back to the codec instead of writing stale bytes."""
    import copy
    import dataclasses

    changed = copy.copy(codec)
    changed.store = copy.copy(codec.store)
    real = codec.store.schema("OcppFrame")
    shifted = dataclasses.replace(real, raw={**real.raw, "fields": [
        *real.raw["fields"], {"name": "extra", "type": ["null", "string"], "default": None}]})
    changed.store.schema = lambda name: shifted if name == "OcppFrame" else real  # type: ignore[method-assign]
    assert frame_writer_factory(changed) is None
    assert frame_writer_factory(codec) is not None
