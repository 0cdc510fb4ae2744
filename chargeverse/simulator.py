"""Simulated OCPP 1.6-J chargers built on the `ocpp` package's ChargePoint over a real WebSocket.

Used by the demo (`cv demo`) and by the end-to-end tests: they are real protocol peers, not mocks.  A charger
boots, reports its connectors Available, heartbeats, and "charges": Preparing -> Charging -> Finishing ->
Available on a connector, as status notifications.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import websockets
from ocpp.v16 import ChargePoint as _CP
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus


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


class SimChargePoint(_CP):
    """The `ocpp` ChargePoint; the CSMS commands it will answer arrive with the OCPP issue."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def connect(url: str, spec: ChargerSpec, **kw: Any) -> tuple[Any, SimChargePoint, asyncio.Task]:
    """Open the WebSocket (HTTP Basic, subprotocol ocpp1.6) and start the ChargePoint's reader."""
    auth = base64.b64encode(f"{spec.station_id}:{spec.secret}".encode()).decode()
    ws = await websockets.connect(f"{url.rstrip('/')}/{spec.station_id}", subprotocols=["ocpp1.6"],
                                  additional_headers={"Authorization": f"Basic {auth}"}, **kw)
    cp = SimChargePoint(spec.station_id, ws)
    task = asyncio.create_task(cp.start())
    return ws, cp, task


async def boot(cp: SimChargePoint, spec: ChargerSpec) -> Any:
    res = await cp.call(call.BootNotification(charge_point_vendor=spec.vendor, charge_point_model=spec.model,
                                              charge_point_serial_number=f"SN-{spec.station_id}",
                                              firmware_version="1.0.0"))
    for c in range(0, spec.connectors + 1):
        await status(cp, c, ChargePointStatus.available)
    return res


async def status(cp: SimChargePoint, connector: int, st: ChargePointStatus) -> Any:
    return await cp.call(call.StatusNotification(connector_id=connector, error_code=ChargePointErrorCode.no_error,
                                                 status=st, timestamp=_now()))


async def charge_cycle(cp: SimChargePoint, connector: int, pause: float) -> None:
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
    try:
        await boot(cp, spec)
        calls += 2 + spec.connectors
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() < end:
            if rnd.random() < 0.5:
                await charge_cycle(cp, rnd.randint(1, spec.connectors), pause=min(2.0, heartbeat_every / 4))
                calls += 4
            await cp.call(call.Heartbeat())
            calls += 1
            await asyncio.sleep(rnd.uniform(0.5, 1.5) * heartbeat_every)
    finally:
        task.cancel()
        await ws.close()
    return calls
