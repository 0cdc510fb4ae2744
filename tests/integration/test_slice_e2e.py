"""The first vertical slice, all real: an OCPP 1.6-J charger (the `ocpp` package's ChargePoint over a WebSocket)
-> edges/ocpp -> `ocpp.frames` -> Faust stations processor -> `stations` -> Postgres/PostGIS, Redis and Mongo
projections -> `GET /api/stations`."""

from __future__ import annotations

import base64
import json

import httpx
import pymongo
import pytest
import websockets
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointStatus, RegistrationStatus
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.settings import get_settings
from chargeverse.simulator import ChargerSpec, boot, connect, status
from chargeverse.stations_admin import register
from chargeverse.tokens import issue
from support import events, wait_for

pytestmark = pytest.mark.integration


def _register(unique: str, lat: float = 48.8566, lon: float = 2.3522) -> ChargerSpec:
    sid = f"CP-{unique}"
    p = EventProducer()
    secret = register(p, sid, name=f"Test {unique}", operator="TestNet", latitude=lat, longitude=lon,
                      address="1 Rue de Test, Paris")
    p.close()
    return ChargerSpec(sid, secret, lat, lon, f"Test {unique}")


def _auth(role: str = "driver") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue('tester', [role])}"}


def _station(platform, sid: str):  # noqa: ANN001, ANN202
    r = httpx.get(f"{platform.api}/api/stations/{sid}", headers=_auth())
    return r.json() if r.status_code == 200 else None


async def _connect_when_projected(platform, spec):  # noqa: ANN001, ANN202
    """Registration reaches the edge through the log and the credentials projection: retry the handshake."""
    import asyncio

    for _ in range(150):
        try:
            return await connect(platform.ocpp, spec)
        except InvalidStatus as exc:
            assert exc.response.status_code == 401
            await asyncio.sleep(0.2)
    raise AssertionError("charger credentials never reached the OCPP edge")


async def test_charger_boots_and_its_live_status_is_served_by_the_api(platform, unique) -> None:  # noqa: ANN001
    spec = _register(unique)
    ws, cp, task = await _connect_when_projected(platform, spec)
    try:
        res = await boot(cp, spec)
        assert res.status == RegistrationStatus.accepted and res.interval == 60
        await status(cp, 1, ChargePointStatus.charging)
        hb = await cp.call(call.Heartbeat())
        assert hb.current_time
    finally:
        task.cancel()
        await ws.close()

    # every frame, both directions, verbatim on the log (an answer's frame is written just after the answer is
    # sent, so the last one may land a moment after the charger has it)
    def both_directions() -> tuple[list, list]:
        frames = events("ocpp.frames", lambda t, r: t == "OcppFrame" and r["charge_point_id"] == spec.station_id)
        ins = [r for _, r in frames if r["direction"] == "IN"]
        outs = [r for _, r in frames if r["direction"] == "OUT"]
        return (ins, outs) if len(outs) >= len(ins) else ()  # type: ignore[return-value]

    ins, outs = wait_for("every answer's frame on the log", both_directions, timeout=10)
    assert [r["action"] for r in ins] == ["BootNotification"] + ["StatusNotification"] * 4 + ["Heartbeat"]
    assert len(outs) == len(ins) and all(o["message_type_id"] == 3 for o in outs)
    assert json.loads(ins[0]["raw"])[3]["chargePointVendor"] == spec.vendor
    assert {o["causation_id"] for o in outs} == {i["event_id"] for i in ins}
    assert [o["answers"] for o in outs] == [i["raw"] for i in ins]  # each result carries the call it answers

    # projections: Postgres (+PostGIS) and Redis through the API
    def served():  # noqa: ANN202
        st = _station(platform, spec.station_id)
        return st if st and st["vendor"] == spec.vendor and st["last_heartbeat_at"] and not st["online"] and \
            {c["connector_id"]: c["status"] for c in st["connectors"]} == {1: "Charging", 2: "Available"} \
            else None

    st = wait_for("the station's live status in the API", served)
    assert st["model"] == spec.model and st["firmware_version"] == "1.0.0"
    assert (st["latitude"], st["longitude"]) == pytest.approx((spec.latitude, spec.longitude))

    r = httpx.get(f"{platform.api}/api/stations", params={"near": "48.8600,2.3522", "radius": 2000},
                  headers=_auth())
    assert r.status_code == 200
    found = [i for i in r.json()["items"] if i["station_id"] == spec.station_id]
    assert found and 300 < found[0]["distance_m"] < 450  # 0.0034° of latitude ≈ 378 m
    far = httpx.get(f"{platform.api}/api/stations", params={"near": "52.37,4.89", "radius": 2000},
                    headers=_auth()).json()["items"]
    assert spec.station_id not in [i["station_id"] for i in far]

    # Mongo frame archive
    s = get_settings()
    db = pymongo.MongoClient(s.mongo_url.get_secret_value())[s.mongo_db]
    wait_for("the frame archive", lambda: db.ocpp_frames.count_documents(
        {"charge_point_id": spec.station_id, "kind": "OcppFrame"}) == len(ins) + len(outs))


