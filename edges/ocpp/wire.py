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
