"""Avro encoding of events: single-object encoding by default, Confluent wire format with a registry.

Every message carries its writer schema's identity, so a reader always knows how the bytes were written:
- Avro single-object encoding (the Avro spec): `C3 01` + the 8-byte little-endian CRC-64-AVRO fingerprint of the
  writer schema's parsing canonical form + the Avro binary body.
- Confluent wire format (when `CV_SCHEMA_REGISTRY_URL` is set): `00` + 4-byte big-endian registry schema id + body.

Readers resolve any earlier writer schema to the current reader schema of the same record name (Avro schema
resolution).  Earlier versions live in `schemas/avro/history/<Name>/<fingerprint>.avsc`; a test checks that every
committed version of a schema is there and stays backward *and* forward compatible with the current one.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from schemas import AVRO_DIR as SCHEMA_DIR
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class DecodeError(ValueError):
    """The bytes are not an event we can read (unknown schema, bad framing, corrupt body)."""


class EncodeError(ValueError):
    """The record does not match its schema; the message says which field."""


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes single-object encoding carries."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


@dataclass(frozen=True)
class WriterSchema:
    name: str
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes


class SchemaStore:
    """All schemas the platform can read: the current one per record name and every earlier version."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        self.current: dict[str, WriterSchema] = {}
        self.by_fingerprint: dict[bytes, WriterSchema] = {}
        for path in sorted(directory.glob("*.avsc")):
            ws = self._load(path)
            if ws.name in self.current:
                raise ValueError(f"two schemas named {ws.name}")
            self.current[ws.name] = ws
            self.by_fingerprint[ws.fingerprint] = ws
        for path in sorted((directory / "history").glob("*/*.avsc")):
            ws = self._load(path)
            self.by_fingerprint.setdefault(ws.fingerprint, ws)

    @staticmethod
    def _load(path: Path) -> WriterSchema:
        raw = json.loads(path.read_text())
        parsed = parse_schema(raw)  # keeps fastavro's parsed marker: no re-parse per call
        name = raw["name"].rsplit(".", 1)[-1]
        return WriterSchema(name, raw, parsed, schema_fingerprint(raw))

    def schema(self, name: str) -> WriterSchema:
        try:
            return self.current[name]
        except KeyError:
            raise EncodeError(f"no schema named {name!r} in {SCHEMA_DIR}") from None


class Registry(Protocol):
    """What the Confluent framing needs from a schema registry."""

    def id_for(self, subject: str, schema: dict[str, Any]) -> int: ...
    def schema_for(self, schema_id: int) -> dict[str, Any]: ...


class HttpRegistry:
    """A Confluent-compatible schema registry over HTTP (RecordNameStrategy subjects: one per event type)."""

    def __init__(self, url: str) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=10)
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def id_for(self, subject: str, schema: dict[str, Any]) -> int:
        if subject not in self._ids:
            r = self._http.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(schema)},
                                headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
            r.raise_for_status()
            self._ids[subject] = int(r.json()["id"])
        return self._ids[subject]

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._schemas:
            r = self._http.get(f"/schemas/ids/{schema_id}")
            r.raise_for_status()
            self._schemas[schema_id] = json.loads(r.json()["schema"])
        return self._schemas[schema_id]


class Codec:
    """Encode/decode events.  `registry=None` means Avro single-object encoding."""

    def __init__(self, store: SchemaStore | None = None, registry: Registry | None = None) -> None:
        self.store = store or SchemaStore()
        self.registry = registry
        self._registry_writers: dict[int, WriterSchema] = {}

    def encode(self, event_type: str, record: dict[str, Any]) -> bytes:
        ws = self.store.schema(event_type)
        buf = io.BytesIO()
        if self.registry is None:
            buf.write(SINGLE_OBJECT_MAGIC)
            buf.write(ws.fingerprint)
        else:
            buf.write(CONFLUENT_MAGIC)
            buf.write(struct.pack(">I", self.registry.id_for(ws.raw["namespace"] + "." + ws.name, ws.raw)))
        try:
            fastavro.schemaless_writer(buf, ws.parsed, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"{event_type}: {exc}") from exc
        return buf.getvalue()

    def writer_of(self, data: bytes) -> tuple[WriterSchema, int]:
        """The writer schema of a message and where its body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC and len(data) >= 10:
            ws = self.store.by_fingerprint.get(data[2:10])
            if ws is None:
                raise DecodeError(f"unknown writer schema fingerprint {data[2:10].hex()}")
            return ws, 10
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5 and self.registry is not None:
            schema_id = struct.unpack(">I", data[1:5])[0]
            if schema_id not in self._registry_writers:
                raw = self.registry.schema_for(schema_id)
                self._registry_writers[schema_id] = WriterSchema(
                    raw["name"].rsplit(".", 1)[-1], raw, parse_schema(raw),
                    schema_fingerprint(raw))
            return self._registry_writers[schema_id], 5
        raise DecodeError(f"not a chargeverse event: starts {data[:10].hex() or 'empty'}")

    def decode(self, data: bytes | None) -> tuple[str, dict[str, Any]]:
        """(event type, record resolved to the current reader schema)."""
        if not data:
            raise DecodeError("empty message")
        writer, start = self.writer_of(data)
        reader = self.store.current.get(writer.name)
        if reader is None:
            raise DecodeError(f"no reader schema for {writer.name}")
        try:
            rec = fastavro.schemaless_reader(io.BytesIO(data[start:]), writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises assorted errors on corrupt bodies
            raise DecodeError(f"corrupt {writer.name} body: {exc}") from exc
        return writer.name, rec  # type: ignore[return-value]


_default: Codec | None = None


def default_codec() -> Codec:
    """The process-wide codec, framed as the settings say."""
    global _default
    if _default is None:
        from chargeverse.settings import get_settings

        url = get_settings().schema_registry_url
        _default = Codec(registry=HttpRegistry(url) if url else None)
    return _default
