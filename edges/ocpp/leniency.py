"""Lenient validation per charger model: accept *known* spec deviations of named models, record every one.

Real chargers break the schemas in a few recurring ways (over-long strings, enum values in the wrong case, a 1.6
StatusNotification with `errorCode: "Error"`, timestamps without an offset, numbers sent as strings, extra fields).
Refusing them strands a fleet; silently accepting them hides bad data.  So:

- strict by default: a model gets leniency only when configured (`Leniency`), and only the rules configured for it;
- a rule repairs exactly one kind of violation that the compiled schema reported; a frame with any violation no
  enabled rule repairs gets the strict CALLERROR, and the repaired payload must validate, or the frame is refused;
- every repair is recorded (`Deviation`: rule, where, the value sent, the value accepted) and published as an
  `OcppDeviation` event, and the repaired payload travels with the frame (`OcppFrame.normalized`); `raw` stays
  verbatim;
- cost: nothing for valid frames (repair only runs after a strict validation failed).

Which models deviate how is the table `KNOWN_DEVIATIONS` (reviewed, in code); configuration switches a model on,
either with its known rules or with an explicit rule list (for a model not in the table yet).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from edges.ocpp.schemas import SchemaSet, Violation

MAX_PASSES = 3


@dataclass(frozen=True)
class Deviation:
    rule: str
    path: str
    original: str  # JSON of the value sent
    corrected: str | None  # JSON of the value accepted; None when the value was dropped

    def as_record(self) -> dict[str, Any]:
        return {"rule": self.rule, "path": self.path, "original": self.original, "corrected": self.corrected}


_DROP = object()  # a rule's answer meaning "remove this key"


def _string_too_long(v: Violation) -> Any:
    if v.kind == "MaxLength" and isinstance(v.value, str) and isinstance(v.limit, int):
        return v.value[:v.limit]
    return None


def _enum_case(v: Violation) -> Any:
    if v.kind == "Enum" and isinstance(v.value, str) and v.limit:
        folded = v.value.casefold()
        for option in v.limit:
            if isinstance(option, str) and option.casefold() == folded:
                return option
    return None


def _error_code_error(v: Violation) -> Any:
    # 1.6 StatusNotification: some firmwares send errorCode "Error" for any fault; the spec's catch-all is
    # OtherError (details belong in vendorErrorCode).
    if v.kind == "Enum" and v.path == ("errorCode",) and v.value == "Error" and "OtherError" in (v.limit or ()):
        return "OtherError"
    return None


def _datetime_without_offset(v: Violation) -> Any:
    if v.kind != "Format" or v.limit != "date-time" or not isinstance(v.value, str):
        return None
    try:
        t = datetime.fromisoformat(v.value.replace(" ", "T", 1))
    except ValueError:
        return None
    if t.tzinfo is not None:
        return None
    return t.isoformat() + "Z"  # OCPP: all times are UTC


def _numeric_string(v: Violation) -> Any:
    if v.kind != "Type" or not isinstance(v.value, str) or not v.limit:
        return None
    text = v.value.strip()
    try:
        if "integer" in v.limit:
            return int(text)
        if "number" in v.limit:
            n = float(text)
            return int(n) if n.is_integer() and "." not in text else n
    except ValueError:
        return None
    return None


def _unknown_fields(v: Violation) -> Any:
    return _DROP if v.kind == "AdditionalProperties" and v.limit else None


#: rule name -> repair (the corrected value, `_DROP`, or None when the rule does not apply)
RULES: dict[str, Callable[[Violation], Any]] = {
    "string_too_long": _string_too_long,
    "enum_case": _enum_case,
    "error_code_error": _error_code_error,
    "datetime_without_offset": _datetime_without_offset,
    "numeric_string": _numeric_string,
    "unknown_fields": _unknown_fields,
}

#: (vendor, model) -> the deviations that model is known for.  Add a model here once its deviations are
#: understood; configuration then switches it on by name.
KNOWN_DEVIATIONS: dict[tuple[str, str], frozenset[str]] = {
    # our simulator's deliberately sloppy model (demos and tests of this mechanism)
    ("chargeverse-sim", "SIM-LAX"): frozenset({"string_too_long", "enum_case", "error_code_error",
                                               "datetime_without_offset"}),
}


class Leniency:
    """Which rules are enabled for which (vendor, model).  Empty: strict for everyone."""

    def __init__(self, enabled: Mapping[tuple[str, str], Iterable[str]] | None = None) -> None:
        self.enabled: dict[tuple[str, str], frozenset[str]] = {}
        for key, rules in (enabled or {}).items():
            rules = frozenset(rules)
            unknown = rules - RULES.keys()
            if unknown:
                raise ValueError(f"unknown leniency rules for {key}: {sorted(unknown)}; known: {sorted(RULES)}")
            self.enabled[key] = rules

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | None) -> Leniency:
        """From `{"vendor/model": "known" | [rule, ...]}` (a dict or its JSON text)."""
        if not config:
            return cls()
        if isinstance(config, str):
            config = json.loads(config)
        enabled: dict[tuple[str, str], Iterable[str]] = {}
        for name, rules in config.items():
            vendor, sep, model = name.partition("/")
            if not sep:
                raise ValueError(f"leniency key {name!r} is not 'vendor/model'")
            if rules == "known":
                if (vendor, model) not in KNOWN_DEVIATIONS:
                    raise ValueError(f"{name} has no known deviations; list its rules explicitly")
                rules = KNOWN_DEVIATIONS[(vendor, model)]
            enabled[(vendor, model)] = rules
        return cls(enabled)

    def rules_for(self, vendor: str | None, model: str | None) -> frozenset[str]:
        if vendor is None or model is None:
            return frozenset()
        return self.enabled.get((vendor, model), frozenset())


@dataclass(frozen=True)
class Repair:
    payload: dict[str, Any]
    deviations: tuple[Deviation, ...]


def _set(doc: Any, path: tuple[str | int, ...], value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def repair(schemas: SchemaSet, action: str, payload: dict[str, Any], rules: frozenset[str]) -> Repair | None:
    """The payload with every violation repaired by an enabled rule, or None (strict answer stands)."""
    if not rules:
        return None
    ordered = [(name, RULES[name]) for name in RULES if name in rules]
    fixed = copy.deepcopy(payload)
    deviations: list[Deviation] = []
    for _ in range(MAX_PASSES):
        violations = list(schemas.violations(action, fixed))
        if not violations:
            return Repair(fixed, tuple(deviations))
        touched: set[tuple[str | int, ...]] = set()
        for v in violations:
            if v.path in touched:  # a second violation of a value changed in this pass: look again next pass
                continue
            touched.add(v.path)
            for name, rule in ordered:
                new = rule(v)
                if new is None:
                    continue
                if new is _DROP:
                    holder = _get(fixed, v.path)
                    for key in v.limit:
                        if isinstance(holder, dict) and key in holder:
                            deviations.append(Deviation(name, "/".join(map(str, (*v.path, key))),
                                                        json.dumps(holder.pop(key)), None))
                else:
                    if not v.path:
                        return None
                    _set(fixed, v.path, new)
                    deviations.append(Deviation(name, v.pointer, json.dumps(v.value), json.dumps(new)))
                break
            else:
                return None  # a violation no enabled rule repairs: strict
    return Repair(fixed, tuple(deviations)) if schemas.check(action, fixed) is None else None
