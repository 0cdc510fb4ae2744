"""A driver charges at one of our stations from the app, all real: `POST /api/sessions/start` -> OcppCommandRequested
on `ocpp.commands` -> the OCPP edge holding the charger's socket sends RemoteStartTransaction (1.6) /
RequestStartTransaction (2.0.1) -> a charger built on the `ocpp` package's ChargePoint (validating every call
against the official schemas) accepts, starts the transaction and reports meter values -> `ocpp.frames` ->
sessions processor -> `sessions` -> the sessions projection, which the driver reads live (energy, power, cost so
far, state of charge where the charger reports it).  Stopping from the app sends RemoteStop / RequestStop, the
charger ends the transaction, the billing processor prices it, and the history shows the final cost.

Also: one active session per connector and per token (a second start is a 409, not a second command), and a start
that cannot happen (the charger refuses it, or is not connected) ends visibly: the start request's status says
REJECTED / FAILED with the reason, and the driver may try again at once.

The chargers here are the simulator's cooperative chargers taught one more thing a real charger does: after a
remote start it accepted it starts the transaction itself, and after a remote stop it ends it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg
import pytest
import websockets
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.simulator import V16, V201, ChargerSpec, SimChargePoint, SimChargePoint201, boot, status
from chargeverse.stations_admin import register
from chargeverse.tariffs_admin import set_tariff
from support import events
from test_ocpp_support import dsn, frames

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh, VAT 10 %
PASSWORD = "correct horse battery staple"
METER_START = 1_000_000  # Wh on the charger's lifetime register when the session starts


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> str:
    return _iso(datetime.now(timezone.utc))


class _Clock:
    """A charge compressed in time, as the charger's meter would have seen it: the transaction started 6 minutes
    ago, a reading 3 minutes in (4 kWh: 80 kW, a DC charger), the stop now.  Register steps must be physically
    credible or the session processor rightly treats them as meter jumps (streams/sessions/energy.py)."""

    def __init__(self) -> None:
        self.t0 = datetime.now(timezone.utc) - timedelta(minutes=6)

    def at(self, minutes: float) -> str:
        return _iso(self.t0 + timedelta(minutes=minutes))


# ---- chargers that act on remote start / stop ---------------------------------------------------------------------
class Charger16(SimChargePoint):
    """1.6: accepts RemoteStartTransaction (unless `accept_start` is False), then StartTransaction on that
    connector with that idTag and a first MeterValues; RemoteStopTransaction of its transaction -> StopTransaction."""

    accept_start = True

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.tx: dict[int, tuple[int, str, _Clock]] = {}  # transaction id -> (connector, idTag, clock)
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    @on(Action16.remote_start_transaction)
    def on_remote_start(self, **kw: Any) -> Any:
        self._got("RemoteStartTransaction", kw)
        return result16.RemoteStartTransaction(status="Accepted" if self.accept_start else "Rejected")

    @after(Action16.remote_start_transaction)
    async def after_remote_start(self, **kw: Any) -> None:
        if self.accept_start:
            self._later(self._start(int(kw["connector_id"]), kw["id_tag"]))

    async def _start(self, connector: int, id_tag: str) -> None:
        await status(self, connector, "Preparing")
        clock = _Clock()
        res = await self.call(call16.StartTransaction(connector_id=connector, id_tag=id_tag,
                                                      meter_start=METER_START, timestamp=clock.at(0)))
        self.tx[res.transaction_id] = (connector, id_tag, clock)
        await status(self, connector, "Charging")
        await self.meter(res.transaction_id, 4_000, power_w=11_000)
        self.started.set()

    async def meter(self, tx: int, wh: int, *, power_w: int) -> None:
        connector, _, clock = self.tx[tx]
        await self.call(call16.MeterValues(connector_id=connector, transaction_id=tx, meter_value=[{
            "timestamp": clock.at(3), "sampled_value": [
                {"value": str(METER_START + wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"}]}]))

    @on(Action16.remote_stop_transaction)
    def on_remote_stop(self, **kw: Any) -> Any:
        self._got("RemoteStopTransaction", kw)
        return result16.RemoteStopTransaction(status="Accepted" if kw["transaction_id"] in self.tx else "Rejected")

    @after(Action16.remote_stop_transaction)
    async def after_remote_stop(self, **kw: Any) -> None:
        if kw["transaction_id"] in self.tx:
            self._later(self._stop(int(kw["transaction_id"])))

    async def _stop(self, tx: int) -> None:
        connector, id_tag, _ = self.tx.pop(tx)
        await self.call(call16.StopTransaction(meter_stop=METER_START + 10_000, timestamp=_now(), transaction_id=tx,
                                               reason="Remote", id_tag=id_tag))
        await status(self, connector, "Finishing")
        await status(self, connector, "Available")
        self.stopped.set()


class Charger201(SimChargePoint201):
    """2.0.1: accepts RequestStartTransaction (unless `accept_start` is False), then TransactionEvent Started
    (RemoteStart, with the remoteStartId and idToken it got) and Updated with energy, power and SoC;
    RequestStopTransaction -> TransactionEvent Ended (RemoteStop)."""

    accept_start = True

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.tx: dict[str, dict[str, Any]] = {}  # transaction id -> {evse, id_token, seq}
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    @on(Action201.request_start_transaction)
    def on_request_start(self, **kw: Any) -> Any:
        self._got("RequestStartTransaction", kw)
        if not self.accept_start:
            return result201.RequestStartTransaction(status="Rejected", status_info={
                "reason_code": "Occupied", "additional_info": "EVSE reserved for maintenance"})
        return result201.RequestStartTransaction(status="Accepted")

    @after(Action201.request_start_transaction)
    async def after_request_start(self, **kw: Any) -> None:
        if self.accept_start:
            self._later(self._start(int(kw["evse_id"]), kw["id_token"], int(kw["remote_start_id"])))

    def _event(self, tx: str, event_type: str, trigger: str, at: str, values: list[dict[str, Any]],
               **info: Any) -> Any:
        t = self.tx[tx]
        t["seq"] += 1
        return call201.TransactionEvent(
            event_type=event_type, timestamp=at, trigger_reason=trigger, seq_no=t["seq"],
            transaction_info={"transaction_id": tx, **info}, evse={"id": t["evse"], "connector_id": 1},
            id_token=t["id_token"] if event_type == "Started" else None,
            meter_value=[{"timestamp": at, "sampled_value": values}] if values else None)

    async def _start(self, evse: int, id_token: dict[str, Any], remote_start_id: int) -> None:
        tx = uuid.uuid4().hex[:16]
        clock = _Clock()
        self.tx[tx] = {"evse": evse, "id_token": id_token, "seq": -1, "clock": clock}
        await status(self, evse, "Occupied")
        await self.call(self._event(tx, "Started", "RemoteStart", clock.at(0), [
            {"value": METER_START, "measurand": "Energy.Active.Import.Register", "context": "Transaction.Begin"}],
            charging_state="Charging", remote_start_id=remote_start_id))
        await self.meter(tx, 4_000, power_w=11_000, soc=42)
        self.started.set()

    async def meter(self, tx: str, wh: int, *, power_w: int, soc: int) -> None:
        await self.call(self._event(tx, "Updated", "MeterValuePeriodic", self.tx[tx]["clock"].at(3), [
            {"value": METER_START + wh, "measurand": "Energy.Active.Import.Register", "context": "Sample.Periodic"},
            {"value": power_w, "measurand": "Power.Active.Import", "context": "Sample.Periodic"},
            {"value": soc, "measurand": "SoC", "context": "Sample.Periodic", "location": "EV"}]))

    @on(Action201.request_stop_transaction)
    def on_request_stop(self, **kw: Any) -> Any:
        self._got("RequestStopTransaction", kw)
        return result201.RequestStopTransaction(status="Accepted" if kw["transaction_id"] in self.tx else "Rejected")

    @after(Action201.request_stop_transaction)
    async def after_request_stop(self, **kw: Any) -> None:
        if kw["transaction_id"] in self.tx:
            self._later(self._stop(kw["transaction_id"]))

    async def _stop(self, tx: str) -> None:
        await self.call(self._event(tx, "Ended", "RemoteStop", _now(), [
            {"value": METER_START + 10_000, "measurand": "Energy.Active.Import.Register",
             "context": "Transaction.End"}], stopped_reason="Remote", charging_state="Idle"))
        evse = self.tx.pop(tx)["evse"]
        await status(self, evse, "Available")
        self.stopped.set()


# ---- set-up -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def producer(platform) -> Iterator[EventProducer]:  # noqa: ANN001
    p = EventProducer()
    yield p
    p.close()


def _station(p: EventProducer, prefix: str, version: str) -> ChargerSpec:
    """One of our stations with a tariff, registered through the log (`_projected` waits for it)."""
    sid = f"{prefix}-{uuid.uuid4().hex[:10]}"
    secret = register(p, sid, name=f"App start {sid}", operator="TestNet", latitude=45.0, longitude=7.0)
    set_tariff(p, sid, TARIFF, time_zone="Europe/Rome", set_by="test",  # in effect before the charge began
               valid_from=datetime.now(timezone.utc) - timedelta(hours=1))
    return ChargerSpec(sid, secret, 45.0, 7.0, sid, ocpp_version=version)


async def _projected(spec: ChargerSpec) -> None:
    """The station (own, with its tariff) is in the projections the API reads."""
    def ready() -> bool:
        with psycopg.connect(dsn(), autocommit=True) as conn:
            return bool(conn.execute("SELECT 1 FROM stations s JOIN station_tariffs t USING (station_id) "
                                     "WHERE s.station_id = %s AND s.own", (spec.station_id,)).fetchone())
    await eventually(f"{spec.station_id} projected", ready)


async def _connect(url: str, spec: ChargerSpec, cls: type) -> tuple[Any, Any, asyncio.Task[Any]]:
    auth = base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()
    for _ in range(150):
        try:
            ws = await websockets.connect(f"{url}/{spec.station_id}", subprotocols=[spec.ocpp_version],
                                          additional_headers={"Authorization": f"Basic {auth}"})
            break
        except InvalidStatus:
            await asyncio.sleep(0.2)  # credentials not projected yet
    else:
        raise AssertionError("charger credentials never reached the OCPP edge")
    cp = cls(spec.station_id, ws)
    return ws, cp, asyncio.create_task(cp.start())


def _card() -> str:
    """A 4-byte RFID card UID."""
    return uuid.uuid4().hex[:8].upper()


async def _driver(api: str, rfid: str | None = None) -> dict[str, str]:
    """A driver registered through the API (with an RFID card of theirs when `rfid` is given).  Their app token is
    created by their first start."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        email = f"app-{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code in (201, 202), r.text
        tok = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert tok.status_code == 200, tok.text
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        if rfid is not None:
            r = await c.post("/api/me/id-tokens", headers=h, json={"type": "RFID", "uid": rfid})
            assert r.status_code == 201, r.text
        return h


async def eventually(what: str, fn: Any, timeout: float = 30.0, every: float = 0.2,
                     what_else: Any = None) -> Any:
    """Poll `fn` (sync or async) until truthy, yielding to the event loop the chargers run in."""
    loop = asyncio.get_running_loop()
    end, last = loop.time() + timeout, None
    while loop.time() < end:
        last = fn()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}"
                         + ("" if what_else is None else f"; seen: {what_else()!r}"))


