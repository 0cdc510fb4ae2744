"""Commands to chargers, all real: the operator API publishes a command on `ocpp.commands`, the edge instance
holding the charger's socket sends the CALL, the charger (the `ocpp` package's ChargePoint) answers, and the
outcome comes back as an event the API reads.  Chargers nobody holds are OFFLINE; bad calls never reach the log."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.simulator import V201, ChargerSpec, boot, connect
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from support import events

pytestmark = pytest.mark.integration


def _op() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('operator-1', ['operator'])}"}


def _charger(unique: str, version: str = "ocpp1.6") -> ChargerSpec:
    sid = f"CMD-{unique}"
    p = EventProducer()
    secret = register(p, sid, name="Commanded", operator="TestNet", latitude=1.0, longitude=1.0)
    p.close()
    return ChargerSpec(sid, secret, 1.0, 1.0, "Commanded", ocpp_version=version)


async def _connect(platform, spec):  # noqa: ANN001, ANN202
    for _ in range(150):
        try:
            return await connect(platform.ocpp, spec)
        except InvalidStatus:
            await asyncio.sleep(0.2)
    raise AssertionError("charger credentials never reached the OCPP edge")


async def _command(api: str, cp_id: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api, timeout=60) as c:
        return await c.post(f"/api/operator/chargers/{cp_id}/commands", headers=_op(), json=body)


@pytest.mark.parametrize("version,action,payload", [
    ("ocpp1.6", "RemoteStartTransaction", {"idTag": "DRIVER-1", "connectorId": 1}),
    ("ocpp1.6", "Reset", {"type": "Soft"}),
    (V201, "RequestStartTransaction", {"idToken": {"idToken": "DRIVER-1", "type": "ISO14443"},
                                       "remoteStartId": 42}),
])
async def test_an_operator_command_reaches_the_charger_and_its_result_comes_back(platform, unique, version, action,
                                                                                 payload) -> None:  # noqa: ANN001
    spec = _charger(f"{unique}-{action[:6]}", version)
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        r = await _command(platform.api, spec.station_id, {"action": action, "payload": payload, "timeout_s": 10,
                                                            "wait_s": 20})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["outcome"] == "RESULT" and body["result"] == {"status": "Accepted"}
        assert cp.received and cp.received[-1][0] == action
        # the CALL and the charger's answer are on the log like every frame
        frames = events("ocpp.frames", lambda t, rec: t == "OcppFrame" and rec["charge_point_id"] ==
                        spec.station_id and rec["action"] == action)
        assert {(f["direction"], f["message_type_id"]) for _, f in frames} == {("OUT", 2), ("IN", 3)}
        got = httpx.get(f"{platform.api}/api/operator/commands/{body['command_id']}", headers=_op()).json()
        assert got["outcome"] == "RESULT"
    finally:
        task.cancel()
        await ws.close()


async def test_a_command_for_a_charger_nobody_holds_is_offline(platform, unique) -> None:  # noqa: ANN001
    r = await _command(platform.api, f"NOBODY-{unique}", {"action": "Reset", "payload": {"type": "Hard"},
                                                         "wait_s": 20})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "OFFLINE"


async def test_a_charger_that_does_not_answer_times_out(platform, unique) -> None:  # noqa: ANN001
    spec = _charger(f"{unique}-mute")
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        task.cancel()  # the charger stops reading: the socket stays open, nobody answers
        r = await _command(platform.api, spec.station_id, {"action": "ClearCache", "payload": {}, "timeout_s": 2,
                                                            "wait_s": 20})
        assert r.json()["outcome"] == "TIMEOUT", r.text
    finally:
        await ws.close()


async def test_bad_commands_get_422_and_never_reach_the_log(platform, unique) -> None:  # noqa: ANN001
    cp_id = f"BAD-{unique}"
    for body, why in [({"action": "Reset", "payload": {"type": "Sometimes"}}, "Sometimes"),
                      ({"action": "BootNotification", "payload": {}}, "not a central-system call"),
                      ({"action": "Reset", "payload": {"type": "Soft"}, "ocpp_version": "ocpp9"}, "ocpp_version")]:
        r = await _command(platform.api, cp_id, body)
        assert r.status_code == 422 and why in r.text
    assert not events("ocpp.commands", lambda t, rec: rec.get("charge_point_id") == cp_id)
    async with httpx.AsyncClient(base_url=platform.api) as c:
        drv = {"Authorization": f"Bearer {issue('d', ['driver'])}"}
        r = await c.post(f"/api/operator/chargers/{cp_id}/commands", headers=drv,
                         json={"action": "Reset", "payload": {"type": "Soft"}})
        assert r.status_code == 403
