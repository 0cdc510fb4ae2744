"""Commands and real-time authorization between two OCPI platforms over real HTTP: X is the eMSP (our drivers'
tokens, commands sender), Y the CPO (its own OCPP stations, commands receiver).  Both run their commands worker.

START_SESSION: an OcpiCommandSend on `ocpi.outbound` -> X POSTs to Y with X's response_url -> Y answers ACCEPTED
and publishes an OcppCommandRequested for its charger -> the charger's outcome (published here as the OCPP edge
would) -> Y POSTs the CommandResult to X -> X records RESULT.  A command whose result never comes times out on X.
Authorization: Y asks X about X's drivers' tokens; every answer is on the log.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import psycopg
import pytest
import redis

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import registration
from chargeverse.tokens import issue
from edges.api.identity import id_token_blocked, id_token_issued, id_token_key
from edges.ocpi.commands_worker import command_send
from edges.ocpi.context import token_box
from edges.ocpi.credtokens import authorization
from edges.ocpi.local import LocalParty
from projections.postgres.identity import IdentityProjection
from projections.postgres.stations import StationsProjection
from support import events, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(settings, topics):  # noqa: ANN001, ANN201
    u = uuid.uuid4().hex[:8]
    dsn = settings.postgres_dsn.get_secret_value()
    x = LocalParty.make(settings, platform_id=f"cx-{u}", schema=f"ocpi_cx_{u}", country_code="NL", party_id="EMX",
                        roles="EMSP", name="X mobility", commands_worker=True, command_result_grace_s=0.5,
                        outbound_backoff=0.05)
    x.extra_projections = [IdentityProjection(dsn, f"ocpi_cx_{u}")]
    y = LocalParty.make(settings, platform_id=f"cy-{u}", schema=f"ocpi_cy_{u}", country_code="NL", party_id="CPY",
                        roles="CPO", name="Y charging", commands_worker=True, command_timeout_s=3,
                        outbound_backoff=0.05)
    y.extra_projections = [StationsProjection(dsn, f"ocpi_cy_{u}")]
    x.start()
    y.start()
    try:
        _register(x, y)
        yield x, y, u
    finally:
        x.stop()
        y.stop()
        for p in (x, y):
            assert not p.follower.errors, p.follower.errors


def _admin(p: LocalParty) -> httpx.Client:
    return httpx.Client(base_url=f"{p.url}/admin", timeout=60,
                        headers={"Authorization": "Bearer " + issue("test", ["admin"], ttl_seconds=600)})


def _register(x: LocalParty, y: LocalParty) -> None:
    with _admin(y) as a:
        r = a.post("/partners", json={"partner_id": "x", "name": "X mobility"})
        assert r.status_code == 201, r.text
        token_a = r.json()["token_a"]
    with _admin(x) as a:
        assert a.post("/partners", json={"partner_id": "y", "name": "Y charging",
                                         "versions_url": f"{y.url}/versions", "token": token_a}).status_code == 201
        r = a.post("/partners/y/register")
        assert r.status_code == 200, r.text
        eps = {(e["identifier"], e["role"]) for e in r.json()["endpoints"]}
        assert ("commands", "RECEIVER") in eps
    with _admin(y) as a:
        eps = {(e["identifier"], e["role"]) for e in a.get("/partners/x").json()["endpoints"]}
        assert {("tokens", "SENDER"), ("commands", "SENDER")} <= eps


def their_token(p: LocalParty, partner_id: str) -> str:
    with psycopg.connect(p.settings.postgres_dsn.get_secret_value(),
                         options=f"-c search_path={p.settings.ocpi_schema_name},public") as conn:
        sealed = conn.execute("SELECT their_token_sealed FROM ocpi_partners WHERE partner_id = %s",
                              (partner_id,)).fetchone()[0]
    return token_box(p.settings).open(sealed, partner_id)


def _q(p: LocalParty, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(p.settings.postgres_dsn.get_secret_value(),
                         options=f"-c search_path={p.settings.ocpi_schema_name},public") as conn:
        return conn.execute(sql, args).fetchall()


def test_real_time_authorization_and_tokens_list(pair) -> None:  # noqa: ANN001
    x, y, u = pair
    good, blocked = f"G{u}".upper(), f"B{u}".upper()
    producer = EventProducer()
    for uid in (good, blocked):
        producer.publish_sync("identity", id_token_key(uid), "IdTokenIssued", id_token_issued(
            account_id=f"acc-{u}", uid=uid, token_type="RFID", contract_id=f"NL-EMX-{uid}", label=None,
            valid_until=None, source="test", correlation_id="t"))
    producer.publish_sync("identity", id_token_key(blocked), "IdTokenBlocked", id_token_blocked(
        account_id=f"acc-{u}", uid=blocked, reason="lost", source="test", correlation_id="t"))
    producer.close()
    wait_for("X's id_tokens", lambda: _q(x, "SELECT status FROM id_tokens WHERE uid = %s", blocked) == [("Blocked",)])

    h = {"Authorization": authorization(their_token(y, "x")), "OCPI-from-country-code": "NL",
         "OCPI-from-party-id": "CPY", "OCPI-to-country-code": "NL", "OCPI-to-party-id": "EMX"}
    base = f"{x.url}/emsp/2.2.1/tokens"
    r = httpx.post(f"{base}/{good}/authorize", headers=h, json={"location_id": "LOC1", "evse_uids": ["E1"]})
    assert r.status_code == 200, r.text
    info = r.json()["data"]
    assert info["allowed"] == "ALLOWED" and info["token"]["uid"] == good and info["token"]["valid"] is True
    assert info["location"] == {"location_id": "LOC1", "evse_uids": ["E1"]} and info["authorization_reference"]
    r = httpx.post(f"{base}/{blocked}/authorize", headers=h)
    assert r.status_code == 200 and r.json()["data"]["allowed"] == "BLOCKED"
    r = httpx.post(f"{base}/NOPE{u}/authorize", headers=h)
    assert r.status_code == 404 and r.json()["status_code"] == 2004
    r = httpx.post(f"{base}/{good}/authorize", params={"type": "APP_USER"}, headers=h)
    assert r.status_code == 404 and r.json()["status_code"] == 2004
    r = httpx.post(f"{base}/{good}/authorize", headers=h, json={"evse_uids": ["E1"]})
    assert r.status_code == 200 and r.json()["status_code"] == 2001
    # every decision is on the log, as answered
    told = {(rec["token_uid"], rec["token_type"]): rec for _, rec in events(
        "ocpi.inbound", lambda t, r: t == "OcpiTokenAuthorized" and r["platform_id"] == x.settings.ocpi_platform_id)}
    assert told[(good, "RFID")]["allowed"] == "ALLOWED" and told[(good, "APP_USER")]["allowed"] == "UNKNOWN_TOKEN"
    assert told[(blocked, "RFID")]["allowed"] == "BLOCKED"
    assert told[(f"NOPE{u}", "RFID")]["answer"] is None
    assert json.loads(told[(good, "RFID")]["answer"])["authorization_reference"] == info["authorization_reference"]

    # the tokens list: paged, our party, valid flags
    r = httpx.get(base, headers=h, params={"limit": "1000"})
    assert r.status_code == 200, r.text
    mine = {t["uid"]: t for t in r.json()["data"] if t["uid"] in (good, blocked)}
    assert mine[good]["valid"] is True and mine[blocked]["valid"] is False
    assert {(t["country_code"], t["party_id"]) for t in mine.values()} == {("NL", "EMX")}
    assert int(r.headers["X-Total-Count"]) >= 2


def _station(y: LocalParty, u: str) -> str:
    sid = f"CY{u}"
    rec, _ = registration(sid, name="Y station", operator="Y charging", latitude=52.0, longitude=4.0,
                          address="Straat 1")
    p = EventProducer()
    p.publish_sync("stations", sid, "StationRegistered", rec)
    p.close()
    wait_for("Y's station", lambda: _q(y, "SELECT 1 FROM stations WHERE station_id = %s", sid))
    return sid


def _outcomes(x: LocalParty, command_id: str) -> dict[str, dict]:
    return {rec["stage"]: rec for _, rec in events(
        "ocpi.inbound", lambda t, r: t == "OcpiCommandOutcome" and r["platform_id"] == x.settings.ocpi_platform_id
        and r["command_id"] == command_id)}


def test_start_session_round_trip_and_timeout(pair) -> None:  # noqa: ANN001
    x, y, u = pair
    sid = _station(y, u)
    # this test plays the OCPP edge instance holding the charger (its route, then its claim of the command), so
    # that a real edge running beside it (the platform fixture) leaves the command to it instead of finding the
    # charger offline
    r = redis.Redis.from_url(y.settings.redis_url.get_secret_value())
    r.set(f"cv:ocpp:route:{sid}", "test-edge", ex=120)
    token = {"country_code": "NL", "party_id": "EMX", "uid": f"D{u}".upper(), "type": "RFID",
             "contract_id": "NL-EMX-1", "issuer": "X", "valid": True, "whitelist": "ALLOWED",
             "last_updated": "2024-05-01T10:00:00Z"}
    cid = f"cmd-{u}"
    p = EventProducer()
    p.publish_sync("ocpi.outbound", "y", "OcpiCommandSend", command_send(
        platform_id=x.settings.ocpi_platform_id, partner_id="y", command_id=cid, command="START_SESSION",
        request={"token": token, "location_id": sid, "evse_uid": f"{sid}-1", "connector_id": "1"},
        requested_by="driver-1", source="test"))

    # Y turned it into an OCPP command for its charger
    def ocpp_requested() -> list:
        return [r for t, r in events("ocpp.commands", lambda t, r: t == "OcppCommandRequested"
                                     and r["charge_point_id"] == sid)]
    req = wait_for("the OCPP command", ocpp_requested)[0]
    r.set(f"cv:ocpp:cmd:{req['command_id']}", "test-edge", nx=True, ex=120)
    assert req["action"] == "RemoteStartTransaction" and req["requested_by"] == f"ocpi:{y.settings.ocpi_platform_id}:x"
    assert json.loads(req["payload"]) == {"idTag": token["uid"], "connectorId": 1}
    received = [r for _, r in events("ocpi.inbound", lambda t, r: t == "OcpiCommandReceived"
                                     and r["ocpp_command_id"] == req["command_id"])][0]
    assert received["response_url"] == f"{x.url}/emsp/2.2.1/commands/START_SESSION/{cid}"
    assert received["result"] == "ACCEPTED" and received["timeout_s"] == 3
    got = wait_for("X's RESPONSE", lambda: _outcomes(x, cid).get("RESPONSE"))
    assert got["result"] == "ACCEPTED" and got["timeout_s"] == 3 and got["attempts"] == 1
    # X never pushed this Token: Y keeps the command's copy, so its charger accepts the driver and its billing
    # knows whom to send the CDR (projections/postgres/ocpi_objects.py `command_token`)
    kept = wait_for("Y keeps the command's token", lambda: _q(
        y, "SELECT valid, doc FROM ocpi_tokens WHERE partner_id = 'x' AND id = %s", token["uid"]))
    assert kept[0][0] is True and json.loads(kept[0][1])["contract_id"] == "NL-EMX-1"

    # the charger accepted (as the OCPP edge records it)
    res = envelope(source="test-ocpp-edge", correlation_id=req["correlation_id"], causation_id=req["event_id"])
    res.update(command_id=req["command_id"], charge_point_id=sid, action=req["action"], outcome="RESULT",
               result=json.dumps({"status": "Accepted"}), error_code=None, error_description=None,
               message_id="m1", edge_instance="test")
    p.publish_sync("ocpp.commands", sid, "OcppCommandResult", res)
    result = wait_for("X's RESULT", lambda: _outcomes(x, cid).get("RESULT"))
    assert result["result"] == "ACCEPTED" and result["partner_id"] == "y"
    sent = wait_for("Y's RESULT_SENT", lambda: {r["stage"]: r for _, r in events(
        "ocpi.inbound", lambda t, r: t == "OcpiCommandOutcome" and r["platform_id"] == y.settings.ocpi_platform_id
        and r["command_id"] == req["command_id"])}.get("RESULT_SENT"))
    assert sent["result"] == "ACCEPTED" and sent["http_status"] == 200

    # a command whose result never comes: TIMEOUT after Y's timeout (3 s) plus X's grace, and no result
    cid2 = f"cmd2-{u}"
    p.publish_sync("ocpi.outbound", "y", "OcpiCommandSend", command_send(
        platform_id=x.settings.ocpi_platform_id, partner_id="y", command_id=cid2, command="UNLOCK_CONNECTOR",
        request={"location_id": sid, "evse_uid": f"{sid}-1", "connector_id": "1"}, requested_by="driver-1",
        source="test"))
    timed_out = wait_for("X's TIMEOUT", lambda: _outcomes(x, cid2).get("TIMEOUT"), timeout=20)
    assert timed_out["result"] == "TIMEOUT" and "RESULT" not in _outcomes(x, cid2)

    # refused on Y (unknown location): REJECTED in the response, nothing for any charger, no timeout later
    cid3 = f"cmd3-{u}"
    p.publish_sync("ocpi.outbound", "y", "OcpiCommandSend", command_send(
        platform_id=x.settings.ocpi_platform_id, partner_id="y", command_id=cid3, command="START_SESSION",
        request={"token": token, "location_id": f"NOWHERE{u}"}, requested_by="driver-1", source="test"))
    # an expired request is never sent
    cid4 = f"cmd4-{u}"
    p.publish_sync("ocpi.outbound", "y", "OcpiCommandSend", command_send(
        platform_id=x.settings.ocpi_platform_id, partner_id="y", command_id=cid4, command="STOP_SESSION",
        request={"session_id": "s"}, requested_by="driver-1", source="test", expires_in=timedelta(seconds=-1)))
    p.close()
    rej = wait_for("X's RESPONSE (rejected)", lambda: _outcomes(x, cid3).get("RESPONSE"))
    assert rej["result"] == "REJECTED" and "unknown location" in (rej["message"] or "")
    und = wait_for("X's UNDELIVERED", lambda: _outcomes(x, cid4).get("UNDELIVERED"))
    assert "expired" in und["message"] and und["attempts"] == 0
