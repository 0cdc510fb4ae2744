"""Event contracts: framing, fingerprints, schema resolution, envelope rules."""

from __future__ import annotations

import copy
import json
import struct

import pytest

from chargeverse.avro import Codec, DecodeError, EncodeError, SchemaStore, schema_fingerprint
from chargeverse.events import ENVELOPE_FIELDS, derive, envelope, uuid7
from chargeverse.topics import CATALOGUE


def _heartbeat() -> dict:
    rec = envelope(source="test", correlation_id="conn-1")
    rec["station_id"] = "CP-1"
    return rec


def test_crc64_avro_fingerprint_matches_the_avro_spec_value_for_null() -> None:
    # Avro spec: the CRC-64-AVRO fingerprint of "null" is 0x63dd24e7cc258f8a, written little-endian
    assert schema_fingerprint("null").hex() == "8a8f25cce724dd63"  # type: ignore[arg-type]


def test_single_object_encoding_carries_magic_and_fingerprint_and_round_trips() -> None:
    codec = Codec()
    rec = _heartbeat()
    data = codec.encode("StationHeartbeat", rec)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.store.schema("StationHeartbeat").fingerprint
    etype, back = codec.decode(data)
    assert etype == "StationHeartbeat"
    assert back == rec


def test_encoding_refuses_a_record_that_breaks_its_schema() -> None:
    rec = _heartbeat()
    del rec["station_id"]
    with pytest.raises(EncodeError, match="StationHeartbeat"):
        Codec().encode("StationHeartbeat", rec)


@pytest.mark.parametrize("data", [b"", b"{}", b"\xc3\x01" + b"\x00" * 8 + b"x", b"\x00\x00\x00\x00\x01abc",
                                  b"\xc3\x01"])
def test_undecodable_bytes_raise_decode_error_not_anything_else(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Codec().decode(data)


def test_corrupt_body_with_a_known_fingerprint_is_a_decode_error() -> None:
    codec = Codec()
    data = codec.encode("OcppFrame", {**envelope(source="t", correlation_id="c"), "charge_point_id": "CP",
                                      "direction": "IN", "ocpp_version": "ocpp1.6", "connection_id": "c",
                                      "message_type_id": 2, "message_id": "1", "action": "Heartbeat",
                                      "raw": "[2,\"1\",\"Heartbeat\",{}]", "valid": True, "error_code": None,
                                      "error_description": None})
    with pytest.raises(DecodeError):
        codec.decode(data[:14])


def test_an_older_writer_schema_is_resolved_to_the_current_reader(tmp_path) -> None:  # noqa: ANN001
    """A field added later (with a default) is filled in when reading bytes written with the old schema."""
    store = SchemaStore()
    current = copy.deepcopy(store.schema("StationHeartbeat").raw)
    old = copy.deepcopy(current)
    current["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    (tmp_path / "StationHeartbeat.avsc").write_text(json.dumps(current))
    (tmp_path / "history" / "StationHeartbeat").mkdir(parents=True)
    (tmp_path / "history" / "StationHeartbeat" / "old.avsc").write_text(json.dumps(old))
    old_codec = Codec(SchemaStore(_dir_with(tmp_path / "old", old)))
    new_codec = Codec(SchemaStore(tmp_path))
    data = old_codec.encode("StationHeartbeat", _heartbeat())
    etype, rec = new_codec.decode(data)
    assert etype == "StationHeartbeat" and rec["note"] is None and rec["station_id"] == "CP-1"


def _dir_with(d, schema):  # noqa: ANN001, ANN202
    d.mkdir()
    (d / f"{schema['name']}.avsc").write_text(json.dumps(schema))
    return d


class _DictRegistry:
    """Unit-test registry: ids by subject (the framing logic is what is under test here)."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict] = {}
        self.ids: dict[str, int] = {}

    def id_for(self, subject: str, schema: dict) -> int:
        if subject not in self.ids:
            self.ids[subject] = len(self.ids) + 1
            self.schemas[self.ids[subject]] = schema
        return self.ids[subject]

    def schema_for(self, schema_id: int) -> dict:
        return self.schemas[schema_id]


def test_confluent_wire_format_when_a_registry_is_configured() -> None:
    reg = _DictRegistry()
    codec = Codec(registry=reg)
    data = codec.encode("StationHeartbeat", _heartbeat())
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == reg.ids["chargeverse.events.StationHeartbeat"]
    assert codec.decode(data)[1]["station_id"] == "CP-1"


def test_every_schema_starts_with_the_shared_envelope() -> None:
    store = SchemaStore()
    for name, ws in store.current.items():
        assert tuple(f["name"] for f in ws.raw["fields"][:len(ENVELOPE_FIELDS)]) == ENVELOPE_FIELDS, name
        assert ws.raw["namespace"] == "chargeverse.events"


def test_every_catalogued_event_type_has_a_schema() -> None:
    store = SchemaStore()
    for t in CATALOGUE:
        for e in t.events:
            assert e in store.current, f"{t.name} lists {e} but schemas/avro has no {e}.avsc"


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
    assert len(set(ids)) == 50


def test_derived_events_have_stable_ids_and_keep_the_causal_chain() -> None:
    cause = _heartbeat()
    a = derive(cause, tag="x", source="p", station_id="CP-1")
    b = derive(cause, tag="x", source="p", station_id="CP-1")
    assert a == b  # re-processing re-emits the identical event
    assert a["causation_id"] == cause["event_id"] and a["correlation_id"] == cause["correlation_id"]
    assert derive(cause, tag="y", source="p")["event_id"] != a["event_id"]


def test_unknown_fields_are_refused_and_missing_defaulted_fields_take_their_default() -> None:
    codec = Codec()
    rec = _heartbeat()
    with pytest.raises(EncodeError, match="more fields"):
        codec.encode("StationHeartbeat", {**rec, "bogus": 1})
    del rec["causation_id"]  # has a default (null)
    assert codec.decode(codec.encode("StationHeartbeat", rec))[1]["causation_id"] is None
