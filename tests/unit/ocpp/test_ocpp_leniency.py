"""Leniency is off by default, repairs only what an enabled rule covers, records every repair, and the repaired
payload always validates (edges/ocpp/leniency.py invariants)."""

from __future__ import annotations

import json

import pytest

from edges.ocpp.leniency import KNOWN_DEVIATIONS, RULES, Leniency, repair
from edges.ocpp.v16.validation import SCHEMA_SET as S16
from edges.ocpp.v201.validation import SCHEMA_SET as S201

ALL = frozenset(RULES)
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "2026-01-01T00:00:00Z"}


def test_strict_by_default() -> None:
    assert Leniency().rules_for("any", "model") == frozenset()
    assert repair(S16, "StatusNotification", {**STATUS, "status": "available"}, frozenset()) is None


@pytest.mark.parametrize("rule, payload, path, corrected", [
    ("enum_case", {**STATUS, "status": "available"}, "status", "Available"),
    ("enum_case", {**STATUS, "errorCode": "NOERROR"}, "errorCode", "NoError"),
    ("error_code_error", {**STATUS, "errorCode": "Error"}, "errorCode", "OtherError"),
    ("string_too_long", {**STATUS, "info": "i" * 60}, "info", "i" * 50),
    ("datetime_without_offset", {**STATUS, "timestamp": "2026-01-01T10:00:00"}, "timestamp",
     "2026-01-01T10:00:00Z"),
    ("datetime_without_offset", {**STATUS, "timestamp": "2026-01-01 10:00:00.5"}, "timestamp",
     "2026-01-01T10:00:00.500000Z"),
    ("numeric_string", {**STATUS, "connectorId": "2"}, "connectorId", 2),
])
def test_each_rule_repairs_its_deviation_and_records_it(rule, payload, path, corrected) -> None:  # noqa: ANN001
    assert S16.check("StatusNotification", payload) is not None  # really a violation
    assert repair(S16, "StatusNotification", payload, ALL - {rule}) is None  # no other rule covers it
    out = repair(S16, "StatusNotification", payload, frozenset({rule}))
    assert out is not None and S16.check("StatusNotification", out.payload) is None
    assert out.payload[path] == corrected
    (d,) = out.deviations
    assert (d.rule, d.path, json.loads(d.original), json.loads(d.corrected)) == (rule, path, payload[path],
                                                                                 corrected)
    assert payload[path] != corrected  # the caller's payload (the verbatim frame) is never touched


def test_unknown_fields_are_dropped_and_recorded_with_no_corrected_value() -> None:
    out = repair(S16, "Heartbeat", {"vendorNonsense": 1}, frozenset({"unknown_fields"}))
    assert out is not None and out.payload == {}
    assert [(d.rule, d.path, d.corrected) for d in out.deviations] == [("unknown_fields", "vendorNonsense", None)]


def test_several_deviations_in_one_frame_and_in_nested_201_payloads() -> None:
    p = {"timestamp": "2026-01-01T10:00:00", "connectorStatus": "occupied", "evseId": 1, "connectorId": 1}
    out = repair(S201, "StatusNotification", p, ALL)
    assert out is not None and out.payload["connectorStatus"] == "Occupied"
    assert {d.rule for d in out.deviations} == {"enum_case", "datetime_without_offset"}
    boot = {"chargingStation": {"model": "M" * 30, "vendorName": "v"}, "reason": "powerup"}
    out = repair(S201, "BootNotification", boot, ALL)
    assert out is not None and out.payload == {"chargingStation": {"model": "M" * 20, "vendorName": "v"},
                                               "reason": "PowerUp"}
    assert {d.path for d in out.deviations} == {"chargingStation/model", "reason"}


def test_a_violation_no_enabled_rule_covers_keeps_the_strict_answer() -> None:
    missing = {k: v for k, v in STATUS.items() if k != "status"}
    assert repair(S16, "StatusNotification", missing, ALL) is None  # a missing field is never invented
    both = {**STATUS, "status": "available", "info": "i" * 60}
    assert repair(S16, "StatusNotification", both, frozenset({"enum_case"})) is None  # half-repairable: strict
    assert repair(S16, "StatusNotification", {**STATUS, "status": "Dancing"}, ALL) is None
    assert repair(S16, "StatusNotification", {**STATUS, "connectorId": "one"}, ALL) is None


def test_configuration_by_model_name() -> None:
    lax = Leniency.from_config({"chargeverse-sim/SIM-LAX": "known", "ACME/X1": ["enum_case"]})
    assert lax.rules_for("chargeverse-sim", "SIM-LAX") == KNOWN_DEVIATIONS[("chargeverse-sim", "SIM-LAX")]
    assert lax.rules_for("ACME", "X1") == {"enum_case"}
    assert lax.rules_for("ACME", "X2") == frozenset() and lax.rules_for(None, None) == frozenset()
    assert Leniency.from_config('{"ACME/X1": ["numeric_string"]}').rules_for("ACME", "X1") == {"numeric_string"}
    assert Leniency.from_config(None).enabled == {}
    with pytest.raises(ValueError, match="unknown leniency rules"):
        Leniency.from_config({"ACME/X1": ["anything_goes"]})
    with pytest.raises(ValueError, match="vendor/model"):
        Leniency.from_config({"ACME": ["enum_case"]})
    with pytest.raises(ValueError, match="no known deviations"):
        Leniency.from_config({"ACME/X9": "known"})