async def _start(c: httpx.AsyncClient, h: dict[str, str], station: str, connector: int) -> httpx.Response:
    return await c.post("/api/sessions/start", headers=h, json={"station_id": station, "connector_id": connector})


async def _poll(c: httpx.AsyncClient, h: dict[str, str], location: str, *until: str) -> dict[str, Any]:
    seen: list[Any] = []

    async def got() -> dict[str, Any] | None:
        r = await c.get(location, headers=h)
        assert r.status_code in (200, 202), r.text
        seen.append(r.json())
        return r.json() if r.json()["status"] in until else None
    return await eventually(f"start request {location} -> {until}", got, what_else=lambda: seen[-1:])


# ---- the tests ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [V16, V201])
async def test_a_driver_starts_watches_and_stops_a_charge_from_the_app(platform, producer, version) -> None:  # noqa: ANN001,E501
    spec = _station(producer, "APP16" if version == V16 else "APP201", version)
    headers, someone = await asyncio.gather(_driver(platform.api, _card()), _driver(platform.api))
    await _projected(spec)
    ws, cp, task = await _connect(platform.ocpp, spec, Charger16 if version == V16 else Charger201)
    try:
        assert (await boot(cp, spec)).status == "Accepted"
        async with httpx.AsyncClient(base_url=platform.api, timeout=30) as c:
            # start: 202 with a place to poll; the charger gets the remote start for the driver's app token
            r = await _start(c, headers, spec.station_id, 1)
            assert r.status_code == 202, r.text
            started = r.json()
            assert started["status"] == "PENDING" and started["id_token"].startswith("APP")
            poll = r.headers["Location"]
            req = await _poll(c, headers, poll, "STARTED")
            sid = req["session_id"]
            assert req["session"] == f"/api/sessions/{sid}"
            await asyncio.wait_for(cp.started.wait(), 10)
            if version == V16:
                assert cp.received[-1] == ("RemoteStartTransaction", {"idTag": started["id_token"],
                                                                      "connectorId": 1})
            else:
                action, payload = cp.received[-1]
                assert action == "RequestStartTransaction" and payload["evseId"] == 1
                assert payload["idToken"]["idToken"] == started["id_token"]

            # live: energy, power, cost so far (0.25 EUR/kWh + 10 % VAT), SoC when the charger sends it
            seen: list[Any] = []

            async def live() -> dict[str, Any] | None:
                seen.append((await c.get(f"/api/sessions/{sid}", headers=headers)).json())
                return seen[-1] if seen[-1].get("energy_kwh") == 4.0 and seen[-1].get("cost") else None
            s = await eventually("the live session", live, what_else=lambda: seen[-1:])
            assert (s["status"], s["charge_point_id"], s["connector_id"]) == ("ACTIVE", spec.station_id, 1)
            assert s["id_token"] == started["id_token"] and s["power_kw"] == 11.0
            assert s["cost"] == {"currency": "EUR", "excl_vat": "1.00", "incl_vat": "1.10", "final": False}
            assert s["soc_percent"] == (42.0 if version == V201 else None)

            # one active session per connector and per token: a clear 409, and nothing sent (checked on the log)
            again = await _start(c, headers, spec.station_id, 1)
            assert again.status_code == 409 and "already" in again.json()["detail"], again.text
            other = await _start(c, headers, spec.station_id, 2)  # same token, free connector
            assert other.status_code == 409 and sid in other.json()["detail"], other.text
            busy = await _start(c, someone, spec.station_id, 1)  # another driver, the busy connector
            assert busy.status_code == 409, busy.text

            # stop from the app: the charger gets the remote stop for its own transaction and ends it
            r = await c.put(f"/api/sessions/{sid}/stop", headers=headers)
            assert r.status_code == 202, r.text
            await asyncio.wait_for(cp.stopped.wait(), 15)
            action, payload = cp.received[-1]
            assert action == ("RemoteStopTransaction" if version == V16 else "RequestStopTransaction")
            assert str(payload["transactionId"]) == _transaction_of(sid)

            # the history shows it stopped, with its final cost (10 kWh at 0.25 EUR/kWh, 10 % VAT)
            async def billed() -> dict[str, Any] | None:
                items = (await c.get("/api/sessions/history", headers=headers)).json()["items"]
                mine = [x for x in items if x["session_id"] == sid]
                return mine[0] if mine and mine[0]["cost"] else None
            h = await eventually("the session billed", billed, timeout=60)
            assert (h["status"], h["energy_kwh"], h["stop_reason"]) == ("STOPPED", 10.0, "Remote"), h
            assert h["cost"] == {"currency": "EUR", "excl_vat": "2.50", "incl_vat": "2.75", "final": True}
            stopped = (await c.get(f"/api/sessions/{sid}", headers=headers)).json()
            assert stopped["cost"] == h["cost"]
            # stopping it again is a clear 409
            again = await c.put(f"/api/sessions/{sid}/stop", headers=headers)
            assert again.status_code == 409, again.text

            # the connector and the token are free again; a new start the charger refuses is not mistaken for
            # the session that just ended there with the same token
            cp.accept_start = False
            r = await _start(c, headers, spec.station_id, 1)
            assert r.status_code == 202, r.text
            second = await _poll(c, headers, r.headers["Location"], "REJECTED", "STARTED", "FAILED")
            assert (second["status"], second["session_id"]) == ("REJECTED", None), second
    finally:
        task.cancel()
        await ws.close()
    # the 409s published nothing: two starts on the log (the session's and the refused one), each sent once
    starts = [r for _, r in events("ocpp.commands", lambda t, r: t == "OcppCommandRequested"
                                   and r["charge_point_id"] == spec.station_id
                                   and r["action"] in ("RemoteStartTransaction", "RequestStartTransaction"))]
    assert [x["command_id"] for x in starts] == [started["command_id"], second["command_id"]]
    assert len([f for f in frames(spec.station_id) if f["direction"] == "OUT" and f["message_type_id"] == 2
                and f["action"] in ("RemoteStartTransaction", "RequestStartTransaction")]) == 2