async def test_search_orders_by_distance_and_paginates(platform, unique) -> None:  # noqa: ANN001
    specs = [_register(f"{unique}-{i}", lat=-33.86 + 0.001 * i, lon=151.2) for i in range(3)]
    ids = [s.station_id for s in specs]

    def all_there():  # noqa: ANN202
        r = httpx.get(f"{platform.api}/api/stations", params={"near": "-33.86,151.2", "radius": 1000},
                      headers=_auth()).json()["items"]
        got = [i["station_id"] for i in r if i["station_id"] in ids]
        return got if len(got) == 3 else None

    assert wait_for("three registered stations", all_there) == ids  # nearest first
    page2 = httpx.get(f"{platform.api}/api/stations", headers=_auth(),
                      params={"near": "-33.86,151.2", "radius": 1000, "limit": 1, "offset": 1}).json()
    assert [i["station_id"] for i in page2["items"]] == [ids[1]]


def test_api_refuses_missing_bad_and_unauthorised_tokens(platform) -> None:  # noqa: ANN001
    url = f"{platform.api}/api/stations?near=1,1"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    expired = issue("x", ["driver"], ttl_seconds=-10)
    r = httpx.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"].lower()
    import jwt

    forged = jwt.encode({"sub": "x", "roles": ["admin"], "exp": 4102444800, "iss": "chargeverse"}, "a-wrong-key-of-the-right-length-123456",
                        algorithm="HS256")
    assert httpx.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert httpx.get(url, headers=_auth("driver")).status_code == 200


def test_api_answers_bad_queries_with_4xx_and_a_reason(platform) -> None:  # noqa: ANN001
    h = _auth()
    r = httpx.get(f"{platform.api}/api/stations", params={"near": "north"}, headers=h)
    assert r.status_code == 422 and "lat,lon" in r.json()["detail"]
    r = httpx.get(f"{platform.api}/api/stations", params={"near": "95,0"}, headers=h)
    assert r.status_code == 422 and "range" in r.json()["detail"]
    assert httpx.get(f"{platform.api}/api/stations", params={"near": "1,1", "radius": -5}, headers=h).status_code == 422
    r = httpx.get(f"{platform.api}/api/stations/NOPE-404", headers=h)
    assert r.status_code == 404 and "NOPE-404" in r.json()["detail"]
    assert httpx.get(f"{platform.api}/readyz").json()["ready"] is True
    assert httpx.get(f"{platform.ocpp.replace('ws://', 'http://').rsplit('/ocpp', 1)[0]}/readyz").text == "ready\n"
    assert "/api/stations" in httpx.get(f"{platform.api}/openapi.json").json()["paths"]


async def test_ocpp_handshake_refuses_unknown_chargers_wrong_secrets_and_other_protocols(platform, unique) -> None:  # noqa: ANN001,E501
    spec = _register(unique)
    ws, cp, task = await _connect_when_projected(platform, spec)  # the right secret works
    task.cancel()
    await ws.close()
    for who, secret, proto, code in [
        (spec.station_id, "wrong-secret-wrong-secret", "ocpp1.6", 401),
        (f"UNKNOWN-{unique}", spec.secret, "ocpp1.6", 401),
        (spec.station_id, spec.secret, "ocpp0.9", 400),
    ]:
        auth = base64.b64encode(f"{who}:{secret}".encode()).decode()
        with pytest.raises(InvalidStatus) as exc:
            await websockets.connect(f"{platform.ocpp}/{who}", subprotocols=[proto],
                                     additional_headers={"Authorization": f"Basic {auth}"})
        assert exc.value.response.status_code == code
    with pytest.raises(InvalidStatus) as exc:  # no credentials at all
        await websockets.connect(f"{platform.ocpp}/{spec.station_id}", subprotocols=["ocpp1.6"])
    assert exc.value.response.status_code == 401


