"""Two independent OCPI platforms over real HTTP on the test stack: our platform as an eMSP (X) against a second
instance of itself as a CPO (Y), each with its own Postgres schema, platform id and parties.

Through onboarding (admin API), registration (token A -> B -> C), a Locations sync (paged pull of Y's own stations
into X's projections), re-rolls started by either side, and unregistration - checking at each step which
credentials tokens work, and that no token ever reaches the log or a log line.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest

from chargeverse.kafka import EventProducer
from chargeverse.stations_admin import registration
from chargeverse.tokens import issue
from edges.ocpi.context import token_box
from edges.ocpi.credtokens import authorization
from edges.ocpi.local import LocalParty
from projections.postgres.ocpi_fold import loads
from projections.postgres.stations import StationsProjection
from support import read_topic, wait_for

pytestmark = pytest.mark.integration


class Clock:
    """X's clock: real time plus an offset the test moves forward (token expiry without sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@pytest.fixture(scope="module")
def parties(settings, topics):  # noqa: ANN001, ANN201
    import uuid

    u = uuid.uuid4().hex[:8]
    dsn = settings.postgres_dsn.get_secret_value()
    clock = Clock()
    x = LocalParty.make(settings, platform_id=f"x-{u}", schema=f"ocpi_x_{u}", country_code="NL", party_id="EMX",
                        roles="EMSP", name="X mobility", token_grace_seconds=300)
    x.clock = clock
    y = LocalParty.make(settings, platform_id=f"y-{u}", schema=f"ocpi_y_{u}", country_code="NL", party_id="CPY",
                        roles="CPO,EMSP", name="Y charging", token_grace_seconds=0, page_limit=50)
    y.extra_projections = [StationsProjection(dsn, f"ocpi_y_{u}")]
    x.start()
    y.start()
    try:
        yield x, y, clock, u
    finally:
        x.stop()
        y.stop()
        for p in (x, y):
            assert p.follower is None or not p.follower.errors, p.follower.errors


def admin(p: LocalParty) -> httpx.Client:
    return httpx.Client(base_url=f"{p.url}/admin", timeout=60,
                        headers={"Authorization": "Bearer " + issue("test", ["admin"], ttl_seconds=600)})


def their_token(p: LocalParty, partner_id: str) -> str:
    """The token `p` holds to call `partner_id` (opened from p's projection: tests may, the log may not)."""
    with psycopg.connect(p.settings.postgres_dsn.get_secret_value(),
                         options=f"-c search_path={p.settings.ocpi_schema_name},public") as conn:
        sealed = conn.execute("SELECT their_token_sealed FROM ocpi_partners WHERE partner_id = %s",
                              (partner_id,)).fetchone()[0]
    return token_box(p.settings).open(sealed, partner_id)


def works(p: LocalParty, token: str) -> bool:
    """Whether `p` accepts `token` (on its credentials GET); False means HTTP 401 with an OCPI body."""
    r = httpx.get(f"{p.url}/2.2.1/credentials", headers={"Authorization": authorization(token)}, timeout=10)
    if r.status_code == 401:
        assert r.json()["status_code"] == 2001
        return False
    assert r.status_code == 200, r.text
    return True


