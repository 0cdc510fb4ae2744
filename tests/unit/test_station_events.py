"""The stations processor's translation and the projections' fold (pure logic)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from chargeverse.events import envelope
from projections.base import SourcedEvent, advanced, unseen
from projections.station_fold import fold
from streams.station_events import translate


def frame(direction: str, raw: list, *, valid: bool = True, action: str | None = None,
          answers: str | None = None) -> dict:
    rec = envelope(source="edge", correlation_id="conn")
    rec.update(charge_point_id="CP-1", direction=direction, ocpp_version="ocpp1.6", connection_id="conn",
               message_type_id=raw[0], message_id=raw[1], action=action or (raw[2] if raw[0] == 2 else None),
               raw=json.dumps(raw), valid=valid, error_code=None, error_description=None, answers=answers)
    return rec


def test_boot_becomes_station_booted_with_what_the_charger_was_told() -> None:
    req = frame("IN", [2, "1", "BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "X1",
                                                    "firmwareVersion": "9"}])
    assert translate("OcppFrame", req) == []
    res = frame("OUT", [3, "1", {"status": "Accepted", "currentTime": "t", "interval": 120}],
                action="BootNotification", answers=req["raw"])
    [(etype, key, rec)] = translate("OcppFrame", res)
    assert (etype, key) == ("StationBooted", "CP-1")
    assert (rec["vendor"], rec["model"], rec["firmware_version"], rec["status"], rec["interval"]) == (
        "ACME", "X1", "9", "Accepted", 120)
    assert rec["causation_id"] == res["event_id"]


def test_status_and_heartbeat_and_connection_translate() -> None:
    st = frame("IN", [2, "2", "StatusNotification", {"connectorId": 2, "errorCode": "NoError",
                                                     "status": "Charging", "info": "hi"}])
    [(etype, _, rec)] = translate("OcppFrame", st)
    assert etype == "ConnectorStatusChanged" and rec["connector_id"] == 2 and rec["status"] == "Charging"
    [(etype, _, _)] = translate("OcppFrame", frame("IN", [2, "3", "Heartbeat", {}]))
    assert etype == "StationHeartbeat"
    conn = envelope(source="edge", correlation_id="conn")
    conn.update(charge_point_id="CP-1", connection_id="conn", state="DISCONNECTED", ocpp_version="ocpp1.6",
                edge_instance="e1", remote_address=None, close_code=1006, security_profile=1)
    [(etype, _, rec)] = translate("OcppConnection", conn)
    assert etype == "StationConnectionChanged" and rec["online"] is False


def test_invalid_frames_and_errors_produce_nothing() -> None:
    bad = frame("IN", [2, "4", "Heartbeat", {}], valid=False)
    assert translate("OcppFrame", bad) == []
    err = frame("OUT", [4, "5", "ProtocolError", "x", {}], action="Heartbeat")
    assert translate("OcppFrame", err) == []


def test_retranslation_is_identical() -> None:
    hb = frame("IN", [2, "3", "Heartbeat", {}])
    assert translate("OcppFrame", hb) == translate("OcppFrame", hb)


def _ev(offset: int, etype: str, **payload) -> SourcedEvent:  # noqa: ANN003
    rec = envelope(source="t", correlation_id="c",
                   occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=offset))
    rec.update(station_id="CP-1", **payload)
    return SourcedEvent("stations", 0, offset, etype, rec)


def test_fold_is_last_write_wins_in_log_order() -> None:
    events = [
        _ev(0, "ConnectorStatusChanged", connector_id=1, status="Preparing", error_code="NoError", info=None,
            vendor_error_code=None),
        _ev(1, "StationConnectionChanged", online=True, edge_instance="e1"),
        _ev(2, "ConnectorStatusChanged", connector_id=1, status="Charging", error_code="NoError", info=None,
            vendor_error_code=None),
        _ev(3, "StationHeartbeat"),
        _ev(4, "StationConnectionChanged", online=False, edge_instance="e1"),
    ]
    p = fold(events)
    assert p.connectors[("CP-1", 1)]["status"] == "Charging"
    assert p.stations["CP-1"]["online"] is False
    assert p.stations["CP-1"]["last_heartbeat_at"] == events[3].record["occurred_at"]
    assert p.stations["CP-1"]["last_event_id"] == events[4].record["event_id"]


def test_offsets_skip_what_was_applied_and_advance_past_the_batch() -> None:
    events = [_ev(i, "StationHeartbeat") for i in range(5)]
    assert [e.offset for e in unseen(events, {("stations", 0): 3})] == [3, 4]
    assert advanced(events) == {("stations", 0): 5}
