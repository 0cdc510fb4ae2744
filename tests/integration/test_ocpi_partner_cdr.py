"""A roaming partner's driver charges at one of our stations, all real: a partner eMSP (a second OCPI party, over
real HTTP) registers with our platform and pushes its driver's Token to our Tokens receiver; an OCPP 1.6 charger
of ours charges with that token -> `ocpp.frames` -> sessions processor -> billing processor (our tariff, the
partner as payer) -> `billing` (CdrPriced) + `ledger` (receivable from the partner) -> OCPI push processor ->
`ocpi.outbound` -> push worker -> POST to the partner's CDRs receiver.  The partner is down when the session ends:
the CDR is re-sent from the log once it is back.  The partner then finds the same CDR in our CDRs sender.

Our platform here is the test platform (`platform` fixture: OCPP edge, workers with every processor and
projection, in the public schema) plus its OCPI edge and push worker in this process, as `cv up` runs them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from chargeverse.kafka import EventProducer
from chargeverse.simulator import ChargerSpec, boot, connect
from chargeverse.stations_admin import register
from chargeverse.tariffs_admin import set_tariff
from chargeverse.tokens import issue
from edges.ocpi.context import token_box
from edges.ocpi.credtokens import authorization
from edges.ocpi.local import LocalParty
from edges.ocpi.push_worker import PushWorker
from support import events, wait_for, TARIFFS_SINCE

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples"
TARIFF = json.loads((EXAMPLES / "tariff_8_simple_025kwh.json").read_text())  # 0.25 EUR/kWh excl., VAT 10 %


def _q(dsn: str, schema: str, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(dsn, options=f"-c search_path={schema},public") as conn:
        return conn.execute(sql, args).fetchall()


async def _charge(url: str, spec: ChargerSpec, uid: str, wh: int, before_stop) -> None:  # noqa: ANN001
    for _ in range(150):
        try:
            ws, cp, task = await connect(url, spec)
            break
        except InvalidStatus:
            await asyncio.sleep(0.2)
    else:
        raise AssertionError("charger credentials never reached the OCPP edge")
    try:
        await boot(cp, spec)
        # the partner's token is accepted at our charger (the eMSP pushed it with whitelist ALWAYS)
        auth = await cp.call(call.Authorize(id_tag=uid.lower()))
        assert auth.id_tag_info["status"] == "Accepted", auth
        started = await cp.call(call.StartTransaction(connector_id=1, id_tag=uid, meter_start=500_000,
                                                      timestamp="2026-11-27T10:00:00Z"))
        assert started.id_tag_info["status"] == "Accepted", started
        tx = started.transaction_id
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
            "timestamp": "2026-11-27T10:30:00Z", "sampledValue": [
                {"value": str(500_000 + wh // 2), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "20000", "measurand": "Power.Active.Import", "unit": "W"}]}]))
        await asyncio.to_thread(before_stop)
        await cp.call(call.StopTransaction(meter_stop=500_000 + wh, timestamp="2026-11-27T11:00:00Z",
                                           transaction_id=tx, reason="Local", id_tag=uid))
    finally:
        task.cancel()
        await ws.close()


async def test_a_partners_driver_charges_here_the_partner_gets_the_cdr_and_owes_us_its_total(
        platform, settings, unique) -> None:  # noqa: ANN001
    dsn = settings.postgres_dsn.get_secret_value()
    admin = {"Authorization": "Bearer " + issue("test", ["admin"], ttl_seconds=600)}
    auditor = {"Authorization": "Bearer " + issue("auditor-p", ["auditor"], ttl_seconds=600)}
    u = unique[:8]
    emsp_party = "E" + uuid.uuid4().hex[:2].upper()  # the ledger account is per party: one of its own
    partner_id = f"x{u}"
    # our OCPI edge: the platform's OCPI settings (projections run in the platform's workers, not here)
    ours = LocalParty.make(settings, platform_id=settings.ocpi_platform_id, schema=settings.ocpi_schema_name,
                           country_code=settings.ocpi_country_code, party_id=settings.ocpi_party_id,
                           roles="CPO,EMSP", name="chargeverse", outbound_retries=1, outbound_backoff=0.05,
                           outbound_backoff_cap=0.1, breaker_failures=2, breaker_reset_seconds=0.5, http_timeout=5)
    x = LocalParty.make(settings, platform_id=f"px-{u}", schema=f"ocpi_px_{u}", country_code="NL",
                        party_id=emsp_party, roles="EMSP", name="X mobility")
    ours.start_server()
    x.start()
    worker = PushWorker(ours.settings).start()
    try:
        # ---- X registers with us (token A -> B -> C) and gives us its driver's token ----------------------------
        with httpx.Client(base_url=f"{ours.url}/admin", headers=admin, timeout=60) as a:
            r = a.post("/partners", json={"partner_id": partner_id, "name": "X mobility"})
            assert r.status_code == 201, r.text
            token_a = r.json()["token_a"]
        with httpx.Client(base_url=f"{x.url}/admin", headers=admin, timeout=60) as a:
            assert a.post("/partners", json={"partner_id": "cv", "name": "chargeverse", "token": token_a,
                                             "versions_url": f"{ours.url}/versions"}).status_code == 201
            r = a.post("/partners/cv/register")
            assert r.status_code == 200, r.text
        sealed = _q(dsn, x.settings.ocpi_schema_name,
                    "SELECT their_token_sealed FROM ocpi_partners WHERE partner_id = 'cv'")[0][0]
        auth = {"Authorization": authorization(token_box(x.settings).open(sealed, "cv"))}
        uid = f"PX{u}".upper()
        contract = f"NL-{emsp_party}-C{u[:6]}".upper()
        token = {"country_code": "NL", "party_id": emsp_party, "uid": uid, "type": "RFID", "contract_id": contract,
                 "issuer": "X mobility", "valid": True, "whitelist": "ALWAYS", "last_updated": "2026-01-01T00:00:00Z"}
        r = httpx.put(f"{ours.url}/cpo/2.2.1/tokens/NL/{emsp_party}/{uid}", json=token, headers=auth, timeout=30)
        assert r.status_code == 200 and r.json()["status_code"] == 1000, r.text
        wait_for("our tokens projection has X's token", lambda: _q(
            dsn, settings.ocpi_schema_name, "SELECT 1 FROM ocpi_tokens WHERE partner_id = %s AND id = %s",
            partner_id, uid), 20)

        # ---- our station with its tariff ----------------------------------------------------------------------
        sid = f"PCDR-{u}"
        p = EventProducer()
        secret = register(p, sid, name="Harbour hub", operator="chargeverse", latitude=51.9, longitude=4.48,
                          address="Kade 7, Rotterdam", connectors=[{"connector_id": 1, "standard":
                                                                    "IEC_62196_T2_COMBO", "max_power_kw": 50.0}])
        set_tariff(p, sid, TARIFF, time_zone="Europe/Amsterdam", set_by="test", valid_from=TARIFFS_SINCE)
        p.close()
        wait_for("the station and its tariff projected", lambda: _q(
            dsn, "public", "SELECT 1 FROM stations s, station_tariffs t WHERE s.station_id = %s "
                           "AND t.station_id = %s", sid, sid), 30)

        # ---- X's driver charges 10 kWh; X is down when the session ends -------------------------------------
        def x_goes_down() -> None:
            wait_for("X has the live session", lambda: _q(
                dsn, x.settings.ocpi_schema_name, "SELECT 1 FROM ocpi_sessions WHERE partner_id = 'cv'"), 30)
            x.stop_server()

        spec = ChargerSpec(sid, secret, 51.9, 4.48, "Harbour hub", connectors=1)
        await _charge(platform.ocpp, spec, uid, 10_000, x_goes_down)
        wait_for("our push worker holds X's pushes", lambda: partner_id in worker.blocked, 60)

        def priced() -> dict | None:
            got = events("billing", lambda t, rec: t == "CdrPriced" and rec["account_id"] == f"emsp:NL-{emsp_party}")
            return got[0][1] if got else None

        rec = wait_for("billing priced the session for X", priced, 60)
        assert (rec["origin"], rec["partner_country_code"], rec["partner_party_id"]) == ("OWN", "NL", emsp_party)
        session_id = rec["session_id"]
        assert not events("billing", lambda t, r: t == "BillingReview" and r.get("session_id") == session_id)

        # ---- X is back: the CDR it missed arrives from the log, with our tariff's total -------------------------
        x.start_server()

        def x_cdr() -> dict | None:
            rows = _q(dsn, x.settings.ocpi_schema_name, "SELECT doc FROM ocpi_cdrs WHERE partner_id = 'cv'")
            return json.loads(rows[0][0]) if rows else None

        cdr = wait_for("X received our CDR", x_cdr, 60)
        assert (cdr["country_code"], cdr["party_id"]) == (settings.ocpi_country_code, settings.ocpi_party_id)
        assert cdr["cdr_token"] == {"country_code": "NL", "party_id": emsp_party, "uid": uid, "type": "RFID",
                                    "contract_id": contract}
        assert (Decimal(str(cdr["total_energy"])), Decimal(str(cdr["total_cost"]["excl_vat"])),
                Decimal(str(cdr["total_cost"]["incl_vat"]))) == (Decimal("10"), Decimal("2.50"), Decimal("2.75"))
        loc = cdr["cdr_location"]
        assert (loc["id"], loc["address"], loc["connector_standard"], loc["evse_uid"]) == (
            sid, "Kade 7, Rotterdam", "IEC_62196_T2_COMBO", f"{sid}-1")
        assert [t["id"] for t in cdr["tariffs"]] == [TARIFF["id"]]
        sent = wait_for("the push worker recorded the delivery", lambda: [
            s for s in worker.sent if s[0] == partner_id and s[1] == "cdrs"], 10)
        assert len(sent) == 1 and not worker.parked

        # ---- our ledger: X owes us the gross; the partner finds the CDR in our sender too --------------------
        def receivable() -> list | None:
            r = httpx.get(f"{platform.api}/api/audit/accounts/emsp:NL-{emsp_party}:receivable/balance",
                          headers=auditor)
            return r.json()["balances"] if r.status_code == 200 else None

        balances = wait_for("the receivable from X in the ledger", receivable, 60)
        assert len(balances) == 1 and balances[0]["currency"] == "EUR"
        assert Decimal(str(balances[0]["balance"])) == Decimal("2.75"), balances
        got = httpx.get(f"{ours.url}/cpo/2.2.1/cdrs", headers=auth, params={"limit": 10}, timeout=30)
        assert got.status_code == 200, got.text
        assert [(d["id"], d["total_cost"]) for d in got.json()["data"]] == [(cdr["id"], cdr["total_cost"])]
        # leave the shared platform as we found it: X is no partner of ours any more (no pushes queue up for it)
        r = httpx.delete(f"{ours.url}/admin/partners/{partner_id}", headers=admin, timeout=60)
        assert r.status_code == 200, r.text
    finally:
        worker.stop()
        x.stop()
        ours.stop()
    assert not worker.errors, worker.errors
