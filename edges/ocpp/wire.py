"""Avro encoders for the edge's own hot-path events (OcppFrame, OcppConnection), compiled once from the current
schemas: the same bytes as `chargeverse.avro.Codec.encode`, at a fraction of the cost.

Why: every OCPP frame costs the edge two events (the IN frame and the OUT answer).  fastavro's generic writer walks
the parsed schema per field and per call (type dispatch, union resolution by trying each branch, logical-type
conversion); for these flat records of strings, optional strings/ints, one enum and two timestamps, a writer
specialised per field does the same work with a few byte operations (measured in bench/ocpp_edge.py's
neighbour, tests/unit/ocpp/test_ocpp_wire.py checks the bytes are identical).

Scope: single-object encoding only (the default).  With a schema registry (`CV_SCHEMA_REGISTRY_URL`), or for a
schema with a field type this module does not specialise, `compile_encoder` returns None and the caller uses the
codec.  A value that does not fit its field (wrong type, unknown enum symbol) raises EncodeError like the codec.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from chargeverse.avro import SINGLE_OBJECT_MAGIC, Codec, EncodeError

Encoder = Callable[[dict[str, Any]], bytes]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _long(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _SMALL[z]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SMALL = [bytes([z]) for z in range(0x80)]


def _string(v: Any) -> bytes:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {type(v).__name__}")
    b = v.encode()
    n = len(b)
    return (_SMALL[n << 1] if n < 64 else _long(n)) + b


def _int(v: Any) -> bytes:
    if type(v) is not int:  # bool is not an Avro int
        raise TypeError(f"expected an int, got {type(v).__name__}")
    if not -(1 << 31) <= v < (1 << 31):
        raise ValueError(f"{v} does not fit an Avro int")
    return _long(v)


def _timestamp_micros(v: Any) -> bytes:
    if type(v) is int:
        return _long(v)
    if not isinstance(v, datetime):
        raise TypeError(f"expected a datetime, got {type(v).__name__}")
    if v.tzinfo is None:  # fastavro reads a naive datetime as UTC
        v = v.replace(tzinfo=timezone.utc)
    d = v - _EPOCH
    return _long((d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds)


def _boolean(v: Any) -> bytes:
    if type(v) is not bool:
        raise TypeError(f"expected a boolean, got {type(v).__name__}")
    return b"\x01" if v else b"\x00"


_PRIMITIVE: dict[str, Callable[[Any], bytes]] = {"string": _string, "int": _int, "boolean": _boolean}


def _field_writer(ftype: Any) -> tuple[Callable[[Any], bytes], bool] | None:
    """(writer, nullable) for one field type, or None when not specialised."""
    if isinstance(ftype, str) and ftype in _PRIMITIVE:
        return _PRIMITIVE[ftype], False
    if isinstance(ftype, dict):
        if ftype.get("type") == "long" and ftype.get("logicalType") == "timestamp-micros":
            return _timestamp_micros, False
        if ftype.get("type") == "enum":
            index = {sym: _long(i) for i, sym in enumerate(ftype["symbols"])}

            def enum(v: Any, index: dict[str, bytes] = index) -> bytes:
                try:
                    return index[v]
                except (KeyError, TypeError):
                    raise ValueError(f"{v!r} is not one of {list(index)}") from None
            return enum, False
    if isinstance(ftype, list) and len(ftype) == 2 and ftype[0] == "null":
        inner = _field_writer(ftype[1])
        if inner is not None and not inner[1]:
            return inner[0], True
    return None


def compile_encoder(codec: Codec, event_type: str) -> Encoder | None:
    """An encoder of `event_type` records giving the codec's bytes, or None when this module cannot."""
    if codec.registry is not None:
        return None
    ws = codec.store.schema(event_type)
    head = SINGLE_OBJECT_MAGIC + ws.fingerprint
    fields: list[tuple[str, Callable[[Any], bytes], bool, bool, Any]] = []
    for f in ws.raw["fields"]:
        w = _field_writer(f["type"])
        if w is None:
            return None
        has_default = "default" in f
        fields.append((f["name"], w[0], w[1], has_default, f.get("default")))

    def encode(record: dict[str, Any]) -> bytes:
        parts = [head]
        get = record.get
        try:
            for name, write, nullable, has_default, default in fields:
                v = get(name, default) if has_default else record[name]
                if nullable:
                    if v is None:
                        parts.append(b"\x00")
                        continue
                    parts.append(b"\x02")
                parts.append(write(v))
        except (KeyError, TypeError, ValueError) as exc:
            raise EncodeError(f"{event_type}: field {name!r}: {exc}") from exc
        return b"".join(parts)

    return encode


