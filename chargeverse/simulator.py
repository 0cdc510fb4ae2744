"""Simulated chargers built on the `ocpp` package's ChargePoint over a real WebSocket: OCPP 1.6-J (default) or
OCPP 2.0.1 (`ChargerSpec.ocpp_version`).

Used by the demo (`cv demo`) and by the end-to-end tests: they are real protocol peers, not mocks, and the `ocpp`
package validates every request they send and every answer they get against the official schemas.  A charger
boots, reports its connectors Available, heartbeats, and "charges": 1.6 Preparing -> Charging -> Finishing ->
Available as status notifications; 2.0.1 Occupied, a transaction (TransactionEvent Started/Updated/Ended with
seqNo), then Available.
"""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import websockets
from ocpp.v16 import ChargePoint as _CP16
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus
from ocpp.v201 import ChargePoint as _CP201
from ocpp.routing import on as on16
from ocpp.routing import on as on201
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

V16, V201 = "ocpp1.6", "ocpp2.0.1"


@dataclass
class ChargerSpec:
    station_id: str
    secret: str
    latitude: float
    longitude: float
    name: str
    connectors: int = 2
    vendor: str = "chargeverse-sim"
    model: str = "SIM-22"
    ocpp_version: str = V16


class SimChargePoint(_CP16):
    """The `ocpp` 1.6 ChargePoint, answering the central system's common commands like a cooperative charger.
    `received` lists the commands it got, in order (tests read it)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on16(Action16.reset)
    def on_reset(self, type: str, **_: Any) -> Any:  # noqa: A002 - the OCPP field name
        self.received.append(("Reset", {"type": type}))
        return result16.Reset(status="Accepted")

    @on16(Action16.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw: Any) -> Any:
        self.received.append(("RemoteStartTransaction", {"idTag": id_tag, **kw}))
        return result16.RemoteStartTransaction(status="Accepted")

    @on16(Action16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        self.received.append(("RemoteStopTransaction", {"transactionId": transaction_id}))
        return result16.RemoteStopTransaction(status="Accepted")

    @on16(Action16.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:  # noqa: A002
        self.received.append(("ChangeAvailability", {"connectorId": connector_id, "type": type}))
        return result16.ChangeAvailability(status="Accepted")

    @on16(Action16.get_configuration)
    def on_get_configuration(self, **kw: Any) -> Any:
        self.received.append(("GetConfiguration", kw))
        return result16.GetConfiguration(configuration_key=[
            {"key": "HeartbeatInterval", "readonly": False, "value": "60"}])

    @on16(Action16.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any) -> Any:
        self.received.append(("SetChargingProfile", {"connectorId": connector_id}))
        return result16.SetChargingProfile(status="Accepted")


class SimChargePoint201(_CP201):
    """The `ocpp` 2.0.1 ChargePoint, answering Reset and RequestStart/StopTransaction."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on201(Action201.reset)
    def on_reset(self, type: str, **_: Any) -> Any:  # noqa: A002
        self.received.append(("Reset", {"type": type}))
        return result201.Reset(status="Accepted")

    @on201(Action201.request_start_transaction)
    def on_request_start(self, id_token: dict, remote_start_id: int, **_: Any) -> Any:
        self.received.append(("RequestStartTransaction", {"idToken": id_token, "remoteStartId": remote_start_id}))
        return result201.RequestStartTransaction(status="Accepted")

    @on201(Action201.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        self.received.append(("RequestStopTransaction", {"transactionId": transaction_id}))
        return result201.RequestStopTransaction(status="Accepted")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def connect(url: str, spec: ChargerSpec, **kw: Any) -> tuple[Any, Any, asyncio.Task]:
    """Open the WebSocket (HTTP Basic unless the spec has no secret, the spec's subprotocol) and start the
    ChargePoint's reader.  Extra keywords go to `websockets.connect` (e.g. `ssl=` for wss://)."""
    headers = dict(kw.pop("additional_headers", {}) or {})
    if spec.secret:
        auth = base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()
        headers["Authorization"] = f"Basic {auth}"
    ws = await websockets.connect(f"{url.rstrip('/')}/{spec.station_id}", subprotocols=[spec.ocpp_version],
                                  additional_headers=headers, **kw)
    cp: Any = (SimChargePoint201 if spec.ocpp_version == V201 else SimChargePoint)(spec.station_id, ws)
    task = asyncio.create_task(cp.start())
    return ws, cp, task


async def boot(cp: Any, spec: ChargerSpec) -> Any:
    if spec.ocpp_version == V201:
        res = await cp.call(call201.BootNotification(
            charging_station={"model": spec.model, "vendor_name": spec.vendor,
                              "serial_number": f"SN-{spec.station_id}", "firmware_version": "1.0.0"},
            reason="PowerUp"))
        for c in range(1, spec.connectors + 1):
            await status(cp, c, "Available", spec)
        return res
    res = await cp.call(call.BootNotification(charge_point_vendor=spec.vendor, charge_point_model=spec.model,
                                              charge_point_serial_number=f"SN-{spec.station_id}",
                                              firmware_version="1.0.0"))
    for c in range(0, spec.connectors + 1):
        await status(cp, c, ChargePointStatus.available)
    return res


async def status(cp: Any, connector: int, st: Any, spec: ChargerSpec | None = None) -> Any:
    """A status notification; for 2.0.1 chargers `connector` is the EVSE (one connector each)."""
    if isinstance(cp, _CP201):
        return await cp.call(call201.StatusNotification(timestamp=_now(), connector_status=st,
                                                        evse_id=connector, connector_id=1))
    return await cp.call(call.StatusNotification(connector_id=connector, error_code=ChargePointErrorCode.no_error,
                                                 status=st, timestamp=_now()))


async def heartbeat(cp: Any) -> Any:
    return await cp.call(call201.Heartbeat() if isinstance(cp, _CP201) else call.Heartbeat())


async def charge_cycle(cp: Any, connector: int, pause: float) -> None:
    if isinstance(cp, _CP201):
        tx = uuid.uuid4().hex[:16]
        await status(cp, connector, "Occupied")
        for seq, (event, reason) in enumerate((("Started", "CablePluggedIn"), ("Updated", "ChargingStateChanged"),
                                               ("Ended", "EVCommunicationLost"))):
            await cp.call(call201.TransactionEvent(
                event_type=event, timestamp=_now(), trigger_reason=reason, seq_no=seq,
                transaction_info={"transaction_id": tx}, evse={"id": connector, "connector_id": 1}))
            await asyncio.sleep(pause)
        await status(cp, connector, "Available")
        return
    for st in (ChargePointStatus.preparing, ChargePointStatus.charging, ChargePointStatus.finishing,
               ChargePointStatus.available):
        await status(cp, connector, st)
        await asyncio.sleep(pause)


async def run_charger(url: str, spec: ChargerSpec, *, duration: float, heartbeat_every: float = 10.0,
                      seed: int = 0) -> int:
    """Run one charger for `duration` seconds; returns the number of CALLs it made."""
    rnd = random.Random(seed)
    ws, cp, task = await connect(url, spec)
    calls = 0
    per_cycle = 5 if spec.ocpp_version == V201 else 4
    try:
        await boot(cp, spec)
        calls += 1 + spec.connectors + (0 if spec.ocpp_version == V201 else 1)
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() < end:
            if rnd.random() < 0.5:
                await charge_cycle(cp, rnd.randint(1, spec.connectors), pause=min(2.0, heartbeat_every / 4))
                calls += per_cycle
            await heartbeat(cp)
            calls += 1
            await asyncio.sleep(rnd.uniform(0.5, 1.5) * heartbeat_every)
    finally:
        task.cancel()
        await ws.close()
    return calls
