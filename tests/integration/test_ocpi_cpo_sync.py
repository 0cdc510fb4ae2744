"""Our platform as a CPO (Y) pushing to a second instance of itself as an eMSP (X), over real HTTP on the test
stack, everything through the log:

Y's own station, its tariff, a session of one of X's drivers and its CDR become OcpiPushRequested events
(streams/ocpi_push) that Y's push worker PUTs/POSTs to X; X keeps them (objects projection, raw Locations in
Mongo), its directory processor (streams/ocpi_directory) turns the Location into station events and the Session
into a live roamed session, and X's app search finds the roamed station.  Then X's server goes down: Y's pushes
fail, X's lane is blocked and Y's committed offset stays at the first undelivered push; X comes back and the
missed pushes are re-sent from the log, in order.  Finally X pulls the same Sessions, CDRs and Tariffs from Y's
sender interfaces.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from chargeverse.events import envelope
from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import registration
from chargeverse.tariffs_admin import set_tariff
from chargeverse.tokens import issue
from edges.ocpi.credtokens import authorization
from edges.ocpi.local import LocalParty
from edges.ocpi.push_worker import PushWorker
from projections.mongo_ocpi import OcpiLocationsMongoProjection
from projections.postgres.billing import BillingProjection
from projections.postgres.ocpi_roamed_sessions import RoamedSessionsProjection
from projections.postgres.sessions import SessionsProjection
from projections.postgres.station_tariffs import StationTariffsProjection
from projections.postgres.stations import StationsProjection
from streams.ocpi_directory.fold import Policy as DirectoryPolicy
from streams.ocpi_directory.processor import build as build_directory
from streams.ocpi_push.fold import Policy as PushPolicy
from streams.ocpi_push.processor import build as build_push
from edges.ocpi.context import token_box
from support import wait_for, TARIFFS_SINCE

pytestmark = pytest.mark.integration


def admin(p: LocalParty) -> httpx.Client:
    return httpx.Client(base_url=f"{p.url}/admin", timeout=60,
                        headers={"Authorization": "Bearer " + issue("test", ["admin"], ttl_seconds=600)})


def their_token(p: LocalParty, partner_id: str) -> str:
    """The token `p` holds to call `partner_id` (opened from p's projection: tests may, the log may not)."""
    sealed = _q(p.settings.postgres_dsn.get_secret_value(), p.settings.ocpi_schema_name,
                "SELECT their_token_sealed FROM ocpi_partners WHERE partner_id = %s", partner_id)[0][0]
    return token_box(p.settings).open(sealed, partner_id)


def _q(dsn: str, schema: str, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(dsn, options=f"-c search_path={schema},public") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def world(settings, topics):  # noqa: ANN001, ANN201
    u = uuid.uuid4().hex[:8]
    dsn = settings.postgres_dsn.get_secret_value()
    xs, ys = f"ocpi_cx_{u}", f"ocpi_cy_{u}"
    x = LocalParty.make(settings, platform_id=f"cx-{u}", schema=xs, country_code="NL", party_id="EMX",
                        roles="EMSP", name="X mobility")
    y = LocalParty.make(settings, platform_id=f"cy-{u}", schema=ys, country_code="NL", party_id="CPY",
                        roles="CPO", name="Y charging", page_limit=50, outbound_retries=1, outbound_backoff=0.05,
                        outbound_backoff_cap=0.1, breaker_failures=2, breaker_reset_seconds=0.5, http_timeout=5)
    mongo = OcpiLocationsMongoProjection(settings.mongo_url.get_secret_value(), settings.mongo_db, f"cx{u}_",
                                         platform_id=x.settings.ocpi_platform_id)
    xp = x.settings.ocpi_platform_id
    x.extra_projections = [StationsProjection(dsn, xs), RoamedSessionsProjection(dsn, xs, xp),
                           build_directory(dsn, xs, policy=DirectoryPolicy(platform_id=xp)), mongo]
    y.extra_projections = [StationsProjection(dsn, ys), SessionsProjection(dsn, ys), BillingProjection(dsn, ys),
                           StationTariffsProjection(dsn, ys),
                           build_push(dsn, ys, ocpi_schema=ys, policy=PushPolicy(
                               platform_id=y.settings.ocpi_platform_id, country_code="NL", party_id="CPY"))]
    x.start()
    y.start()
    worker = PushWorker(y.settings).start()
    try:
        yield x, y, worker, mongo, u
    finally:
        worker.stop()
        x.stop()
        y.stop()
        for p in (x, y):
            assert p.follower is None or not p.follower.errors, p.follower.errors
        assert not worker.errors, worker.errors


def _register(x: LocalParty, y: LocalParty) -> None:
    with admin(y) as a:
        token_a = a.post("/partners", json={"partner_id": "x", "name": "X mobility"}).json()["token_a"]
    with admin(x) as a:
        assert a.post("/partners", json={"partner_id": "y", "name": "Y charging",
                                         "versions_url": f"{y.url}/versions", "token": token_a}).status_code == 201
        r = a.post("/partners/y/register")
        assert r.status_code == 200, r.text
    with admin(y) as a:
        eps = {(e["identifier"], e["role"]) for e in a.get("/partners/x").json()["endpoints"]}
    assert {("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"),
            ("tariffs", "RECEIVER")} <= eps
    # and X sees Y's new CPO senders
    with admin(x) as a:
        eps = {(e["identifier"], e["role"]) for e in a.get("/partners/y").json()["endpoints"]}
    assert {("sessions", "SENDER"), ("cdrs", "SENDER"), ("tariffs", "SENDER"), ("hubclientinfo", "RECEIVER")} <= eps


def _api_search(settings, schema: str, near: str) -> list[dict]:  # noqa: ANN001
    """X's app: the driver API on X's schema, station search near a point."""
    from fastapi.testclient import TestClient

    from edges.api.app import create_app

    dsn = settings.postgres_dsn.get_secret_value()
    sep = "&" if "?" in dsn else "?"
    xsettings = settings.model_copy(update={"postgres_dsn": SecretStr(
        f"{dsn}{sep}options={quote(f'-c search_path={schema},public')}")})
    with TestClient(create_app(xsettings)) as c:
        r = c.get("/api/stations", params={"near": near, "radius": 1000},
                  headers={"Authorization": f"Bearer {issue('driver-x', ['driver'])}"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_pushes_to_an_emsp_directory_search_and_recovery_after_an_outage(world, settings) -> None:  # noqa: ANN001
    x, y, worker, mongo, u = world
    dsn = settings.postgres_dsn.get_secret_value()
    xs, ys = x.settings.ocpi_schema_name, y.settings.ocpi_schema_name
    _register(x, y)

    # X gives Y one of its drivers' tokens (X -> Y Tokens receiver, CPO role)
    uid = f"TOK{u}".upper()
    token = {"country_code": "NL", "party_id": "EMX", "uid": uid, "type": "RFID", "contract_id": f"NL-EMX-{u}",
             "issuer": "X mobility", "valid": True, "whitelist": "ALWAYS", "last_updated": "2026-01-01T00:00:00Z"}
    c = their_token(x, "y")
    r = httpx.put(f"{y.url}/cpo/2.2.1/tokens/NL/EMX/{uid}", json=token,
                  headers={"Authorization": authorization(c), "OCPI-from-country-code": "NL",
                           "OCPI-from-party-id": "EMX", "OCPI-to-country-code": "NL", "OCPI-to-party-id": "CPY"})
    assert r.status_code == 200, r.text

    # ---- Y's own station, online with one connector Available, and its tariff --------------------------------
    sid = f"Y{u}-1"
    lat, lon = -45.0 - int(u[:4], 16) / 1e6, 170.0  # a lonely spot of the Southern Ocean
    p = EventProducer()
    rec, _ = registration(sid, name="Y depot", operator="Y charging", latitude=lat, longitude=lon,
                          address="Kade 1", connectors=[{"connector_id": 1, "standard": "IEC_62196_T2_COMBO",
                                                         "max_power_kw": 150.0}])
    p.publish_sync("stations", sid, "StationRegistered", rec)
    for etype, fields in (("StationConnectionChanged", {"online": True, "edge_instance": "y-edge"}),
                          ("ConnectorStatusChanged", {"connector_id": 1, "status": "Available",
                                                      "error_code": "NoError"})):
        ev = envelope(source="test", correlation_id=sid)
        ev.update(station_id=sid, **fields)
        p.publish_sync("stations", sid, etype, ev)
    tariff = {"country_code": "NL", "party_id": "CPY", "id": f"T{u}", "currency": "EUR",
              "elements": [{"price_components": [{"type": "ENERGY", "price": 0.35, "step_size": 1}]}],
              "last_updated": "2026-01-01T00:00:00Z"}
    set_tariff(p, sid, tariff, time_zone="Europe/Amsterdam", valid_from=TARIFFS_SINCE)

    roamed = f"roamed:NL:CPY:{sid.upper()}"

    def connector_status() -> str | None:
        rows = _q(dsn, xs, "SELECT status FROM connectors WHERE station_id = %s AND connector_id = 1", roamed)
        return rows[0][0] if rows else None

    wait_for("X's directory shows Y's station Available", lambda: connector_status() == "Available", 20)
    # (on this shared test stack X's stations projection also reads Y's own station's events: X would not)
    items = {i["station_id"]: i for i in _api_search(settings, xs, f"{lat},{lon}")}
    assert roamed in items
    st = items[roamed]
    assert (st["name"], st["operator"], st["online"]) == ("Y depot", "Y charging", True)
    assert [(cn["standard"], cn["max_power_kw"], cn["status"]) for cn in st["connectors"]] == [
        ("IEC_62196_T2_COMBO", 150.0, "Available")]
    assert _q(dsn, xs, "SELECT own FROM stations WHERE station_id = %s", roamed) == [(False,)]
    wait_for("X has Y's tariff", lambda: _q(dsn, xs, "SELECT doc FROM ocpi_tariffs WHERE partner_id = 'y' AND "
                                                     "id = %s", f"T{u}".upper()), 20)
    raw = mongo.document("y", "NL", "CPY", sid)
    assert raw is not None and json.loads(raw["raw"])["id"] == sid and raw["doc"]["evses"][0]["status"] == "AVAILABLE"

    # ---- a session of X's driver at Y's station, live at X -------------------------------------------------
    sess = f"S{u}"
    base = dict(session_id=sess, charge_point_id=sid, transaction_id="1", ocpp_version="ocpp1.6")
    started = datetime.now(timezone.utc)
    ev = envelope(source="test", correlation_id=sess)
    ev.update(**base, evse_id=1, connector_id=1, id_token=uid, started_at=started, meter_start_wh=0.0, raw="[]")
    p.publish_sync("sessions", sess, "SessionStarted", ev)
    rsid = f"roamed:NL:CPY:{sess}"

    def roamed_session() -> tuple | None:
        rows = _q(dsn, xs, "SELECT status, energy_wh, id_token, charge_point_id FROM sessions WHERE session_id = %s",
                  rsid)
        return rows[0] if rows else None

    wait_for("the roamed session is live at X", lambda: roamed_session() is not None, 20)
    assert roamed_session() == ("ACTIVE", 0.0, uid, roamed)

    # ---- X goes down: Y's next pushes fail and are held on the log -----------------------------------------
    x.stop_server()
    sent_before = len(worker.sent)
    ev = envelope(source="test", correlation_id=sid)
    ev.update(station_id=sid, connector_id=1, status="Charging", error_code="NoError")
    p.publish_sync("stations", sid, "ConnectorStatusChanged", ev)
    ev = envelope(source="test", correlation_id=sess)
    ev.update(**{k: v for k, v in base.items() if k != "ocpp_version"}, at=datetime.now(timezone.utc), energy_wh=7500.0, power_w=50000.0, measurands="[]", raw="[]")
    p.publish_sync("sessions", sess, "SessionMeterSample", ev)
    wait_for("Y blocks X", lambda: "x" in worker.blocked, 20)
    (tp, first_missed), = worker.blocked["x"].items()
    wait_for("Y's committed offset holds at the first missed push",
             lambda: worker.committed.get(tp) == first_missed, 10)
    assert connector_status() == "Available"  # X missed it

    # ---- X comes back: the missed pushes are re-sent from the log, in order ---------------------------------
    x.start_server()
    wait_for("the missed status push arrives", lambda: connector_status() == "Charging", 20)
    wait_for("the missed session push arrives", lambda: (roamed_session() or (None, 0))[1] == 7500.0, 20)
    resent = [s for s in worker.sent[sent_before:] if s[0] == "x"]
    assert sorted(m for _, m, _, _ in resent[:2]) == ["locations", "sessions"]
    assert resent[0][3] == first_missed and resent[0][3] < resent[1][3]  # from the first missed one, in log order
    wait_for("Y commits past them", lambda: worker.committed.get(tp, 0) > resent[1][3], 10)
    seen = worker.committed[tp]
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config

    reader = Consumer({**base_config(), "group.id": worker.group})  # where a restarted worker would resume
    try:
        assert reader.committed([TopicPartition(*tp)], timeout=10)[0].offset >= seen
    finally:
        reader.close()
    assert "x" not in worker.blocked and not worker.parked

    # ---- the session ends, its CDR is priced (as billing would, for a partner token) and posted to X ----------
    stopped = datetime.now(timezone.utc)
    ev = envelope(source="test", correlation_id=sess)
    ev.update(**base, started_at=started, stopped_at=stopped, energy_wh=9000.0, reason="Local",
              baseline_inferred=False, raw="[]")
    p.publish_sync("sessions", sess, "SessionStopped", ev)
    cdr = json.loads((Path(__file__).resolve().parents[3] / "shared" / "data" / "ocpi" / "examples" /
                      "cdr_example.json").read_text())
    cdr.update(country_code="NL", party_id="CPY", id=f"C{u}", session_id=sess)
    cdr["cdr_token"].update(uid=uid, country_code="NL", party_id="EMX")
    priced = envelope(source="test", correlation_id=sess)
    priced.update(session_id=sess, account_id="partner:x", fleet_id=None, cost_centre=None, origin="OWN",
                  partner_country_code=None, partner_party_id=None, cdr_id=f"C{u}", cdr=json.dumps(cdr),
                  currency="EUR", tariff_id=None, total_cost_excl_vat="4.00", total_cost_incl_vat=None,
                  cost_parts=[], total_energy_kwh="9", total_time_hours="1", total_parking_time_hours=None,
                  credit=False, credit_reference_id=None, vat_country="NL")
    p.publish_sync("billing", "partner:x", "CdrPriced", priced)
    p.close()
    wait_for("the roamed session is stopped at X", lambda: (roamed_session() or ("",))[0] == "STOPPED", 20)
    assert roamed_session()[1] == 9000.0
    wait_for("X has the CDR", lambda: _q(dsn, xs, "SELECT doc FROM ocpi_cdrs WHERE partner_id = 'y' AND id = %s",
                                         f"C{u}".upper()), 20)

    # ---- replay: X's roamed sessions and raw Locations rebuild from the log into identical copies ------------
    from projections.replay import replay

    live_sessions = next(pr for pr in x.extra_projections if isinstance(pr, RoamedSessionsProjection))
    rebuilt = [(live_sessions, RoamedSessionsProjection(dsn, f"{xs}_rb", x.settings.ocpi_platform_id)),
               (mongo, OcpiLocationsMongoProjection(settings.mongo_url.get_secret_value(), settings.mongo_db,
                                                    f"cx{u}rb_", platform_id=x.settings.ocpi_platform_id))]
    for live, fresh in rebuilt:
        assert replay(fresh).applied > 0
        wait_for(f"{fresh.name} rebuilt identical", lambda: fresh.checksum() == live.checksum(), 10)
        fresh.close()

    # ---- the same objects from Y's sender interfaces (X pulls) ---------------------------------------------
    wait_for("Y's projections have the session, CDR and tariff", lambda: _q(
        dsn, ys, "SELECT 1 FROM sessions s, cdrs c, station_tariffs t WHERE s.session_id = %s AND c.session_id = %s "
                 "AND t.tariff_id = %s", sess, sess, f"T{u}"), 20)
    h = {"Authorization": authorization(c)}
    got = httpx.get(f"{y.url}/cpo/2.2.1/sessions", headers=h, params={"limit": 10}).json()["data"]
    assert [(s["id"], s["status"], s["kwh"], s["cdr_token"]["uid"]) for s in got] == [(sess, "COMPLETED", 9.0, uid)]
    got = httpx.get(f"{y.url}/cpo/2.2.1/cdrs", headers=h).json()["data"]
    assert [d["id"] for d in got] == [f"C{u}"]
    r = httpx.get(f"{y.url}/cpo/2.2.1/tariffs", headers=h, params={"limit": 1})
    assert r.status_code == 200 and r.headers["X-Limit"] == "50"
    ids, nxt = [t["id"] for t in r.json()["data"]], r.headers.get("Link")
    while nxt:
        r = httpx.get(nxt.split(";")[0].strip("<>"), headers=h)
        ids += [t["id"] for t in r.json()["data"]]
        nxt = r.headers.get("Link")
    assert f"T{u}" in ids and len(ids) == int(r.headers["X-Total-Count"])
    with admin(x) as a:
        for module in ("sessions", "cdrs", "tariffs"):
            stats = a.post(f"/partners/y/pull/{module}").json()
            assert stats["invalid"] == 0 and stats["objects"] >= 1, (module, stats)


def test_hub_client_info_both_interfaces(world) -> None:  # noqa: ANN001
    x, y, _, _, _ = world
    if not _q(x.settings.postgres_dsn.get_secret_value(), x.settings.ocpi_schema_name,
              "SELECT 1 FROM ocpi_partners WHERE partner_id = 'y' AND state = 'REGISTERED'"):
        _register(x, y)  # when run alone
    c = their_token(x, "y")
    h = {"Authorization": authorization(c)}
    info = {"party_id": "EMX", "country_code": "NL", "role": "EMSP", "status": "CONNECTED",
            "last_updated": "2026-01-01T00:00:00Z"}
    r = httpx.put(f"{y.url}/2.2.1/hubclientinfo/NL/EMX", json=info, headers=h)
    assert r.status_code == 200, r.text
    assert "OCPI-from-party-id" not in r.headers  # a configuration module: no routing headers
    got = httpx.get(f"{y.url}/2.2.1/hubclientinfo/NL/EMX", headers=h)
    assert got.status_code == 200 and got.json()["data"] == info
    # not a hub: only its own parties; bad input refused with 2001 and nothing applied
    assert httpx.put(f"{y.url}/2.2.1/hubclientinfo/DE/ABC", json={**info, "party_id": "ABC",
                                                                  "country_code": "DE"}, headers=h).status_code == 404
    bad = httpx.put(f"{y.url}/2.2.1/hubclientinfo/NL/EMX", json={**info, "status": "MAYBE"}, headers=h)
    assert bad.status_code == 200 and bad.json()["status_code"] == 2001
    assert httpx.get(f"{y.url}/2.2.1/hubclientinfo/NL/EMX", headers=h).json()["data"]["status"] == "CONNECTED"
    # the sender: the parties connected to Y
    lst = httpx.get(f"{y.url}/2.2.1/hubclientinfo", headers=h)
    assert lst.status_code == 200
    assert {"party_id": "EMX", "country_code": "NL", "role": "EMSP", "status": "CONNECTED"}.items() <= \
        lst.json()["data"][0].items()
