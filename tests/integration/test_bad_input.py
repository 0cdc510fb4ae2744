"""Bad input gets the protocol's answer, the process keeps serving, nothing accepted is lost, and poison messages
go to the dead-letter topic."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from support import events, wait_for

pytestmark = pytest.mark.integration


async def _raw_charger(platform, unique):  # noqa: ANN001, ANN202
    import asyncio

    sid = f"RAW-{unique}"
    p = EventProducer()
    secret = register(p, sid, name="raw", operator="t", latitude=10.0, longitude=10.0)
    p.close()
    auth = base64.b64encode(f"{sid}:{secret}".encode()).decode()
    for _ in range(150):
        try:
            ws = await websockets.connect(f"{platform.ocpp}/{sid}", subprotocols=["ocpp1.6"],
                                          additional_headers={"Authorization": f"Basic {auth}"},
                                          max_size=2 ** 22)
            return sid, ws
        except InvalidStatus:
            await asyncio.sleep(0.2)
    raise AssertionError("charger never projected")


BAD_FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('{"an": "object"}', "-1", "FormationViolation"),
    ('[2, "b1", "BootNotification", {"chargePointVendor": 7, "chargePointModel": "m"}]', "b1",
     "TypeConstraintViolation"),
    ('[2, "b2", "BootNotification", {"chargePointVendor": "v"}]', "b2", "OccurenceConstraintViolation"),
    ('[2, "b3", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]', "b3",
     "PropertyConstraintViolation"),
    ('[2, "b4", "FlyToTheMoon", {}]', "b4", "NotImplemented"),
    # a central-system action sent by a charger: recognised, not supported (every 1.6 charger-initiated action
    # is answered now, so StartTransaction no longer stands for NotSupported)
    ('[2, "b5", "RemoteStartTransaction", {"idTag": "T"}]', "b5", "NotSupported"),
    ('[2, "b6", "Heartbeat"]', "b6", "ProtocolError"),
]


async def test_malformed_frames_get_callerrors_and_the_connection_keeps_serving(platform, unique) -> None:  # noqa: ANN001,E501
    sid, ws = await _raw_charger(platform, unique)
    try:
        for text, mid, code in BAD_FRAMES:
            await ws.send(text)
            answer = json.loads(await ws.recv())
            assert answer[:3] == [4, mid, code], text
            assert answer[3]  # a human reason
        await ws.send('[2, "ok1", "Heartbeat", {}]')  # still serving
        answer = json.loads(await ws.recv())
        assert answer[0] == 3 and answer[1] == "ok1" and "currentTime" in answer[2]
    finally:
        await ws.close()
    # every raw frame is on the log, the invalid ones flagged with the code we answered
    ins = [r for _, r in events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == sid
                                and r["direction"] == "IN")]
    assert [r["raw"] for r in ins] == [t for t, _, _ in BAD_FRAMES] + ['[2, "ok1", "Heartbeat", {}]']
    codes = [r["error_code"] for r in ins]
    assert codes == [c for _, _, c in BAD_FRAMES] + [None]
    assert [r["valid"] for r in ins][:6] == [False] * 6 and ins[-1]["valid"] is True


async def test_an_oversized_frame_closes_with_1009_and_other_chargers_are_unaffected(platform, unique) -> None:  # noqa: ANN001,E501
    sid, ws = await _raw_charger(platform, unique)
    _, other = await _raw_charger(platform, unique + "b")
    try:
        await ws.send('[2, "big", "DataTransfer", {"vendorId": "x", "data": "' + "x" * 70000 + '"}]')
        with pytest.raises(ConnectionClosed) as exc:
            await ws.recv()
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009
        await other.send('[2, "o1", "Heartbeat", {}]')
        assert json.loads(await other.recv())[:2] == [3, "o1"]
    finally:
        await other.close()


def test_poison_messages_go_to_the_dead_letter_topic_and_processing_continues(platform, unique) -> None:  # noqa: ANN001,E501
    from chargeverse.avro import default_codec
    from chargeverse.events import envelope

    sid = f"POISON-{unique}"
    p = EventProducer()
    register(p, sid, name="poison", operator="t", latitude=20.0, longitude=20.0)
    garbage = b"\xde\xad\xbe\xef not avro " + unique.encode()
    import asyncio

    async def send_all() -> None:
        await p.publish_raw("ocpp.frames", sid, garbage)
        await p.publish_raw("stations", sid, garbage)
        hb = envelope(source="test", correlation_id="c")
        hb["station_id"] = sid
        await p.publish("stations", sid, "StationHeartbeat", hb)

    asyncio.run(send_all())
    p.close()

    def dead() -> list:
        return [r for t, r in events("deadletter") if r["value"] == garbage]

    letters = wait_for("dead letters from every consumer of the poisoned topics",
                       lambda: (d := dead()) and {r["consumer"] for r in d} >= {
                           "stations", "mongo.frame_archive", "pg.stations", "redis.live_status"} and d)
    assert {r["consumer"] for r in letters} >= {"stations", "mongo.frame_archive", "pg.stations",
                                                "redis.live_status"}
    assert all("fingerprint" in r["error"] or "not a chargeverse event" in r["error"] for r in letters)
    assert all(r["key"] == sid.encode() for r in letters)
    # the valid event after the poison was still applied
    h = {"Authorization": f"Bearer {issue('t', ['operator'])}"}
    wait_for("the heartbeat after the poison message",
             lambda: (r := httpx.get(f"{platform.api}/api/stations/{sid}", headers=h)).status_code == 200
             and r.json()["last_heartbeat_at"])
    assert default_codec()  # decoding still works for everything else