#: OcppFrame's fields in schema order, as `FrameWriter` writes them (checked against the current schema)
_FRAME_LAYOUT = (
    ("event_id", "string"), ("occurred_at", "timestamp"), ("recorded_at", "timestamp"), ("source", "string"),
    ("correlation_id", "string"), ("causation_id", "?string"), ("charge_point_id", "string"),
    ("direction", "enum:IN,OUT"), ("ocpp_version", "string"), ("connection_id", "string"),
    ("message_type_id", "?int"), ("message_id", "?string"), ("action", "?string"), ("raw", "string"),
    ("valid", "boolean"), ("error_code", "?string"), ("error_description", "?string"), ("answers", "?string"),
    ("normalized", "?string"), ("retransmission_of", "?string"),
)


def _kind(ftype: Any) -> str:
    if isinstance(ftype, str):
        return ftype
    if isinstance(ftype, list) and len(ftype) == 2 and ftype[0] == "null":
        return "?" + _kind(ftype[1])
    if isinstance(ftype, dict):
        if ftype.get("type") == "long" and ftype.get("logicalType") == "timestamp-micros":
            return "timestamp"
        if ftype.get("type") == "enum":
            return "enum:" + ",".join(ftype["symbols"])
    return repr(ftype)


def _opt_string(v: Any) -> bytes:
    return b"\x00" if v is None else b"\x02" + _string(v)


class FrameWriter:
    """The OcppFrame events of ONE connection, written straight to Avro bytes.

    Why: every OCPP frame costs the edge two OcppFrame events, and building each as a dict and encoding it field by
    field was a fifth of the edge's CPU per frame.  Seven of the twenty fields (source, correlation and connection
    id, charge point, version, direction) never change on a connection, so they are encoded once here; the two
    timestamps are the same instant (the edge records a frame as it sees it) and are encoded once per event.

    Only built by `frame_writer_factory`, which checks the current OcppFrame schema has exactly the layout this
    class writes; tests/unit/ocpp/test_ocpp_wire.py checks the bytes equal the codec's for every shape.
    """

    __slots__ = ("_head", "_envelope_tail", "_in", "_out")

    def __init__(self, head: bytes, source: str, charge_point_id: str, ocpp_version: str, connection_id: str) -> None:
        self._head = head
        # source, correlation_id (the connection: every frame of one connection is one conversation)
        self._envelope_tail = _string(source) + _string(connection_id)
        rest = _string(ocpp_version) + _string(connection_id)
        self._in = _string(charge_point_id) + b"\x00" + rest
        self._out = _string(charge_point_id) + b"\x02" + rest

    def write(self, direction: str, event_id: str, micros: int, causation_id: str | None, raw: str,
              fields: dict[str, Any]) -> bytes:
        """One event; `fields` holds the frame's other fields (absent = their defaults: valid, the rest null).

        Raises EncodeError for a value that does not fit its field, as the codec would."""
        if direction == "IN":
            conn = self._in
        elif direction == "OUT":
            conn = self._out
        else:
            raise EncodeError(f"OcppFrame: field 'direction': {direction!r} is not one of ['IN', 'OUT']")
        get = fields.get
        try:
            ts = _long(micros) if type(micros) is int else _timestamp_micros(micros)
            mtype = get("message_type_id")
            valid = get("valid", True)
            return b"".join((
                self._head, _string(event_id), ts, ts, self._envelope_tail, _opt_string(causation_id), conn,
                b"\x00" if mtype is None else b"\x02" + _int(mtype),
                _opt_string(get("message_id")), _opt_string(get("action")), _string(raw),
                _boolean(valid), _opt_string(get("error_code")), _opt_string(get("error_description")),
                _opt_string(get("answers")), _opt_string(get("normalized")), _opt_string(get("retransmission_of")),
            ))
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"OcppFrame: {exc}") from exc


def frame_writer_factory(codec: Codec) -> Callable[[str, str, str, str], FrameWriter] | None:
    """`(source, charge_point_id, ocpp_version, connection_id) -> FrameWriter`, or None when the codec writes
    through a schema registry or the OcppFrame schema no longer has the layout FrameWriter writes."""
    if codec.registry is not None:
        return None
    ws = codec.store.schema("OcppFrame")
    if tuple((f["name"], _kind(f["type"])) for f in ws.raw["fields"]) != _FRAME_LAYOUT:
        return None
    head = SINGLE_OBJECT_MAGIC + ws.fingerprint

    def make(source: str, charge_point_id: str, ocpp_version: str, connection_id: str) -> FrameWriter:
        return FrameWriter(head, source, charge_point_id, ocpp_version, connection_id)
    return make
