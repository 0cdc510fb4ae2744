"""Realistic `ocpp.frames` records for the session fold's tests.

Payloads are built with the `ocpp` package's dataclasses (camelCase as on the wire) and checked against the
official OCPP JSON schemas, so the fold is tested on frames a real charger and our edge would put on the log: the
charger's CALL (IN), and our CALLRESULT (OUT) carrying the CALL it answers in `answers`.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import get_validator
from ocpp.v16 import call as call16
from ocpp.v16 import datatypes as dt16
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as dt201

from chargeverse.events import envelope
from streams.sessions import apply, new_state

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
V16, V201 = "ocpp1.6", "ocpp2.0.1"
_SCHEMA_VERSION = {V16: "1.6", V201: "2.0.1"}


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def wire(obj: Any) -> dict[str, Any]:
    """An ocpp dataclass as the JSON object a charger sends."""
    return snake_to_camel_case(remove_nones(serialize_as_dict(obj)))


class Charger:
    """Produces the frame records one charge point's traffic puts on `ocpp.frames`."""

    def __init__(self, cp: str = "CP-1", version: str = V16) -> None:
        self.cp, self.version = cp, version
        self.connection = f"conn-{cp}"
        self._ids = itertools.count(1)

    def record(self, direction: str, msg: list[Any], *, action: str | None, answers: str | None = None,
               valid: bool = True, raw: str | None = None) -> dict[str, Any]:
        rec = envelope(source="edges.ocpp/test", correlation_id=self.connection)
        rec.update(charge_point_id=self.cp, direction=direction, ocpp_version=self.version,
                   connection_id=self.connection, message_type_id=msg[0], message_id=msg[1], action=action,
                   raw=raw if raw is not None else json.dumps(msg), valid=valid, error_code=None,
                   error_description=None, answers=answers)
        return rec

    def call(self, action: str, payload: dict[str, Any], *, validate: bool = True) -> dict[str, Any]:
        if validate:
            get_validator(2, action, _SCHEMA_VERSION[self.version]).validate(payload)
        return self.record("IN", [2, str(next(self._ids)), action, payload], action=action)

    def result(self, call_frame: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        action = call_frame["action"]
        get_validator(3, action, _SCHEMA_VERSION[self.version]).validate(payload)
        return self.record("OUT", [3, call_frame["message_id"], payload], action=action,
                           answers=call_frame["raw"])

    def error(self, call_frame: dict[str, Any], code: str = "InternalError") -> dict[str, Any]:
        return self.record("OUT", [4, call_frame["message_id"], code, "", {}], action=call_frame["action"],
                           answers=call_frame["raw"])

    # ---- OCPP 1.6 ----
    def start16(self, tx: int, *, meter_start: int = 1_000_000, t: datetime = T0, connector: int = 1,
                id_tag: str = "04A1B2C3", status: str = "Accepted",
                reservation_id: int | None = None) -> list[dict[str, Any]]:
        req = self.call("StartTransaction", wire(call16.StartTransaction(
            connector_id=connector, id_tag=id_tag, meter_start=meter_start, timestamp=iso(t),
            reservation_id=reservation_id)))
        res = self.result(req, {"transactionId": tx, "idTagInfo": {"status": status}})
        return [req, res]

    def meter16(self, tx: int | None, *elements: dict[str, Any], connector: int = 1) -> dict[str, Any]:
        return self.call("MeterValues", wire(call16.MeterValues(
            connector_id=connector, transaction_id=tx, meter_value=list(elements))))

    def stop16(self, tx: int, *, meter_stop: int, t: datetime, reason: str | None = None, id_tag: str | None = None,
               data: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        req = self.call("StopTransaction", wire(call16.StopTransaction(
            meter_stop=meter_stop, timestamp=iso(t), transaction_id=tx, reason=reason, id_tag=id_tag,
            transaction_data=data)))
        return [req, self.result(req, {"idTagInfo": {"status": "Accepted"}})]

    # ---- OCPP 2.0.1 ----
    def event201(self, event_type: str, seq: int, tx: str, *, t: datetime, trigger: str = "MeterValuePeriodic",
                 meter: list[dict[str, Any]] | None = None, charging_state: str | None = None,
                 id_token: str | None = None, token_type: str = "ISO14443", evse: tuple[int, int] | None = None,
                 offline: bool | None = None, stopped_reason: str | None = None,
                 remote_start_id: int | None = None, answer: str | None = "Accepted") -> list[dict[str, Any]]:
        """The IN TransactionEvent and our OUT answer (with idTokenInfo when the event carried an idToken)."""
        payload = wire(call201.TransactionEvent(
            event_type=event_type, timestamp=iso(t), trigger_reason=trigger, seq_no=seq,
            transaction_info=dt201.TransactionType(transaction_id=tx, charging_state=charging_state,
                                                   stopped_reason=stopped_reason, remote_start_id=remote_start_id),
            meter_value=meter, offline=offline,
            evse=dt201.EVSEType(id=evse[0], connector_id=evse[1]) if evse else None,
            id_token=dt201.IdTokenType(id_token=id_token, type=token_type) if id_token else None))
        req = self.call("TransactionEvent", payload)
        answer_payload = {"idTokenInfo": {"status": answer}} if id_token and answer else {}
        return [req, self.result(req, answer_payload)]


def sv16(value: str, measurand: str | None = None, *, unit: str | None = None, context: str | None = None,
         phase: str | None = None, location: str | None = None, fmt: str | None = None) -> dt16.SampledValue:
    return dt16.SampledValue(value=value, measurand=measurand, unit=unit, context=context, phase=phase,
                             location=location, format=fmt)


def mv16(t: datetime, *values: dt16.SampledValue) -> dict[str, Any]:
    """One 1.6 meterValue element, on the wire."""
    return wire(dt16.MeterValue(timestamp=iso(t), sampled_value=list(values)))


def sv201(value: float, measurand: str | None = None, *, unit: str | None = None, multiplier: int | None = None,
          context: str | None = None, phase: str | None = None) -> dt201.SampledValueType:
    uom = dt201.UnitOfMeasureType(unit=unit, multiplier=multiplier) if unit or multiplier is not None else None
    return dt201.SampledValueType(value=value, measurand=measurand, unit_of_measure=uom, context=context,
                                  phase=phase)


def mv201(t: datetime, *values: dt201.SampledValueType) -> dict[str, Any]:
    return wire(dt201.MeterValueType(timestamp=iso(t), sampled_value=list(values)))


def run(frames: list[dict[str, Any]], state: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                                   list[tuple[str, dict]]]:
    """Fold frames in order: (final state, all events)."""
    state = state or new_state()
    events: list[tuple[str, dict]] = []
    for f in frames:
        state, out = apply(state, f)
        events += out
    return state, events


def of(events: list[tuple[str, dict]], etype: str) -> list[dict[str, Any]]:
    return [rec for t, rec in events if t == etype]