async def test_a_restarted_worker_resumes_and_carries_on(platform, unique) -> None:  # noqa: ANN001
    """A worker stopped and started again resumes from its committed offsets and goes on processing: a boot
    answered just before the restart is projected after it."""
    spec = _register(unique)
    ws, cp, task = await _connect_when_projected(platform, spec)
    try:
        await boot(cp, spec)
        platform.restart("worker-processors")
        hb = await cp.call(call.Heartbeat())
        assert hb.current_time
    finally:
        task.cancel()
        await ws.close()
    st = wait_for("the station booted before the restart, projected after it",
                  lambda: (s := _station(platform, spec.station_id)) and s["vendor"] == spec.vendor
                  and s["last_heartbeat_at"] and s)
    assert st["model"] == spec.model


async def test_a_new_secret_revokes_the_old_one_at_once(platform, unique) -> None:  # noqa: ANN001
    """The edge remembers verified secrets, but never past a re-registration with a new secret."""
    spec = _register(unique)
    ws, _, task = await _connect_when_projected(platform, spec)  # the old secret is now cached as good
    task.cancel()
    await ws.close()
    p = EventProducer()
    new_secret = register(p, spec.station_id, name="renamed", operator="TestNet", latitude=spec.latitude,
                          longitude=spec.longitude)
    p.close()
    # the credentials row is written in the same transaction as the station row the API reads
    wait_for("the re-registration projected", lambda: (st := _station(platform, spec.station_id))
             and st["name"] == "renamed")
    with pytest.raises(InvalidStatus) as exc:
        await connect(platform.ocpp, spec)
    assert exc.value.response.status_code == 401
    spec.secret = new_secret
    ws, _, task = await connect(platform.ocpp, spec)
    task.cancel()
    await ws.close()


def _heartbeat_frames(sid: str, n: int) -> list[tuple[str, str, str, dict]]:
    """`n` Heartbeat CALLs of one charger as the OCPP edge records them on `ocpp.frames`."""
    from chargeverse.events import envelope

    out = []
    for i in range(n):
        fr = envelope(source="test", correlation_id=f"{sid}-{i}")
        fr.update(charge_point_id=sid, direction="IN", ocpp_version="ocpp1.6", connection_id="c",
                  message_type_id=2, message_id=str(i), action="Heartbeat", raw=f'[2,"{i}","Heartbeat",{{}}]',
                  valid=True, error_code=None, error_description=None)
        out.append(("ocpp.frames", sid, "OcppFrame", fr))
    return out


def _first_output_of(sid: str, timeout: float = 60.0) -> None:
    """Block until the stations processor has written its first event for `sid` (read from the topic's end)."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config

    c = Consumer({**base_config(), "group.id": f"t-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        parts = c.list_topics("stations", timeout=10).topics["stations"].partitions
        c.assign([TopicPartition("stations", p, c.get_watermark_offsets(TopicPartition("stations", p))[1])
                  for p in parts])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.2):
                if not m.error() and m.key() == sid.encode():
                    return
        raise AssertionError(f"the stations processor wrote nothing for {sid} in {timeout}s")
    finally:
        c.close()


def test_a_worker_stopped_mid_backlog_loses_no_frame(platform, unique) -> None:  # noqa: ANN001
    """A worker stopped (SIGTERM) while it works through a backlog commits only what it processed: every frame
    is translated exactly once as an event id, by it or by the worker that replaces it.

    faust skips the events still in its stream buffer at a stop and acks them; before chargeverse/faust_acks.py
    those offsets were committed and the restarted worker never saw the frames."""
    n = 5_000
    sid = f"CP-{unique}"
    p = EventProducer()
    p.publish_many_sync(_heartbeat_frames(sid, n), timeout=120)
    p.close()
    _first_output_of(sid)
    platform.restart("worker-processors")  # mid-backlog: 5,000 frames take the processor seconds

    def translated() -> int:
        ids = {r["event_id"] for t, r in events("stations", lambda t, r: t == "StationHeartbeat"
                                                  and r["station_id"] == sid)}
        return len(ids) if len(ids) == n else 0

    assert wait_for(f"all {n} heartbeats of {sid} translated", translated, timeout=90) == n
