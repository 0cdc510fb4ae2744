"""OCPP 1.6-J central system, all real: chargers built on the `ocpp` package's ChargePoint (which validates every
answer against the official schemas) or raw WebSockets for frames a ChargePoint would refuse to send, against
`cv run ocpp` (the `platform` fixture) or a second edge in this process, with Kafka and Postgres.

Test names carry the OCA OCTT 1.6 test-case id where one exists (TC_001_CSMS cold boot, TC_004_1_CSMS regular
charging session - identification first)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from ocpp.charge_point import camel_to_snake_case
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointStatus

from chargeverse.simulator import boot, status
from edges.ocpp.examples import V16
from edges.ocpp.leniency import Leniency
from support import events, wait_for
from test_ocpp_support import (charger, edge_in_process, exchange, frames_of, id_tokens, limits, raw_socket,
                               register_charger, registration_override, schema_errors, uid, wait_frames)

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc)


async def test_TC_001_CSMS_cold_boot_charge_point(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("V16BOOT", unique)
    async with charger(platform.ocpp, spec) as cp:
        res = await boot(cp, spec)  # BootNotification + StatusNotification for connectors 0..2
        hb = await cp.call(call.Heartbeat())
    assert res.status == "Accepted" and res.interval == 60 and hb.current_time
    ins, outs = wait_frames(spec.station_id, 5)
    assert [r["action"] for r in ins] == ["BootNotification"] + ["StatusNotification"] * 3 + ["Heartbeat"]
    assert all(r["ocpp_version"] == "ocpp1.6" and r["valid"] for r in ins + outs)
    assert [json.loads(o["answers"])[1] for o in outs] == [json.loads(i["raw"])[1] for i in ins]


async def test_every_charger_initiated_16_message_is_answered_schema_valid_and_recorded(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("V16ALL", unique)
    tag = uid("ALL")
    actions = [a for a in V16 if a != "SignCertificate"]  # a certificate operation: over TLS only (security tests)
    with id_tokens((tag, None, "Accepted", None, None)):
        async with charger(platform.ocpp, spec) as cp:
            for action in actions:
                payload = json.loads(json.dumps(V16[action]).replace("TAG-1", tag))
                # the ChargePoint validates our answer against the official response schema, or raises
                await cp.call(getattr(call, action)(**camel_to_snake_case(payload)), suppress=False)
    ins, outs = wait_frames(spec.station_id, len(actions))
    assert [r["action"] for r in ins] == actions and all(r["valid"] for r in ins)
    for o in outs:
        assert o["message_type_id"] == 3, o["raw"]
        assert schema_errors("ocpp1.6", o["action"], json.loads(o["raw"])[2]) == [], o["raw"]
    answers = {o["action"]: json.loads(o["raw"])[2] for o in outs}
    assert answers["DataTransfer"] == {"status": "UnknownVendorId"}  # no vendor configured on this edge
    assert answers["Authorize"] == {"idTagInfo": {"status": "Accepted"}}
    assert answers["StopTransaction"] == {"idTagInfo": {"status": "Accepted"}}


async def test_TC_004_1_CSMS_regular_charging_session_identification_first(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("V16TX", unique)
    tag = uid("TX")
    until = NOW + timedelta(days=7)
    with id_tokens((tag, "ISO14443", "Accepted", until, "FLEET-1")):
        async with charger(platform.ocpp, spec) as cp:
            await boot(cp, spec)
            auth = await cp.call(call.Authorize(id_tag=tag))
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=1000,
                                                        timestamp=NOW.isoformat()))
            await status(cp, 1, ChargePointStatus.charging)
            await cp.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=[
                {"timestamp": NOW.isoformat(), "sampled_value": [{"value": "5000", "unit": "Wh"}]}]))
            stop = await cp.call(call.StopTransaction(
                meter_stop=9000, timestamp=NOW.isoformat(), transaction_id=start.transaction_id, id_tag=tag,
                reason="Local", transaction_data=[{"timestamp": NOW.isoformat(), "sampled_value": [
                    {"value": "9000", "context": "Transaction.End", "unit": "Wh"}]}]))
    assert auth.id_tag_info["status"] == "Accepted" and auth.id_tag_info["parent_id_tag"] == "FLEET-1"
    assert start.id_tag_info["status"] == "Accepted" and start.transaction_id > 0
    assert stop.id_tag_info["status"] == "Accepted"
    # what the charger was told is on the log, with the request it answers (for the sessions processor)
    _, outs = wait_frames(spec.station_id, 9)
    started = [o for o in outs if o["action"] == "StartTransaction"]
    assert len(started) == 1 and json.loads(started[0]["raw"])[2]["transactionId"] == start.transaction_id
    assert json.loads(started[0]["answers"])[3]["idTag"] == tag


@pytest.mark.parametrize("stored, expected", [
    (None, "Invalid"), ("Blocked", "Blocked"), ("Expired", "Expired"), ("Invalid", "Invalid"),
    ("past", "Expired"),
])
async def test_authorize_answers_what_the_id_tokens_projection_says(platform, unique, stored, expected) -> None:  # noqa: ANN001,E501
    spec = register_charger("V16AUTH", unique)
    tag = uid("AUTH")
    rows = [] if stored is None else [
        (tag, None, "Accepted" if stored == "past" else stored,
         NOW - timedelta(hours=1) if stored == "past" else None, None)]
    with id_tokens(*rows):
        async with charger(platform.ocpp, spec) as cp:
            res = await cp.call(call.Authorize(id_tag=tag))
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0,
                                                        timestamp=NOW.isoformat()))
    assert res.id_tag_info["status"] == expected
    assert start.id_tag_info["status"] == expected and start.transaction_id > 0  # an id even when refused


async def test_transaction_ids_are_unique_across_edge_instances(platform, unique) -> None:  # noqa: ANN001
    a, b = register_charger("V16IDA", unique), register_charger("V16IDB", unique)
    tag = uid("IDS")
    ids = []
    with id_tokens((tag, None, "Accepted", None, None)):
        async with edge_in_process() as second:
            async with charger(platform.ocpp, a) as cp_a, \
                    charger(f"ws://127.0.0.1:{second.port}/ocpp", b) as cp_b:
                for _ in range(3):
                    for cp in (cp_a, cp_b):
                        res = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0,
                                                                  timestamp=NOW.isoformat()))
                        ids.append(res.transaction_id)
    assert len(set(ids)) == 6 and ids == sorted(ids)  # one Postgres sequence behind both edges


async def test_a_retransmitted_call_is_answered_identically_without_reprocessing(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("V16DUP", unique)
    tag = uid("DUP")
    start = [2, "tx-7", "StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": 0,
                                             "timestamp": NOW.isoformat().replace("+00:00", "Z")}]
    with id_tokens((tag, None, "Accepted", None, None)):
        ws = await raw_socket(platform.ocpp, spec)
        try:
            first = await exchange(ws, start)
            again = await exchange(ws, start)  # the charger did not see our answer and sends it again
            changed = await exchange(ws, [2, "tx-7", "StartTransaction", {**start[3], "meterStart": 5}])
        finally:
            await ws.close()
        # a rebooted charger that counts its message ids from 1 again: a new connection is never answered from
        # the old one's memory
        ws = await raw_socket(platform.ocpp, spec)
        try:
            after_reconnect = await exchange(ws, start)
        finally:
            await ws.close()
    assert again == first and first[0] == 3
    assert changed[2]["transactionId"] != first[2]["transactionId"]  # same id, new content: a new CALL
    assert after_reconnect[2]["transactionId"] not in (first[2]["transactionId"], changed[2]["transactionId"])
    ins, outs = wait_frames(spec.station_id, 4)
    assert [i["retransmission_of"] for i in ins] == [None, ins[0]["event_id"], None, None]
    assert outs[1]["raw"] == outs[0]["raw"] and outs[1]["retransmission_of"] == outs[0]["event_id"]


async def test_a_charger_the_operator_holds_pending_is_told_so_and_refused_until_accepted(platform, unique) -> None:  # noqa: ANN001,E501
    spec = register_charger("V16PEND", unique)
    with registration_override(spec.station_id, registration_status="Pending"):
        ws = await raw_socket(platform.ocpp, spec)
        try:
            booted = await exchange(ws, [2, "b1", "BootNotification", V16["BootNotification"]])
            hb = await exchange(ws, [2, "h1", "Heartbeat", {}])
        finally:
            await ws.close()
    assert booted[2]["status"] == "Pending" and booted[2]["interval"] == 60
    assert hb[:3] == [4, "h1", "SecurityError"]
    async with charger(platform.ocpp, spec) as cp:  # accepted again (override lifted)
        assert (await boot(cp, spec)).status == "Accepted"


async def test_results_for_unknown_message_ids_are_recorded_and_ignored(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("V16RES", unique)
    ws = await raw_socket(platform.ocpp, spec)
    try:
        await ws.send('[3, "nobody-asked", {"status": "Accepted"}]')
        await ws.send('[4, "nor-this", "GenericError", "x", {}]')
        assert (await exchange(ws, [2, "h1", "Heartbeat", {}]))[:2] == [3, "h1"]  # no answer to those two
    finally:
        await ws.close()
    ins, _ = wait_frames(spec.station_id, 1)
    assert [(i["message_type_id"], i["valid"]) for i in ins] == [(3, False), (4, False), (2, True)]
    assert "ignored" in ins[0]["error_description"]


async def test_a_flood_is_rate_limited_and_the_connection_keeps_serving(platform, unique) -> None:  # noqa: ANN001
    spec = register_charger("V16FLOOD", unique)
    async with edge_in_process(limits=limits(rate=1, burst=5)) as edge:
        ws = await raw_socket(f"ws://127.0.0.1:{edge.port}/ocpp", spec)
        try:
            for i in range(20):
                await ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(20)]
            limited = [a for a in answers if a[0] == 4]
            assert len(limited) >= 10 and all(a[2] == "GenericError" for a in limited)
            assert all(a[4]["reason"] == "RateLimitExceeded" and a[4]["retryAfterSeconds"] >= 0 for a in limited)
            assert [a[1] for a in answers] == [f"f{i}" for i in range(20)]  # every CALL answered, in order
            await asyncio.sleep(1.2)  # a token refills
            assert (await exchange(ws, [2, "after", "Heartbeat", {}]))[:2] == [3, "after"]
        finally:
            await ws.close()
    ins, _ = wait_frames(spec.station_id, 21)
    assert len(ins) == 21 and sum(i["error_code"] == "GenericError" for i in ins) == len(limited)


async def test_a_lenient_model_is_accepted_with_its_deviations_recorded_while_strict_is_the_default(platform, unique) -> None:  # noqa: ANN001,E501
    lax = register_charger("V16LAX", unique, model="SIM-LAX")
    strict = register_charger("V16STRICT", unique)
    sloppy = {"connectorId": 1, "errorCode": "Error", "status": "charging", "timestamp": "2026-01-01T10:00:00"}
    async with edge_in_process(leniency=Leniency.from_config({"chargeverse-sim/SIM-LAX": "known"})) as edge:
        url = f"ws://127.0.0.1:{edge.port}/ocpp"
        ws_lax, ws_strict = await raw_socket(url, lax), await raw_socket(url, strict)
        try:
            for ws, model in ((ws_lax, "SIM-LAX"), (ws_strict, "SIM-22")):
                boot_payload = {"chargePointVendor": "chargeverse-sim", "chargePointModel": model}
                assert (await exchange(ws, [2, "b", "BootNotification", boot_payload]))[0] == 3
            accepted = await exchange(ws_lax, [2, "s1", "StatusNotification", sloppy])
            refused = await exchange(ws_strict, [2, "s1", "StatusNotification", sloppy])
        finally:
            await ws_lax.close()
            await ws_strict.close()
    assert accepted == [3, "s1", {}]
    assert refused[:3] == [4, "s1", "PropertyConstraintViolation"]
    (dev,) = wait_for("the deviation on the log", lambda: frames_of(lax.station_id, "OcppDeviation"))
    assert (dev["vendor"], dev["model"], dev["action"], dev["message_id"]) == ("chargeverse-sim", "SIM-LAX",
                                                                             "StatusNotification", "s1")
    assert {(d["rule"], d["path"]) for d in dev["deviations"]} == {
        ("error_code_error", "errorCode"), ("enum_case", "status"), ("datetime_without_offset", "timestamp")}
    ins, _ = wait_frames(lax.station_id, 2)
    status_in = [i for i in ins if i["action"] == "StatusNotification"][0]
    assert json.loads(status_in["raw"])[3] == sloppy  # verbatim
    assert json.loads(status_in["normalized"]) == {"connectorId": 1, "errorCode": "OtherError",
                                                   "status": "Charging", "timestamp": "2026-01-01T10:00:00Z"}
    assert dev["causation_id"] == status_in["event_id"]
    assert not [r for t, r in events("ocpp.frames", lambda t, r: t == "OcppDeviation"
                                     and r["charge_point_id"] == strict.station_id)]