def _q(p: LocalParty, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(p.settings.postgres_dsn.get_secret_value(),
                         options=f"-c search_path={p.settings.ocpi_schema_name},public") as conn:
        return conn.execute(sql, args).fetchall()


def test_registration_sync_reroll_and_unregistration(parties, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    x, y, clock, u = parties
    seen_tokens: list[str] = []

    # ---- onboarding: Y issues token A for X; X records Y's versions URL and that token ------------------------
    with admin(y) as a:
        r = a.post("/partners", json={"partner_id": "x", "name": "X mobility"})
        assert r.status_code == 201, r.text
        token_a = r.json()["token_a"]
        assert r.json()["our_versions_url"] == f"{y.url}/versions"
        assert a.post("/partners", json={"partner_id": "x", "name": "again"}).status_code == 409
    seen_tokens.append(token_a)
    # token A opens versions and credentials, nothing else
    ha = {"Authorization": authorization(token_a)}
    assert httpx.get(f"{y.url}/versions", headers=ha).json()["data"][0]["version"] == "2.2.1"
    r = httpx.get(f"{y.url}/cpo/2.2.1/locations", headers=ha)
    assert r.status_code == 401 and r.json()["status_code"] == 2001
    with admin(x) as a:
        r = a.post("/partners", json={"partner_id": "y", "name": "Y charging", "versions_url": f"{y.url}/versions",
                                      "token": token_a})
        assert r.status_code == 201 and "token_a" not in r.json()

    # ---- registration, X as the sender of the credentials module -----------------------------------------------
    with admin(x) as a:
        r = a.post("/partners/y/register")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["state"] == "REGISTERED"
    assert {(ro["role"], ro["country_code"], ro["party_id"]) for ro in got["roles"]} == {
        ("CPO", "NL", "CPY"), ("EMSP", "NL", "CPY")}  # one connection, several roles
    assert {(e["identifier"], e["role"]) for e in got["endpoints"]} >= {("locations", "SENDER"),
                                                                          ("tokens", "RECEIVER")}
    with admin(y) as a:
        yx = a.get("/partners/x").json()
    assert yx["state"] == "REGISTERED" and [(ro["role"], ro["party_id"]) for ro in yx["roles"]] == [("EMSP", "EMX")]
    assert {e["identifier"] for e in yx["endpoints"]} >= {"locations", "sessions", "cdrs", "tariffs"}
    c1, b1 = their_token(x, "y"), their_token(y, "x")  # C: Y issued, X uses; B: X issued, Y uses
    seen_tokens += [c1, b1]
    assert works(y, c1) and works(x, b1)
    assert not works(y, token_a)  # Y's grace is 0: token A ended with the registration
    # POST again with C: already registered
    r = httpx.post(f"{y.url}/2.2.1/credentials", headers={"Authorization": authorization(c1)}, json={})
    assert r.status_code == 405

    # ---- a Locations sync: Y's own stations, pulled page by page into X ----------------------------------------
    producer = EventProducer()
    ids = [f"Y{u}-{i}" for i in range(5)]
    for i, sid in enumerate(ids):
        rec, _ = registration(sid, name=f"Y station {i}", operator="Y charging", latitude=52.0 + i / 100,
                              longitude=4.0 + i / 100, address=f"Straat {i}")
        producer.publish_sync("stations", sid, "StationRegistered", rec)
    producer.close()
    wait_for("Y's stations projection", lambda: len(_q(y, "SELECT 1 FROM stations WHERE station_id = ANY(%s)",
                                                        ids)) == len(ids))
    with admin(x) as a:
        r = a.post("/partners/y/pull/locations", params={"limit": "2"})
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["invalid"] == 0 and stats["objects"] == stats["total"] >= 5 and stats["pages"] >= 3
    # ids are CiStrings: keyed upper-cased, the document keeps the partner's spelling
    rows = {loads(doc)["id"]: doc for (doc,) in _q(x, "SELECT doc FROM ocpi_locations WHERE partner_id = 'y' AND "
                                                   "id = ANY(%s)", [i.upper() for i in ids])}
    assert set(rows) == set(ids)
    served = httpx.get(f"{y.url}/cpo/2.2.1/locations/{ids[3]}", headers={"Authorization": authorization(c1)})
    assert loads(rows[ids[3]]) == loads(served.text)["data"]
    assert loads(rows[ids[3]])["coordinates"] == {"latitude": "52.030000", "longitude": "4.030000"}
    point = _q(x, "SELECT ST_Y(location::geometry), ST_X(location::geometry) FROM ocpi_locations "
                  "WHERE partner_id = 'y' AND id = %s", ids[3].upper())[0]
    assert point == pytest.approx((52.03, 4.03))
    # an incremental pull from a later date_from brings nothing new
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with admin(x) as a:
        assert a.post("/partners/y/pull/locations", params={"date_from": later}).json()["objects"] == 0

    # ---- re-roll started by X: Y's grace is 0, X's is 300 s ---------------------------------------------------
    with admin(x) as a:
        assert a.post("/partners/y/rotate").status_code == 200
    c2, b2 = their_token(x, "y"), their_token(y, "x")
    seen_tokens += [c2, b2]
    assert c2 != c1 and b2 != b1
    assert works(y, c2) and not works(y, c1)  # Y: the new token at once, the old one gone (grace 0)
    assert works(x, b2) and works(x, b1)  # X: both during the grace period ...
    clock.offset = timedelta(seconds=301)
    assert works(x, b2) and not works(x, b1)  # ... and only the new one after it
    clock.offset = timedelta(0)

    # ---- re-roll started by Y ----------------------------------------------------------------------------------
    with admin(y) as a:
        assert a.post("/partners/x/rotate").status_code == 200
    c3, b3 = their_token(x, "y"), their_token(y, "x")
    seen_tokens += [c3, b3]
    assert works(x, b3) and works(x, b2)  # X issued b3 in answer to Y's PUT; b2 is in its grace
    assert works(y, c3) and not works(y, c2)
    # X keeps pulling with what it holds now
    with admin(x) as a:
        assert a.post("/partners/y/pull/locations", params={"date_from": later}).status_code == 200

    # ---- unregistration by X: both sides stop accepting --------------------------------------------------------
    with admin(x) as a:
        assert a.delete("/partners/y").status_code == 200
        assert a.get("/partners/y").json()["state"] == "DELETED"
    with admin(y) as a:
        assert a.get("/partners/x").json()["state"] == "DELETED"
    assert not works(y, c3) and not works(x, b3)

    # ---- never a token on the log, never in a log line ---------------------------------------------------------
    log_text = "\n".join(rec.getMessage() for rec in caplog.records)
    values = [v for _, _, _, v in read_topic("ocpi.inbound")]
    for t in seen_tokens:
        assert t not in log_text
        assert not any(t.encode() in v for v in values)
