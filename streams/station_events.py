"""Stations processor logic: OCPP frames -> `stations` events.  Pure: no I/O, fed by streams/app.py.

Guarantees:
- Ordering: input and output are keyed by the charge point id and both topics have the same partition count, so a
  station's events come out in the order its frames went in.
- Idempotence: every output event id is derived from the input event id (events.derive), so re-processing after a
  crash re-emits identical ids, and sinks drop the duplicates.
- What the charger was told: StationBooted is built from our BootNotification CALLRESULT (the OUT frame), which
  carries the request it answers (`answers`), so replay sees exactly the status and interval answered.
- Stateless: every output depends on one input event only, so it processes in batches and scales by partition.
- It never emits for invalid frames: those stay on `ocpp.frames` (flagged) for the operator.
"""

from __future__ import annotations

import json
from typing import Any

from chargeverse.events import derive

SOURCE = "streams.stations"

Out = tuple[str, str, dict[str, Any]]  # (event type, key, record)


def translate(etype: str, rec: dict[str, Any]) -> list[Out]:
    """The `stations` events caused by one `ocpp.frames` event."""
    cp = rec["charge_point_id"]
    if etype == "OcppConnection":
        return [("StationConnectionChanged", cp, derive(
            rec, tag="connection", source=SOURCE, station_id=cp, online=rec["state"] == "CONNECTED",
            edge_instance=rec["edge_instance"]))]
    if etype != "OcppFrame" or not rec["valid"] or rec.get("retransmission_of"):
        return []  # a retransmitted CALL was answered from memory: its first copy already counted
    msg = json.loads(rec["raw"])
    v201 = rec["ocpp_version"] == "ocpp2.0.1"
    if rec["direction"] == "IN" and rec["message_type_id"] == 2:
        action = msg[2]
        # a lenient-mode repair is in `normalized`; `raw` stays verbatim
        payload = json.loads(rec["normalized"]) if rec.get("normalized") else msg[3]
        if action == "Heartbeat":
            return [("StationHeartbeat", cp, derive(rec, tag="heartbeat", source=SOURCE, station_id=cp))]
        if action == "StatusNotification" and v201:  # one connector per EVSE in our station model
            return [("ConnectorStatusChanged", cp, derive(
                rec, tag="status", source=SOURCE, station_id=cp, connector_id=int(payload["evseId"]),
                status=payload["connectorStatus"], error_code="NoError", info=None, vendor_error_code=None))]
        if action == "StatusNotification":
            return [("ConnectorStatusChanged", cp, derive(
                rec, tag="status", source=SOURCE, station_id=cp, connector_id=int(payload["connectorId"]),
                status=payload["status"], error_code=payload["errorCode"], info=payload.get("info"),
                vendor_error_code=payload.get("vendorErrorCode")))]
        return []
    if rec["direction"] == "OUT" and rec["message_type_id"] == 3 and rec["action"] == "BootNotification":
        request = json.loads(rec["answers"])[3] if rec.get("answers") else {}
        answer = msg[2]
        if v201:
            station = request.get("chargingStation", {})
            vendor, model = station.get("vendorName", ""), station.get("model", "")
            serial, firmware = station.get("serialNumber"), station.get("firmwareVersion")
        else:
            vendor, model = request.get("chargePointVendor", ""), request.get("chargePointModel", "")
            serial, firmware = request.get("chargePointSerialNumber"), request.get("firmwareVersion")
        return [("StationBooted", cp, derive(
            rec, tag="booted", source=SOURCE, station_id=cp, vendor=vendor, model=model, serial_number=serial,
            firmware_version=firmware, status=answer["status"], interval=int(answer["interval"])))]
    return []
