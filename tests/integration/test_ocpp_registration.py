"""Revocation and registration status end to end, through the log: the operator's StationRegistered (with
`revoked` / `registration_status`) is projected into `charge_point_credentials` by the stations projection, and the
OCPP edge reads it there — a revoked charger is refused at the handshake (HTTP 401), a Pending one is told Pending
at boot.  No table is written by the test."""

from __future__ import annotations

import base64
import uuid

import psycopg
import pytest
import websockets
from ocpp.v16 import call as call16
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.simulator import ChargerSpec, boot
from chargeverse.stations_admin import register
from support import wait_for
from test_ocpp_support import charger, dsn

pytestmark = pytest.mark.integration


def _register(sid: str, **kw: object) -> str:
    p = EventProducer()
    secret = register(p, sid, name=sid, operator="TestNet", latitude=51.0, longitude=4.0, **kw)
    p.close()
    return secret


def _projected(sid: str, revoked: bool, status: str) -> None:
    with psycopg.connect(dsn(), autocommit=True) as conn:
        wait_for(f"{sid} projected revoked={revoked} status={status}", lambda: conn.execute(
            "SELECT 1 FROM charge_point_credentials WHERE station_id = %s AND revoked = %s AND "
            "registration_status = %s", (sid, revoked, status)).fetchone())


async def test_a_revoked_charger_is_refused_and_a_pending_one_is_told_so_at_boot(platform) -> None:  # noqa: ANN001
    sid = f"REG-{uuid.uuid4().hex[:10]}"
    secret = _register(sid, revoked=True)
    _projected(sid, True, "Accepted")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{sid}:{secret}".encode()).decode()}
    with pytest.raises(InvalidStatus) as exc:  # the right secret, but revoked
        await websockets.connect(f"{platform.ocpp}/{sid}", subprotocols=["ocpp1.6"], additional_headers=auth)
    assert exc.value.response.status_code == 401

    secret = _register(sid, registration_status="Pending")  # re-registered: no longer revoked, but Pending
    _projected(sid, False, "Pending")
    spec = ChargerSpec(sid, secret, 51.0, 4.0, sid)
    async with charger(platform.ocpp, spec) as cp:
        res = await cp.call(call16.BootNotification(
            charge_point_vendor="chargeverse-sim", charge_point_model="SIM-22"))
        assert res.status == "Pending"

    _register(sid, registration_status="Accepted", secret=secret)
    _projected(sid, False, "Accepted")
    async with charger(platform.ocpp, spec) as cp:
        assert (await boot(cp, spec)).status == "Accepted"
