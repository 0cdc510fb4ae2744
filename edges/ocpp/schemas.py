"""The official OCPP JSON schemas (shipped in the `ocpp` package), compiled once each by jsonschema-rs.

Why compiled: the stock Python validator costs ~1 ms a message and saturates a core at ~1.2k msgs/s; the same
schemas compiled by jsonschema-rs check a payload in a few µs (DESIGN.md §5).  Validation stays on for every CALL.

Error mapping (OCPP-J 1.6 §4.2.3, OCPP-J 2.0.1 §4.3; the versions differ only in spelling, see `Codes`):
a wrong type or malformed date-time -> TypeConstraintViolation; a missing required field -> occurrence
violation; an unknown field -> formation/format violation; a value out of its enumeration, length or range ->
PropertyConstraintViolation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema_rs


@dataclass(frozen=True)
class Codes:
    occurrence: str
    formation: str
    type: str = "TypeConstraintViolation"
    property: str = "PropertyConstraintViolation"


@dataclass(frozen=True)
class Violation:
    """One schema violation, in a shape the leniency rules can act on (no jsonschema-rs types leak out)."""

    kind: str  # jsonschema-rs error kind name: Type, Format, Required, AdditionalProperties, Enum, MaxLength, ...
    path: tuple[str | int, ...]  # where in the payload
    value: Any  # the offending value
    message: str
    limit: Any = None  # MaxLength: the limit; Enum: the options; Type: the expected types; Format: the format

    @property
    def pointer(self) -> str:
        return "/".join(str(p) for p in self.path) or "payload"


class SchemaSet:
    """The request (and response) schemas of one OCPP version."""

    def __init__(self, directory: Path, request_suffix: str, codes: Codes) -> None:
        self.directory = directory
        self.request_suffix = request_suffix
        self.codes = codes
        self._validators: dict[str, jsonschema_rs.Validator | None] = {}

    def _compile(self, name: str) -> jsonschema_rs.Validator | None:
        if name not in self._validators:
            path = self.directory / f"{name}.json"
            if not path.exists():
                self._validators[name] = None
            else:
                schema = json.loads(path.read_text())
                schema.pop("$schema", None)  # draft-04/06 id; validated with the same keywords
                self._validators[name] = jsonschema_rs.validator_for(schema, validate_formats=True)
        return self._validators[name]

    def request(self, action: str) -> jsonschema_rs.Validator | None:
        return self._compile(f"{action}{self.request_suffix}")

    def response(self, action: str) -> jsonschema_rs.Validator | None:
        return self._compile(f"{action}Response")

    def violations(self, action: str, payload: dict[str, Any]) -> Iterator[Violation]:
        v = self.request(action)
        if v is None:
            return
        for err in v.iter_errors(payload):
            kind = err.kind
            name = type(kind).__name__
            limit = getattr(kind, "limit", None)
            if name == "Enum":
                limit = list(kind.options)
            elif name == "Type":
                limit = list(kind.types) if hasattr(kind, "types") else None
            elif name == "Format":
                limit = kind.format
            elif name == "AdditionalProperties":
                limit = list(kind.unexpected)
            yield Violation(name, tuple(err.instance_path), err.instance, err.message, limit)

    def code_of(self, v: Violation) -> str:
        if v.kind in ("Type", "Format"):
            return self.codes.type
        if v.kind == "Required":
            return self.codes.occurrence
        if v.kind == "AdditionalProperties":
            return self.codes.formation
        return self.codes.property

    def check(self, action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
        """None when valid, else (CALLERROR code, human reason) of the first violation."""
        v = self.request(action)
        if v is None or v.is_valid(payload):
            return None
        for viol in self.violations(action, payload):
            return self.code_of(viol), f"{viol.pointer}: {viol.message}"
        return None

    def response_errors(self, action: str, payload: dict[str, Any]) -> list[str]:
        """What is wrong with an answer of ours (tests and self-checks; never on the hot path)."""
        v = self.response(action)
        if v is None:
            return [f"no response schema for {action}"]
        return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in v.iter_errors(payload)]
