"""Fleets through the real log and stores: the API in-process against the stack's Kafka, Postgres and Redis, with
followers applying the identity, fleets and billing projections from the log into a schema of this module's own.

What a user would notice: a fleet manager creates a fleet, adds a driver with a cost centre and sets a budget and
allowed stations; the OCPP edge's token lookup (the real IdTokenStore over Postgres) then refuses the driver at a
station the fleet does not allow and, once the driver's priced CDRs of the month reach the budget, everywhere;
the month's report shows the driver's cost under the cost centre, as JSON and CSV; another manager sees nothing.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.settings import get_settings
from edges.api.auth import AuthConfig, Argon2Params
from edges.ocpp.authorization import IdTokenStore
from projections.postgres.billing import BillingProjection
from projections.postgres.fleets import FleetsProjection
from projections.postgres.identity import IdentityProjection
from test_accounts_api import Follower, _dsn_in

pytestmark = pytest.mark.integration
CDR = json.loads((Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples" /
                  "cdr_example.json").read_text())  # 4.00 EUR excl. VAT, 4.40 incl.
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def schema(stack, topics) -> Iterator[str]:  # noqa: ANN001
    name = f"fleet_{uuid.uuid4().hex[:8]}"
    dsn = get_settings().postgres_dsn.get_secret_value()
    projs = [IdentityProjection(dsn, name), FleetsProjection(dsn, name), BillingProjection(dsn, name)]
    followers = [Follower(p) for p in projs]
    yield name
    for f in followers:
        f.close()
    for p in projs:
        p.close()


@pytest.fixture
async def app(schema):  # noqa: ANN001, ANN201
    from edges.api import fleets
    from edges.api.app import create_app

    application = create_app(get_settings().model_copy(update={"postgres_dsn": SecretStr(_dsn_in(schema))}))
    application.include_router(fleets.router)
    application.state.auth_config = AuthConfig(argon2=Argon2Params(1, 1024, 1),
                                               redis_prefix=f"cvtest:{uuid.uuid4().hex[:8]}", write_wait_seconds=20.0)
    async with application.router.lifespan_context(application):
        yield application
    application.state.producer = None


async def _account(c: httpx.AsyncClient, role: str) -> tuple[str, dict[str, str]]:
    email = f"{role[:3]}-{uuid.uuid4().hex[:8]}@example.com"
    r = await c.post("/api/auth/register", json={"email": email, "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    tok = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert tok.status_code == 200, tok.text
    return email, {"Authorization": f"Bearer {tok.json()['access_token']}"}


def _cdr_priced(account_id: str, start: datetime) -> dict[str, Any]:
    cdr = copy.deepcopy(CDR)
    sid = uuid.uuid4().hex
    cdr["id"] = sid[:30]
    shift = start - datetime.fromisoformat(CDR["start_date_time"].replace("Z", "+00:00"))

    def moved(text: str) -> str:
        return (datetime.fromisoformat(text.replace("Z", "+00:00")) + shift).isoformat().replace("+00:00", "Z")

    cdr["start_date_time"], cdr["end_date_time"] = moved(CDR["start_date_time"]), moved(CDR["end_date_time"])
    for period in cdr["charging_periods"]:
        period["start_date_time"] = moved(period["start_date_time"])
    rec = envelope(source="test:billing", correlation_id=sid)
    rec.update(session_id=sid, account_id=account_id, fleet_id=None, cost_centre=None, origin="OWN",
               partner_country_code=None, partner_party_id=None, cdr_id=cdr["id"], cdr=json.dumps(cdr),
               currency="EUR", tariff_id=None, total_cost_excl_vat="4.00", total_cost_incl_vat="4.40",
               cost_parts=[], total_energy_kwh="15.342", total_time_hours="1.973", total_parking_time_hours=None,
               credit=False, credit_reference_id=None, vat_country="NL")
    return rec


async def _status(schema: str, uid: str, station: str) -> str:
    pool = AsyncConnectionPool(_dsn_in(schema), min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    try:
        rec = (await IdTokenStore(pool).lookup([uid], station_id=station))[uid]  # a fresh cache each time
        return rec.status if rec else "Unknown"
    finally:
        await pool.close()


async def test_a_fleet_budget_and_allowed_stations_are_enforced_and_reported(app, schema) -> None:  # noqa: ANN001
    transport = httpx.ASGITransport(app, client=(f"10.9.{uuid.uuid4().int % 250}.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=60) as c:
        _, mgr = await _account(c, "fleet_manager")
        drv_email, drv = await _account(c, "driver")
        _, other_mgr = await _account(c, "fleet_manager")
        r = await c.post("/api/fleets", headers=mgr, json={"name": "Vans", "company": "ACME BV", "currency": "EUR",
                                                           "time_zone": "UTC"})
        assert r.status_code == 201, r.text
        fid = r.json()["fleet_id"]
        # bad input is a clear 422, and nothing changes
        r = await c.put(f"/api/fleets/{fid}/policy", headers=mgr, json={"monthly_budget": "1.5e3"})
        assert r.status_code == 422
        r = await c.post(f"/api/fleets/{fid}/members", headers=mgr, json={"email": drv_email, "cost_centre": "CC-7"})
        assert r.status_code == 200, r.text
        driver_id = r.json()["members"][0]["account_id"]
        r = await c.put(f"/api/fleets/{fid}/policy", headers=mgr,
                        json={"monthly_budget": "5.00", "allowed_station_ids": ["ST-OK"]})
        assert r.status_code == 200 and r.json()["policy"]["monthly_budget"] == "5.00", r.text
        # another manager cannot see or touch it; a driver is no manager
        assert (await c.get(f"/api/fleets/{fid}", headers=other_mgr)).status_code == 404
        assert (await c.get(f"/api/fleets/{fid}", headers=drv)).status_code == 403
        uid = f"F{uuid.uuid4().hex[:9]}".upper()
        r = await c.post("/api/me/id-tokens", headers=drv, json={"type": "RFID", "uid": uid})
        assert r.status_code == 201, r.text

        assert await _status(schema, uid, "ST-OK") == "Accepted"
        assert await _status(schema, uid, "ST-ELSEWHERE") == "Blocked"

        p = EventProducer()
        try:
            start = datetime.now(timezone.utc) + timedelta(seconds=1)
            first = _cdr_priced(driver_id, start)
            p.publish_sync("billing", driver_id, "CdrPriced", first)

            async def spent_now() -> str:
                got = (await c.get(f"/api/fleets/{fid}", headers=mgr)).json()
                return got["members"][0]["spent_this_month"]
            for _ in range(150):
                if await spent_now() == "4.40":
                    break
                await asyncio.sleep(0.1)
            assert await spent_now() == "4.40"
            assert await _status(schema, uid, "ST-OK") == "Accepted"  # 4.40 < 5.00
            p.publish_sync("billing", driver_id, "CdrPriced", _cdr_priced(driver_id, start))
            for _ in range(150):
                if await spent_now() == "8.80":
                    break
                await asyncio.sleep(0.1)
            assert await _status(schema, uid, "ST-OK") == "Blocked"  # over budget: refused everywhere
        finally:
            p.close()

        end = datetime.fromisoformat(json.loads(first["cdr"])["end_date_time"].replace("Z", "+00:00"))
        month = end.strftime("%Y-%m")
        r = await c.get(f"/api/fleets/{fid}/report", headers=mgr, params={"month": month})
        assert r.status_code == 200, r.text
        rep = r.json()
        assert [(d["cost_centre"], d["account_id"], d["sessions"], d["incl_vat"]) for d in rep["drivers"]] == [
            ("CC-7", driver_id, 2, "8.80")]
        r = await c.get(f"/api/fleets/{fid}/report", headers=mgr, params={"month": month, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        lines = r.text.splitlines()
        assert lines[0].startswith("invoice_number,period,cost_centre,driver_account")
        total = [ln for ln in lines if ",TOTAL," in ln]
        assert len(total) == 1 and ",8.80," in total[0], r.text
        assert any(",CC-7," in ln and first["session_id"] in ln for ln in lines)
        assert (await c.get(f"/api/fleets/{fid}/report", headers=mgr, params={"month": "2026-13"})).status_code == 422

        # removing the driver lifts the fleet's policy from the driver's token
        r = await c.delete(f"/api/fleets/{fid}/members/{driver_id}", headers=mgr)
        assert r.status_code == 204
        assert await _status(schema, uid, "ST-ELSEWHERE") == "Accepted"