def _transaction_of(session_id: str) -> str:
    with psycopg.connect(dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT transaction_id FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def _start_that_cannot_happen(api: str, ocpp: str, spec: ChargerSpec, version: str | None) -> dict[str, Any]:
    """A driver starts at a charger that refuses remote starts (`version`), or at one not connected (None); returns
    the start request once it has ended, after checking that nothing started and that nothing is held."""
    headers = await _driver(api)
    await _projected(spec)
    ws: Any = None
    cp: Any = None
    task: asyncio.Task[Any] | None = None
    if version is not None:
        cls = type("Refusing", (Charger16 if version == V16 else Charger201,), {"accept_start": False})
        ws, cp, task = await _connect(ocpp, spec, cls)
        await boot(cp, spec)
    try:
        async with httpx.AsyncClient(base_url=api, timeout=30) as c:
            r = await _start(c, headers, spec.station_id, 1)
            assert r.status_code == 202, r.text
            req = await _poll(c, headers, r.headers["Location"], "REJECTED", "FAILED", "STARTED")
            assert req["session_id"] is None and req["session"] is None, req
            if version is not None:  # it was the charger's decision: it got the call in its own version
                assert cp.received[-1][0] == ("RemoteStartTransaction" if version == V16
                                              else "RequestStartTransaction")
            # nothing started, and the driver may try again at once (no 409 from a lock the failure left behind)
            items = (await c.get("/api/sessions/history", headers=headers)).json()["items"]
            assert not [x for x in items if x["charge_point_id"] == spec.station_id]
            again = await _start(c, headers, spec.station_id, 1)
            assert again.status_code == 202, again.text
            return req
    finally:
        if task is not None:
            task.cancel()
            await ws.close()


async def test_a_start_that_cannot_happen_ends_with_its_reason_and_holds_nothing(platform, producer) -> None:  # noqa: ANN001,E501
    """Rejected by a 1.6 charger, rejected by a 2.0.1 station (with its reason code), charger offline: the start
    request ends REJECTED / FAILED with the reason the app shows.  The three run side by side (independent)."""
    cases = [(_station(producer, "REJ" if v else "OFF", v or V16), v) for v in (V16, V201, None)]
    rej16, rej201, offline = await asyncio.gather(*(_start_that_cannot_happen(platform.api, platform.ocpp, spec, v)
                                                     for spec, v in cases))
    assert (rej16["status"], rej16["detail"]) == ("REJECTED", "the charger answered 'Rejected'"), rej16
    assert (rej201["status"], rej201["detail"]) == (
        "REJECTED", "the charger answered 'Rejected': Occupied - EVSE reserved for maintenance"), rej201
    assert offline["status"] == "FAILED" and offline["detail"].startswith("the charger is offline"), offline
