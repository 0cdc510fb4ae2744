"""OCPP 2.0.1 CSMS, all real: Charging Stations built on the `ocpp` package's v201 ChargePoint (which validates
every answer against the official 2.0.1 schemas) or raw WebSockets, against `cv run ocpp` (the `platform`
fixture) or a second edge in this process, with Kafka and Postgres.

Test names carry the OCA OCPP 2.0.1 Part 6 test-case id where one exists (TC_B_01_CSMS cold boot accepted,
TC_B_02_CSMS pending, TC_B_30_CSMS pending/rejected - SecurityError, TC_C_02/06/07_CSMS authorization
unknown/blocked/expired, TC_E_01_CSMS start transaction, TC_E_53_CSMS seqNo 0 at start, TC_P_02_CSMS data
transfer unknown vendor)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import websockets
from ocpp.charge_point import camel_to_snake_case
from ocpp.v201 import call
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargeverse.simulator import boot, connect, heartbeat
from chargeverse.tokens import issue
from edges.ocpp.examples import V201
from support import wait_for
from test_ocpp_support import (charger, edge_in_process, exchange, frames_of, id_tokens, raw_socket,
                               register_charger, registration_override, schema_errors, uid, wait_frames)

pytestmark = pytest.mark.integration
V = "ocpp2.0.1"
NOW = datetime.now(timezone.utc)
CERT_OPS = {"SignCertificate", "Get15118EVCertificate", "GetCertificateStatus"}  # TLS only: test_ocpp_security


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def test_both_versions_are_negotiated_on_one_port_and_unknown_subprotocols_are_refused(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("NEG", unique, version=V)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()}
    url = f"{platform.ocpp}/{spec.station_id}"
    for offered, negotiated in [(["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"), (["ocpp2.0.1"], "ocpp2.0.1"),
                                (["ocpp1.6"], "ocpp1.6"), (["ocpp2.1", "ocpp1.6"], "ocpp1.6")]:
        async with websockets.connect(url, subprotocols=offered, additional_headers=auth) as ws:
            assert ws.subprotocol == negotiated
            await ws.send('[2, "h", "Heartbeat", {}]')
            assert json.loads(await ws.recv())[:2] == [3, "h"]
    for offered in (["ocpp2.1"], ["ocpp1.5"], ["chat"]):
        with pytest.raises(InvalidStatus) as exc:
            await websockets.connect(url, subprotocols=offered, additional_headers=auth)
        assert exc.value.response.status_code == 400
        assert b"ocpp2.0.1, ocpp1.6" in exc.value.response.body
    conns = wait_for("four connections recorded", lambda: len(
        c := [r for r in frames_of(spec.station_id, "OcppConnection") if r["state"] == "CONNECTED"]) == 4 and c)
    assert [c["ocpp_version"] for c in conns] == ["ocpp2.0.1", "ocpp2.0.1", "ocpp1.6", "ocpp1.6"]
    assert {c["security_profile"] for c in conns} == {1}


async def test_TC_B_01_CSMS_cold_boot_charging_station_accepted(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("B01", unique, version=V)
    async with charger(platform.ocpp, spec) as cp:
        res = await boot(cp, spec)  # BootNotification + a StatusNotification per EVSE
        hb = await heartbeat(cp)
    assert res.status == "Accepted" and res.interval == 60 and hb.current_time
    ins, outs = wait_frames(spec.station_id, 4)
    assert [i["action"] for i in ins] == ["BootNotification", "StatusNotification", "StatusNotification",
                                          "Heartbeat"]
    assert all(r["ocpp_version"] == V and r["valid"] for r in ins + outs)


async def test_TC_B_02_CSMS_pending_and_TC_B_30_CSMS_security_error_until_accepted(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("B02", unique, version=V)
    ws = await raw_socket(platform.ocpp, spec)
    try:
        with registration_override(spec.station_id, registration_status="Pending"):
            booted = await exchange(ws, [2, "b1", "BootNotification", V201["BootNotification"]])
            other = await exchange(ws, [2, "s1", "StatusNotification", V201["StatusNotification"]])
        # the operator accepts it; after the interval the station boots again on the same connection
        again = await exchange(ws, [2, "b2", "BootNotification", V201["BootNotification"]])
        served = await exchange(ws, [2, "s2", "StatusNotification", V201["StatusNotification"]])
    finally:
        await ws.close()
    assert booted[2]["status"] == "Pending" and booted[2]["interval"] == 60
    assert other[:3] == [4, "s1", "SecurityError"]
    assert again[2]["status"] == "Accepted" and served == [3, "s2", {}]
    with registration_override(spec.station_id, registration_status="Rejected"):
        ws = await raw_socket(platform.ocpp, spec)
        try:
            assert (await exchange(ws, [2, "b2", "BootNotification", V201["BootNotification"]]))[2]["status"] \
                == "Rejected"
            assert (await exchange(ws, [2, "h", "Heartbeat", {}]))[2] == "SecurityError"
        finally:
            await ws.close()
    async with charger(platform.ocpp, spec) as cp:
        assert (await boot(cp, spec)).status == "Accepted"


async def test_every_charger_initiated_201_message_is_answered_schema_valid_and_recorded(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("V201ALL", unique, version=V)
    actions = [a for a in V201 if a not in CERT_OPS]
    async with charger(platform.ocpp, spec) as cp:
        for action in actions:
            # the ChargePoint validates our answer against the official 2.0.1 response schema, or raises
            await cp.call(getattr(call, action)(**camel_to_snake_case(V201[action])), suppress=False)
    ins, outs = wait_frames(spec.station_id, len(actions))
    assert [i["action"] for i in ins] == actions and all(i["valid"] for i in ins)
    for o in outs:
        assert o["message_type_id"] == 3 and schema_errors(V, o["action"], json.loads(o["raw"])[2]) == [], o["raw"]
    answers = {o["action"]: json.loads(o["raw"])[2] for o in outs}
    assert answers["DataTransfer"] == {"status": "UnknownVendorId"}
    assert answers["Authorize"] == {"idTokenInfo": {"status": "Unknown"}}  # TAG-1 is not in id_tokens
    assert answers["NotifyEVChargingNeeds"]["status"] == "Rejected"


@pytest.mark.parametrize("case, stored, expected", [
    ("TC_C_02_CSMS", None, "Unknown"), ("TC_C_06_CSMS", "Blocked", "Blocked"), ("TC_C_07_CSMS", "past", "Expired"),
    ("accepted", "Accepted", "Accepted"),
])
async def test_TC_C_02_06_07_CSMS_local_start_authorization(platform, unique, case, stored, expected) -> None:  # noqa: ANN001,E501
    spec = register_charger("C02", unique, version=V)
    tag = uid(case)
    rows = [] if stored is None else [
        (tag, "ISO14443", "Accepted" if stored == "past" else stored,
         NOW - timedelta(minutes=5) if stored == "past" else None, None)]
    with id_tokens(*rows):
        async with charger(platform.ocpp, spec) as cp:
            res = await cp.call(call.Authorize(id_token={"id_token": tag, "type": "ISO14443"}))
            ev = await cp.call(call.TransactionEvent(
                event_type="Started", timestamp=_z(NOW), trigger_reason="Authorized", seq_no=0,
                transaction_info={"transaction_id": f"TX-{tag}"}, id_token={"id_token": tag, "type": "ISO14443"}))
    assert res.id_token_info["status"] == expected
    assert ev.id_token_info["status"] == expected


async def test_TC_E_01_CSMS_transaction_started_updated_ended(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("E01", unique, version=V)
    tag = uid("E01")
    tx = f"TX-{unique}"
    with id_tokens((tag, "ISO14443", "Accepted", NOW + timedelta(days=1), "GRP-1")):
        async with charger(platform.ocpp, spec) as cp:
            answers = []
            for seq, (event, reason) in enumerate([("Started", "Authorized"), ("Updated", "ChargingStateChanged"),
                                                   ("Ended", "EVCommunicationLost")]):
                answers.append(await cp.call(call.TransactionEvent(
                    event_type=event, timestamp=_z(NOW + timedelta(minutes=seq)), trigger_reason=reason,
                    seq_no=seq, transaction_info={"transaction_id": tx}, evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": tag, "type": "ISO14443"} if seq == 0 else None,
                    meter_value=[{"timestamp": _z(NOW), "sampled_value": [{"value": 100.0 * seq}]}])))
    assert answers[0].id_token_info["status"] == "Accepted"
    assert answers[0].id_token_info["group_id_token"] == {"id_token": "GRP-1", "type": "Central"}
    assert answers[1].id_token_info is None and answers[2].id_token_info is None
    ins, _ = wait_frames(spec.station_id, 3)
    assert [json.loads(i["raw"])[3]["seqNo"] for i in ins] == [0, 1, 2]


async def test_TC_E_53_CSMS_seq_no_zero_and_offline_queued_events_accepted_in_order(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("E53", unique, version=V)
    tx = f"TX-{unique}"

    def event(seq: int, kind: str, offline: bool) -> list:
        return [2, f"e{seq}", "TransactionEvent", {
            "eventType": kind, "timestamp": _z(NOW + timedelta(seconds=seq)), "triggerReason": "MeterValuePeriodic",
            "seqNo": seq, "transactionInfo": {"transactionId": tx}, "offline": offline}]

    ws = await raw_socket(platform.ocpp, spec)
    try:
        assert (await exchange(ws, event(0, "Started", False)))[:2] == [3, "e0"]
    finally:
        await ws.close()
    # the station was offline; on reconnect it delivers its queue, oldest first, then goes on live
    ws = await raw_socket(platform.ocpp, spec)
    try:
        for seq, kind in [(1, "Updated"), (2, "Updated"), (3, "Ended")]:
            assert await exchange(ws, event(seq, kind, seq < 3)) == [3, f"e{seq}", {}]
    finally:
        await ws.close()
    ins, _ = wait_frames(spec.station_id, 4)
    assert [json.loads(i["raw"])[3]["seqNo"] for i in ins] == [0, 1, 2, 3]
    assert len({i["connection_id"] for i in ins}) == 2


async def test_TC_P_02_CSMS_data_transfer_unknown_vendor_and_a_configured_vendor(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("P02", unique, version=V)
    async with charger(platform.ocpp, spec) as cp:
        res = await cp.call(call.DataTransfer(vendor_id="com.unknown", message_id="x"))
    assert res.status == "UnknownVendorId"
    async with edge_in_process(data_transfer={"com.example": {"hello"}}) as edge:
        async with charger(f"ws://127.0.0.1:{edge.port}/ocpp", spec) as cp:
            ok = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="hello", data={"a": 1}))
            other = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="bye"))
    assert (ok.status, other.status) == ("Accepted", "UnknownMessageId")


BAD_201 = [
    ("not json", "-1", "FormatViolation"),
    ('[9, "t1", "Heartbeat", {}]', "t1", "MessageTypeNotSupported"),
    ('[2, 17, "Heartbeat", {}]', "-1", "RpcFrameworkError"),
    ('[2, "t2", "Heartbeat"]', "t2", "RpcFrameworkError"),
    ('[2, "t3", "BootNotification", {"chargingStation": {"model": "m", "vendorName": "v"}}]', "t3",
     "OccurrenceConstraintViolation"),
    ('[2, "t4", "BootNotification", {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "Bored"}]',
     "t4", "PropertyConstraintViolation"),
    ('[2, "t5", "Heartbeat", {"extra": 1}]', "t5", "FormatViolation"),
    ('[2, "t6", "FlyToTheMoon", {}]', "t6", "NotImplemented"),
    ('[2, "t7", "RequestStartTransaction", {"idToken": {"idToken": "x", "type": "Central"}, "remoteStartId": 1}]',
     "t7", "NotSupported"),
]


async def test_malformed_201_frames_get_201_error_codes_and_the_connection_keeps_serving(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("V201BAD", unique, version=V)
    ws = await raw_socket(platform.ocpp, spec)
    try:
        for text, mid, code in BAD_201:
            answer = await exchange(ws, text)
            assert answer[:3] == [4, mid, code], text
        assert (await exchange(ws, [2, "ok", "Heartbeat", {}]))[:2] == [3, "ok"]
    finally:
        await ws.close()
    ins, _ = wait_frames(spec.station_id, len(BAD_201) + 1)
    assert [i["error_code"] for i in ins] == [c for _, _, c in BAD_201] + [None]
    assert [i["raw"] for i in ins][:-1] == [t for t, _, _ in BAD_201]


async def test_an_oversized_201_frame_is_closed_with_1009(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("V201BIG", unique, version=V)
    ws = await raw_socket(platform.ocpp, spec, max_size=2 ** 22)
    await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "x" * 70000}]))
    with pytest.raises(ConnectionClosed) as exc:
        await ws.recv()
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009
    gone = wait_for("the disconnect recorded", lambda: [r for r in frames_of(spec.station_id, "OcppConnection")
                                                        if r["state"] == "DISCONNECTED"])
    assert gone[0]["close_code"] == 1009


async def test_a_silent_charger_shows_offline_within_two_heartbeat_intervals(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("LIVE", unique, version=V)
    headers = {"Authorization": f"Bearer {issue('tester', ['driver'])}"}

    def online() -> bool | None:
        r = httpx.get(f"{platform.api}/api/stations/{spec.station_id}", headers=headers)
        return r.json()["online"] if r.status_code == 200 else None

    async with edge_in_process(settings={"ocpp_heartbeat_interval": 2}) as edge:
        ws, cp, task = await connect(f"ws://127.0.0.1:{edge.port}/ocpp", spec)
        try:
            assert (await boot(cp, spec)).interval == 2
            await asyncio.to_thread(wait_for, "the station online", lambda: online() is True)
            task.cancel()
            ws.transport.pause_reading()  # the charger goes silent: no more pongs, no frames
            gone = await asyncio.to_thread(wait_for, "the disconnect", lambda: [
                r for r in frames_of(spec.station_id, "OcppConnection") if r["state"] == "DISCONNECTED"])
            await asyncio.to_thread(wait_for, "the station offline", lambda: online() is False)
        finally:
            ws.transport.abort()
    assert gone[0]["close_code"] == 1011  # we closed it: keepalive ping timeout
    last_out = max(r["occurred_at"] for r in frames_of(spec.station_id, "OcppFrame") if r["direction"] == "OUT")
    assert (gone[0]["occurred_at"] - last_out).total_seconds() <= 2 * 2 + 1.0  # 2 intervals (+ scheduling)
