"""From a charger's transaction to money, all real: an OCPP 1.6 ChargePoint charges a driver's RFID card at a
station with a tariff -> `ocpp.frames` -> sessions processor -> `sessions` -> billing processor (tariff engine)
-> `billing` (priced CDR) + `ledger` (balanced postings); the driver sees the final cost in the API.  A session
nobody can be billed for goes to the review queue with its reason, never lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.simulator import ChargerSpec, boot, connect
from chargeverse.stations_admin import register
from chargeverse.tariffs_admin import set_tariff
from chargeverse.tokens import issue
from support import events, wait_for, TARIFFS_SINCE

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh, VAT 10 %


def _station(unique: str) -> ChargerSpec:
    sid = f"PAY-{unique}"
    p = EventProducer()
    secret = register(p, sid, name="Paid", operator="TestNet", latitude=45.0, longitude=7.0)
    set_tariff(p, sid, TARIFF, time_zone="Europe/Rome", set_by="test", valid_from=TARIFFS_SINCE)
    p.close()
    return ChargerSpec(sid, secret, 45.0, 7.0, "Paid")


async def _connect(platform, spec):  # noqa: ANN001, ANN202
    for _ in range(150):
        try:
            return await connect(platform.ocpp, spec)
        except InvalidStatus:
            await asyncio.sleep(0.2)
    raise AssertionError("charger credentials never reached the OCPP edge")


async def _driver_with_card(api: str, uid: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        email = f"d-{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post("/api/auth/register", json={"email": email, "password": "correct horse battery staple"})
        assert r.status_code in (201, 202), r.text
        tok = (await c.post("/api/auth/login", json={"email": email, "password": "correct horse battery staple"}))
        assert tok.status_code == 200, tok.text
        h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        r = await c.post("/api/me/id-tokens", headers=h, json={"type": "RFID", "uid": uid})
        assert r.status_code == 201, r.text
        return h


async def _charge(cp, id_tag: str, wh: int) -> int:  # noqa: ANN001
    started = await cp.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=1_000_000,
                                                  timestamp="2026-11-27T10:00:00Z"))
    tx = started.transaction_id
    await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
        "timestamp": "2026-11-27T10:30:00Z", "sampledValue": [
            {"value": str(1_000_000 + wh // 2), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]}]))
    await cp.call(call.StopTransaction(meter_stop=1_000_000 + wh, timestamp="2026-11-27T11:00:00Z",
                                       transaction_id=tx, reason="Local", id_tag=id_tag))
    return started


async def test_a_drivers_session_is_priced_posted_and_shown_with_its_final_cost(platform, unique) -> None:  # noqa: ANN001
    uid = f"C{unique[-7:]}".upper()
    headers = await _driver_with_card(platform.api, uid)
    spec = _station(unique)
    wait_for("the tariff projected", lambda: httpx.get(
        f"{platform.api}/api/operator/stations/{spec.station_id}/tariff",
        headers={"Authorization": f"Bearer {issue('op', ['operator'])}"}).status_code == 200)
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        started = await _charge(cp, uid, 10_000)
        assert started.id_tag_info["status"] == "Accepted"
    finally:
        task.cancel()
        await ws.close()

    def billed():  # noqa: ANN202
        items = httpx.get(f"{platform.api}/api/sessions/history", headers=headers).json()["items"]
        mine = [s for s in items if s["charge_point_id"] == spec.station_id]
        return mine[0] if mine and mine[0]["cost"] else None

    s = wait_for("the session billed", billed, timeout=60)
    assert s["status"] == "STOPPED" and s["energy_kwh"] == 10.0
    assert s["cost"] == {"currency": "EUR", "excl_vat": "2.50", "incl_vat": "2.75", "final": True}

    sets = events("ledger", lambda t, r: t == "LedgerPostingSet" and r["session_id"] == s["session_id"])
    assert len(sets) == 1
    entries = sets[0][1]["entries"]
    debits = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "DEBIT")
    credits = sum(Decimal(e["amount"]) for e in entries if e["direction"] == "CREDIT")
    assert debits == credits == Decimal("2.75")
    # the auditor's view: the session's postings in the ledger projection, and the whole ledger verifies
    auditor = {"Authorization": f"Bearer {issue('auditor-1', ['auditor'])}"}
    posted = wait_for("the postings in the ledger", lambda: (lambda r: r.json() if r.status_code == 200 and
                                                             r.json()["posting_sets"] else None)(
        httpx.get(f"{platform.api}/api/audit/sessions/{s['session_id']}/postings", headers=auditor)))
    assert len(posted["posting_sets"]) == 1
    assert httpx.get(f"{platform.api}/api/audit/sessions/{s['session_id']}/postings",
                     headers=headers).status_code == 403  # drivers are no auditors
    import subprocess
    import sys

    verify = subprocess.run([sys.executable, "-m", "chargeverse.cli", "ledger", "verify"], capture_output=True,
                            text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # operators can refund part of it (through the payments worker); never more than it cost
    op = {"Authorization": f"Bearer {issue('op', ['operator'])}"}
    url = f"{platform.api}/api/operator/billing/sessions/{s['session_id']}/refund"
    r = httpx.post(url, headers=op, json={"amount": "1.00", "reason": "slow charging"})
    assert r.status_code == 202, r.text
    assert events("billing", lambda t, rec: t == "RefundRequested" and rec["event_id"] == r.json()["request_id"])
    assert httpx.post(url, headers=op, json={"amount": "9.99", "reason": "too much"}).status_code == 422
    assert httpx.post(url, headers=headers, json={"amount": "1.00", "reason": "self-service"}).status_code == 403
    assert httpx.post(f"{platform.api}/api/operator/billing/sessions/NOPE/refund", headers=op,
                      json={"amount": "1.00", "reason": "unknown"}).status_code == 404
    # another driver cannot see it
    other = await _driver_with_card(platform.api, f"D{unique[-7:]}".upper())
    assert httpx.get(f"{platform.api}/api/sessions/{s['session_id']}", headers=other).status_code == 404


async def test_a_session_nobody_can_pay_for_goes_to_review_never_to_the_ledger(platform, unique) -> None:  # noqa: ANN001
    spec = _station(f"{unique}-r")
    ws, cp, task = await _connect(platform, spec)
    try:
        await boot(cp, spec)
        started = await _charge(cp, "UNKNOWN-CARD", 2_000)
        assert started.id_tag_info["status"] == "Invalid"
    finally:
        task.cancel()
        await ws.close()
    op = {"Authorization": f"Bearer {issue('op', ['operator'])}"}

    def queued():  # noqa: ANN202
        r = httpx.get(f"{platform.api}/api/operator/billing/reviews", headers=op).json()
        return [x for x in r if x["payload"] and spec.station_id in x["payload"]] or None

    review = wait_for("the review entry", queued, timeout=60)[0]
    assert {r["code"] for r in review["reasons"]} == {"NO_ACCOUNT"}
    assert json.loads(review["payload"])["session"]["energy_wh"] == 2000.0
    assert not events("ledger", lambda t, r: t == "LedgerPostingSet" and r["session_id"] == review["session_id"])
