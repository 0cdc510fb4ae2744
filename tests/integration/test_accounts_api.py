"""Accounts and auth through the real log and stores: the API app in-process (httpx ASGI transport) against the
stack's Kafka, Postgres and Redis, with a follower thread applying the identity projection from the log into a
schema of this module's own (so nothing else in the suite sees or disturbs these accounts).

What a user would notice: registration answers with the account (or 409 for a taken email, also when two race),
login/refresh/logout behave, a reused refresh token signs the whole login out, a password change signs every
session out, key rotation signs nobody out until the old key retires, each role is refused where it does not
belong, brute force meets 429, and no input produces a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from chargeverse.keyring import load_sync
from chargeverse.settings import get_settings
from chargeverse.tokens import ROLES, issue, unverified_kid
from edges.api import identity as idm
from edges.api.auth import AuthConfig, Argon2Params, api_routes, declared_access
from projections.postgres.identity import IdentityProjection
from projections.replay import replay
from support import events, wait_for

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "projections" / "postgres" / "migrations"
# the DDL of 010_id_tokens.sql's table, for a tree where that migration is not there yet
ID_TOKENS_DDL = """CREATE TABLE IF NOT EXISTS id_tokens (uid text PRIMARY KEY, type text, contract_id text,
    account_id text, status text CHECK (status IN ('Accepted','Blocked','Expired','Invalid')),
    valid_until timestamptz NULL, group_id text NULL, updated_at timestamptz)"""
PASSWORD = "correct horse battery staple"


# ---- the projection follower -----------------------------------------------------------------------------------
class Follower:
    """Applies a projection from the log in a loop (what the Faust projections worker does in production)."""

    def __init__(self, projection: Any) -> None:
        self.projection = projection
        self.running = threading.Event()
        self.running.set()
        self.idle = threading.Event()  # set by the loop while paused: no replay is in flight
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"follow-{projection.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.running.is_set():
                self.idle.set()
            else:
                self.idle.clear()
                try:
                    # batch=1: a consume() returns as soon as one event is there (a bigger batch waits up to
                    # 1 s to fill); a few events per test need no batching
                    replay(self.projection, from_start=False, stall_seconds=10, batch=1)
                except Exception:  # noqa: BLE001 - keep following; the tests notice a stuck projection
                    log.exception("follower: replay failed")
            time.sleep(0.03)

    def pause(self) -> None:
        """Stop applying, and return only once no replay is in flight (one started before the pause could still
        pick up an event published after it)."""
        self.idle.clear()
        self.running.clear()
        assert self.idle.wait(60), "the follower did not pause"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def schema(stack, topics) -> Iterator[str]:  # noqa: ANN001
    name = f"acct_{uuid.uuid4().hex[:8]}"
    dsn = get_settings().postgres_dsn.get_secret_value()
    if not (MIGRATIONS / "010_id_tokens.sql").exists():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
            conn.execute(f"SET search_path = {name}")
            conn.execute(ID_TOKENS_DDL)
    yield name


@pytest.fixture(scope="module")
def follower(schema) -> Iterator[Follower]:  # noqa: ANN001
    proj = IdentityProjection(get_settings().postgres_dsn.get_secret_value(), schema)
    f = Follower(proj)
    yield f
    f.close()
    proj.close()


def _dsn_in(schema: str) -> str:
    dsn = get_settings().postgres_dsn.get_secret_value()
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}%2Cpublic"


@pytest.fixture
async def app(schema, follower):  # noqa: ANN001, ANN201
    """A fresh API app (own Redis prefix for keys, refresh tokens and rate limits) with its lifespan running."""
    from edges.api import accounts, admin, me
    from edges.api.app import create_app

    s = get_settings().model_copy(update={"postgres_dsn": SecretStr(_dsn_in(schema))})
    application = create_app(s)
    present = {getattr(r, "path", None) for r in api_routes(application)}
    for router in (accounts.router, me.router, admin.router):
        if router.routes[0].path not in present:
            application.include_router(router)
    application.state.auth_config = AuthConfig(argon2=Argon2Params(1, 1024, 1),  # fast, for tests only
                                               redis_prefix=f"cvtest:{uuid.uuid4().hex[:8]}",
                                               write_wait_seconds=15.0)
    async with application.router.lifespan_context(application):
        yield application
    application.state.producer = None  # let librdkafka's client go now, not at some later garbage collection


def client(app: Any, ip: str | None = None) -> httpx.AsyncClient:  # noqa: ANN401
    ip = ip or f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, client=(ip, 40000)), base_url="http://api.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff_token(app: Any, role: str, sub: str = "staff") -> str:  # noqa: ANN401
    """What `cv token issue --role R` gives, signed with this app's keyring."""
    s = get_settings()
    ring = load_sync(s.redis_url.get_secret_value(), app.state.auth_config.redis_prefix,
                     s.jwt_secret.get_secret_value())
    return issue(sub, [role], 300, keyring=ring)


def email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


async def register(c: httpx.AsyncClient, address: str, password: str = PASSWORD, **extra: Any) -> dict:  # noqa: ANN401
    r = await c.post("/api/auth/register", json={"email": address, "password": password, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def login(c: httpx.AsyncClient, address: str, password: str = PASSWORD) -> dict:
    r = await c.post("/api/auth/login", json={"email": address, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def signed_up(c: httpx.AsyncClient, **extra: Any) -> tuple[str, dict]:  # noqa: ANN401
    address = email()
    await register(c, address, **extra)
    return address, await login(c, address)


# ---- register, login, refresh, logout ------------------------------------------------------------------------
async def test_register_login_refresh_reuse_and_logout(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        address = email()
        acct = await register(c, address.upper(), display_name="Ada")
        assert acct["email"] == address and acct["roles"] == ["driver"] and acct["display_name"] == "Ada"
        assert acct["account_id"] == idm.account_id_for(address)
        from chargeverse.pnc.emaid import is_valid

        assert is_valid(acct["contract_id"]) and acct["contract_id"].startswith("NLCVE")

        # wrong password and unknown email: one answer, no hint which
        bad = await c.post("/api/auth/login", json={"email": address, "password": "not the password at all"})
        nobody = await c.post("/api/auth/login", json={"email": email(), "password": PASSWORD})
        assert bad.status_code == nobody.status_code == 401 and bad.json() == nobody.json()

        t1 = await login(c, address.title())
        assert t1["token_type"] == "Bearer" and t1["expires_in"] == 900 and t1["roles"] == ["driver"]
        assert unverified_kid(t1["access_token"])
        me = await c.get("/api/me", headers=bearer(t1["access_token"]))
        assert me.status_code == 200 and me.json() == acct

        # rotation: each refresh token works once
        r2 = await c.post("/api/auth/refresh", json={"refresh_token": t1["refresh_token"]})
        assert r2.status_code == 200
        t2 = r2.json()
        assert t2["refresh_token"] != t1["refresh_token"] and t2["account_id"] == acct["account_id"]
        assert (await c.get("/api/me", headers=bearer(t2["access_token"]))).status_code == 200

        # the old one again: reuse -> the whole family is signed out, the current token included
        reused = await c.post("/api/auth/refresh", json={"refresh_token": t1["refresh_token"]})
        assert reused.status_code == 401 and "already used" in reused.json()["detail"]
        dead = await c.post("/api/auth/refresh", json={"refresh_token": t2["refresh_token"]})
        assert dead.status_code == 401 and "signed out" in dead.json()["detail"]

        # logout ends this session only; 'everywhere' ends all of them
        phone, laptop = await login(c, address), await login(c, address)
        assert (await c.post("/api/auth/logout", json={"refresh_token": phone["refresh_token"]})).status_code == 204
        assert (await c.post("/api/auth/refresh", json={"refresh_token": phone["refresh_token"]})).status_code == 401
        laptop2 = (await c.post("/api/auth/refresh", json={"refresh_token": laptop["refresh_token"]})).json()
        tablet = await login(c, address)
        r = await c.post("/api/auth/logout", json={"refresh_token": tablet["refresh_token"], "everywhere": True})
        assert r.status_code == 204
        assert (await c.post("/api/auth/refresh", json={"refresh_token": laptop2["refresh_token"]})).status_code == 401
        # unknown tokens: the same 204, nothing to learn
        r = await c.post("/api/auth/logout", json={"refresh_token": "rt_made-up"})
        assert r.status_code == 204


async def test_the_refresh_store_lets_one_of_two_concurrent_refreshes_win(app) -> None:  # noqa: ANN001
    from edges.api.refresh import Outcome, Policy, RedisRefreshStore, RefreshTokens

    svc = RefreshTokens(RedisRefreshStore(app.state.redis, app.state.auth_config.redis_prefix), Policy())
    now = int(time.time())
    _, token = await svc.start("acct-race", now)
    a, b = await asyncio.gather(svc.rotate(token, now), svc.rotate(token, now))
    assert sorted([a.outcome, b.outcome]) == sorted([Outcome.ROTATED, Outcome.REUSED])
    winner = a if a.outcome is Outcome.ROTATED else b
    assert (await svc.rotate(winner.token, now)).outcome is Outcome.REVOKED
    keys = [k async for k in app.state.redis.scan_iter(f"{app.state.auth_config.redis_prefix}:r*")]
    assert keys and not any(token in k or winner.token in k for k in keys)  # digests only


async def test_password_change_signs_out_every_session_and_only_a_hash_reaches_the_log(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        address, first = await signed_up(c)
        second = await login(c, address)
        h = bearer(first["access_token"])
        new_pw = "a whole new passphrase 42"
        wrong = await c.put("/api/me/password", headers=h, json={"current_password": "nope, not it",
                                                                  "new_password": new_pw})
        assert wrong.status_code == 403
        same = await c.put("/api/me/password", headers=h, json={"current_password": PASSWORD,
                                                                 "new_password": address})
        assert same.status_code == 422
        r = await c.put("/api/me/password", headers=h, json={"current_password": PASSWORD, "new_password": new_pw})
        assert r.status_code == 200, r.text
        fresh = r.json()
        for old in (first, second):
            assert (await c.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"]})).status_code == 401
        assert (await c.post("/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]})).status_code == 200
        assert (await c.post("/api/auth/login", json={"email": address, "password": PASSWORD})).status_code == 401
        await login(c, address, new_pw)

    account_id = idm.account_id_for(address)
    mine = events("identity", lambda t, r: r.get("account_id") == account_id)
    assert [t for t, _ in mine] == ["AccountRegistered", "PasswordChanged"]
    assert all(r["password_hash"].startswith("$argon2id$") for _, r in mine)
    raw = b"".join(v for _, _, _, v in __import__("support").read_topic("identity"))
    assert PASSWORD.encode() not in raw and new_pw.encode() not in raw


async def test_a_taken_email_is_409_even_when_two_registrations_race(app, follower) -> None:  # noqa: ANN001
    async with client(app) as c:
        address = email()
        await register(c, address)
        r = await c.post("/api/auth/register", json={"email": address.upper(), "password": PASSWORD})
        assert r.status_code == 409 and "already exists" in r.json()["detail"]

        # two registrations of one new email, both past the pre-check before either is projected
        racing = email()
        follower.pause()
        try:
            a = asyncio.create_task(c.post("/api/auth/register", json={"email": racing, "password": "first one wins!"}))
            await asyncio.sleep(0.3)
            b = asyncio.create_task(c.post("/api/auth/register", json={"email": racing.upper(),
                                                                        "password": "second one loses"}))
            await asyncio.sleep(0.5)
        finally:
            follower.running.set()
        ra, rb = await a, await b
        assert (ra.status_code, rb.status_code) == (201, 409), (ra.text, rb.text)
        racing_id = idm.account_id_for(racing)
        regs = events("identity", lambda t, r: t == "AccountRegistered" and r["account_id"] == racing_id)
        assert len(regs) == 2  # both are on the log; the projection kept the first
        await login(c, racing, "first one wins!")
        r = await c.post("/api/auth/login", json={"email": racing, "password": "second one loses"})
        assert r.status_code == 401


async def test_slow_projection_answers_202_with_a_place_to_poll(app, follower) -> None:  # noqa: ANN001
    async with client(app) as c:
        address, tokens = await signed_up(c)
        h = bearer(tokens["access_token"])
        app.state.auth_config = replace(app.state.auth_config, write_wait_seconds=0.3)
        follower.pause()
        try:
            r = await c.post("/api/auth/register", json={"email": email(), "password": PASSWORD})
            assert r.status_code == 202 and r.headers["Retry-After"] == "1"
            reg_location = r.headers["Location"]
            assert reg_location.startswith("/api/auth/register/")
            assert (await c.get(reg_location)).status_code == 202
            v = await c.post("/api/me/vehicles", headers=h, json={"make": "Renault", "model": "Zoe", "battery_kwh": 52,
                                                                   "connector_types": ["IEC_62196_T2"]})
            assert v.status_code == 202
            write_location = v.headers["Location"]
            assert (await c.get(write_location, headers=h)).json() == {"status": "pending"}
        finally:
            follower.running.set()

        async def settled(location: str, expect: int, **kw: Any) -> httpx.Response:  # noqa: ANN401
            for _ in range(300):
                resp = await c.get(location, **kw)
                if resp.status_code == expect:
                    return resp
                await asyncio.sleep(0.05)
            raise AssertionError(f"{location} never answered {expect}")

        assert (await settled(reg_location, 201)).json()["roles"] == ["driver"]
        assert (await settled(write_location, 200, headers=h)).json() == {"status": "applied"}
        vehicles = (await c.get("/api/me/vehicles", headers=h)).json()
        assert [x["model"] for x in vehicles] == ["Zoe"]
        assert (await c.get("/api/auth/register/0.1.not-a-receipt")).status_code == 404


async def test_an_unreachable_broker_is_503_with_retry_after_and_nothing_is_registered(app) -> None:  # noqa: ANN001
    from chargeverse.kafka import EventProducer
    from chargeverse.stack import free_port

    working = app.state.producer
    app.state.producer = EventProducer(f"127.0.0.1:{free_port()}", extra={"message.timeout.ms": 500})
    try:
        async with client(app) as c:
            address = email()
            r = await c.post("/api/auth/register", json={"email": address, "password": PASSWORD})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "retry" in r.json()["detail"]
    finally:
        app.state.producer.close()
        app.state.producer = working
    async with client(app) as c:  # nothing reached the log: the same email registers normally now
        await register(c, address)


# ---- profile, vehicles, favourites, payment methods, id tokens -------------------------------------------------
async def test_profile_and_vehicles_reflect_each_write(app, schema) -> None:  # noqa: ANN001
    async with client(app) as c:
        _, tokens = await signed_up(c)
        h = bearer(tokens["access_token"])
        r = await c.patch("/api/me", headers=h, json={"display_name": "Ada L.", "phone": "+31201234567"})
        assert r.status_code == 200 and (r.json()["display_name"], r.json()["phone"]) == ("Ada L.", "+31201234567")
        r = await c.patch("/api/me", headers=h, json={"phone": None, "locale": "nl-NL"})
        assert (r.json()["display_name"], r.json()["phone"], r.json()["locale"]) == ("Ada L.", None, "nl-NL")

        body = {"make": "Kia", "model": "EV6", "battery_kwh": 77.4, "max_ac_kw": 11, "max_dc_kw": 240,
                "connector_types": ["IEC_62196_T2", "IEC_62196_T2_COMBO"], "nickname": "blue"}
        r = await c.post("/api/me/vehicles", headers=h, json=body)
        assert r.status_code == 201, r.text
        v = r.json()
        assert {k: v[k] for k in body} == body and r.headers["Location"] == f"/api/me/vehicles/{v['vehicle_id']}"
        assert (await c.get(r.headers["Location"], headers=h)).json() == v
        assert (await c.get("/api/me/vehicles", headers=h)).json() == [v]

        # charge estimate at a real station (registered through the log, projected into this schema)
        from chargeverse.kafka import EventProducer
        from chargeverse.stations_admin import register as register_station
        from projections.postgres.stations import StationsProjection

        sid = f"ACCT-{uuid.uuid4().hex[:8]}"
        p = EventProducer()
        connectors = [{"connector_id": 1, "standard": "IEC_62196_T2_COMBO", "max_power_kw": 150.0},
                      {"connector_id": 2, "standard": "IEC_62196_T2", "max_power_kw": 22.0},
                      {"connector_id": 3, "standard": "CHADEMO", "max_power_kw": 50.0}]
        await asyncio.to_thread(register_station, p, sid, name="Depot", operator="T", latitude=1.0, longitude=1.0,
                                connectors=connectors)
        p.close()
        stations = StationsProjection(get_settings().postgres_dsn.get_secret_value(), schema)
        try:
            await asyncio.to_thread(replay, stations, from_start=False)
        finally:
            stations.close()
        r = await c.get(f"/api/me/vehicles/{v['vehicle_id']}/charge-estimate", headers=h,
                        params={"station_id": sid, "from_soc": 20, "to_soc": 80})
        assert r.status_code == 200, r.text
        est = {x["connector_id"]: (x["power_kw"], x["minutes"]) for x in r.json()["compatible"]}
        assert est == {1: (150.0, 21), 2: (11.0, 281)}  # CHAdeMO does not fit this car
        assert (await c.get(f"/api/me/vehicles/{v['vehicle_id']}/charge-estimate", headers=h,
                            params={"station_id": "NOPE-1"})).status_code == 404

        # favourites: only real stations, idempotent, removable
        r = await c.post("/api/me/favourites", headers=h, json={"station_id": sid})
        assert r.status_code == 201 and r.json()["name"] == "Depot"
        assert (await c.post("/api/me/favourites", headers=h, json={"station_id": sid})).status_code == 200
        r = await c.post("/api/me/favourites", headers=h, json={"station_id": "NO-SUCH-STATION"})
        assert r.status_code == 404 and "NO-SUCH-STATION" in r.json()["detail"]
        assert [f["station_id"] for f in (await c.get("/api/me/favourites", headers=h)).json()] == [sid]
        assert (await c.delete(f"/api/me/favourites/{sid}", headers=h)).status_code == 204
        assert (await c.delete(f"/api/me/favourites/{sid}", headers=h)).status_code == 404
        assert (await c.get("/api/me/favourites", headers=h)).json() == []

        assert (await c.delete(f"/api/me/vehicles/{v['vehicle_id']}", headers=h)).status_code == 204
        assert (await c.get(f"/api/me/vehicles/{v['vehicle_id']}", headers=h)).status_code == 404
        assert (await c.delete(f"/api/me/vehicles/{v['vehicle_id']}", headers=h)).status_code == 404


async def test_payment_methods_are_references_and_card_numbers_are_refused(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        address, tokens = await signed_up(c)
        h = bearer(tokens["access_token"])
        for body in ({"payment_method_id": "4242 4242 4242 4242"},
                     {"payment_method_id": "pm_1NvHhL2eZvKYlo2C", "label": "card 5555-5555-5555-4444"},
                     {"payment_method_id": "pm_378282246310005"}):
            r = await c.post("/api/me/payment-methods", headers=h, json=body)
            assert r.status_code == 422 and "card number" in r.text
            assert "4242" not in r.text and "5555" not in r.text and "378282" not in r.text
        r = await c.post("/api/me/payment-methods", headers=h, json={"payment_method_id": "pm_1NvHhL2eZvKYlo2C",
                                                                      "label": "work"})
        assert r.status_code == 201 and r.json()["provider"] == "stripe"
        assert [p["payment_method_id"] for p in (await c.get("/api/me/payment-methods", headers=h)).json()] == \
            ["pm_1NvHhL2eZvKYlo2C"]
        assert (await c.delete("/api/me/payment-methods/pm_1NvHhL2eZvKYlo2C", headers=h)).status_code == 204
        assert (await c.get("/api/me/payment-methods", headers=h)).json() == []
    # no card number ever reached the log
    raw = b"".join(v for _, _, _, v in __import__("support").read_topic("identity"))
    assert b"4242424242424242" not in raw and b"4242 4242" not in raw


async def test_id_tokens_feed_the_table_chargers_are_authorised_from(app, schema) -> None:  # noqa: ANN001
    async with client(app) as c:
        _, alice = await signed_up(c)
        _, bob = await signed_up(c)
        ha, hb = bearer(alice["access_token"]), bearer(bob["access_token"])
        uid = uuid.uuid4().hex[:14].upper()
        r = await c.post("/api/me/id-tokens", headers=ha, json={"type": "RFID", "uid": ":".join(
            uid[i:i + 2] for i in range(0, 14, 2)).lower(), "label": "blue card"})
        assert r.status_code == 201, r.text
        tok = r.json()
        assert (tok["uid"], tok["type"], tok["status"], tok["label"]) == (uid, "RFID", "Accepted", "blue card")
        assert (await c.post("/api/me/id-tokens", headers=ha, json={"type": "RFID", "uid": uid})).status_code == 200
        taken = await c.post("/api/me/id-tokens", headers=hb, json={"type": "RFID", "uid": uid})
        assert taken.status_code == 409
        app_tok = await c.post("/api/me/id-tokens", headers=hb, json={"type": "APP_USER"})
        assert app_tok.status_code == 201 and app_tok.json()["uid"].startswith("APP")

        with psycopg.connect(_dsn_in(schema)) as conn:
            def row(u: str) -> tuple:
                return conn.execute("SELECT type, contract_id, account_id, status FROM id_tokens WHERE uid = %s",
                                    (u,)).fetchone()

            assert row(uid) == (None, tok["contract_id"], alice["account_id"], "Accepted")
            assert row(app_tok.json()["uid"])[::3] == ("Central", "Accepted")
            assert (await c.delete(f"/api/me/id-tokens/{uid}", headers=hb)).status_code == 404  # not Bob's
            assert (await c.delete(f"/api/me/id-tokens/{uid}", headers=ha)).status_code == 204
            conn.commit()
            assert row(uid)[3] == "Blocked"
        assert (await c.get(f"/api/me/id-tokens/{uid}", headers=ha)).json()["status"] == "Blocked"
        # blocked is final: it cannot be re-added, by anyone
        assert (await c.post("/api/me/id-tokens", headers=ha, json={"type": "RFID", "uid": uid})).status_code == 409


# ---- keys ----------------------------------------------------------------------------------------------------------
async def test_key_rotation_keeps_old_tokens_valid_until_the_previous_key_retires(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        address, a = await signed_up(c)
        kid1 = unverified_kid(a["access_token"])
        ha = bearer(a["access_token"])
        keys = await c.get("/api/admin/jwt-keys", headers=bearer(staff_token(app, "auditor")))
        assert keys.status_code == 200 and keys.json()["current"] == kid1
        auditor = bearer(staff_token(app, "auditor"))
        assert (await c.post("/api/admin/jwt-keys/rotate", headers=auditor)).status_code == 403

        r = await c.post("/api/admin/jwt-keys/rotate", headers=bearer(staff_token(app, "admin")))
        assert r.status_code == 200
        kid2 = r.json()["current"]
        assert kid2 != kid1 and [k["kid"] for k in r.json()["keys"]] == [kid2, kid1]
        assert r.json()["keys"][1]["verifies"] and r.json()["keys"][1]["retire_at"] > time.time() + 3600
        assert (await c.get("/api/me", headers=ha)).status_code == 200  # signed with the previous key: still fine
        b = await login(c, address)
        assert unverified_kid(b["access_token"]) == kid2

        r = await c.post("/api/admin/jwt-keys/rotate", headers=bearer(staff_token(app, "admin")),
                         json={"retire_previous": True})
        kid3 = r.json()["current"]
        assert [k["kid"] for k in r.json()["keys"]] == [kid3]
        for old in (a, b):
            r = await c.get("/api/me", headers=bearer(old["access_token"]))
            assert r.status_code == 401 and "retired" in r.json()["detail"]
        # refresh tokens are not JWTs: the session survives and gets a token under the new key
        fresh = (await c.post("/api/auth/refresh", json={"refresh_token": b["refresh_token"]})).json()
        assert unverified_kid(fresh["access_token"]) == kid3
        assert (await c.get("/api/me", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_an_operator_created_admin_account_can_rotate_keys_but_has_no_vehicles(app) -> None:  # noqa: ANN001
    from chargeverse.kafka import EventProducer
    from edges.api.accounts import create_account_sync

    address = email()
    p = EventProducer()
    try:
        account_id, _ = await asyncio.to_thread(create_account_sync, p, address, PASSWORD, ["admin"], "Root")
        with pytest.raises(ValueError, match="roles"):
            create_account_sync(p, email(), PASSWORD, ["superuser"])
    finally:
        p.close()
    async with client(app) as c:
        for _ in range(200):  # written outside the API: no read-your-writes wait, so poll the login
            r = await c.post("/api/auth/login", json={"email": address, "password": PASSWORD})
            if r.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 200 and r.json()["roles"] == ["admin"] and r.json()["account_id"] == account_id
        h = bearer(r.json()["access_token"])
        assert (await c.get("/api/me", headers=h)).json()["display_name"] == "Root"
        assert (await c.post("/api/admin/jwt-keys/rotate", headers=h)).status_code == 200
        assert (await c.get("/api/me/vehicles", headers=h)).status_code == 403
        # self-service registration cannot ask for admin
        r = await c.post("/api/auth/register", json={"email": email(), "password": PASSWORD, "role": "admin"})
        assert r.status_code == 422


# ---- every endpoint declares who may call it; every other role is refused --------------------------------------
ACCOUNT = ("driver", "fleet_manager", "admin")
CHARGING = ("driver", "fleet_manager")
V = "0190a0a0-0000-7000-8000-000000000001"
RECEIPT = "0.0.0190a0a0-0000-7000-8000-000000000001"
ENDPOINTS: list[tuple[str, str, tuple[str, ...] | str]] = [
    ("POST", "/api/auth/register", "public"),
    ("GET", f"/api/auth/register/{RECEIPT}", "public"),
    ("POST", "/api/auth/login", "public"),
    ("POST", "/api/auth/refresh", "public"),
    ("POST", "/api/auth/logout", "public"),
    ("GET", "/api/me", ACCOUNT),
    ("PATCH", "/api/me", ACCOUNT),
    ("PUT", "/api/me/password", ACCOUNT),
    ("GET", f"/api/me/writes/{RECEIPT}", ACCOUNT),
    ("GET", "/api/me/vehicles", CHARGING),
    ("POST", "/api/me/vehicles", CHARGING),
    ("GET", f"/api/me/vehicles/{V}", CHARGING),
    ("DELETE", f"/api/me/vehicles/{V}", CHARGING),
    ("GET", f"/api/me/vehicles/{V}/charge-estimate?station_id=CP-1", CHARGING),
    ("GET", "/api/me/favourites", CHARGING),
    ("POST", "/api/me/favourites", CHARGING),
    ("DELETE", "/api/me/favourites/CP-1", CHARGING),
    ("GET", "/api/me/payment-methods", CHARGING),
    ("POST", "/api/me/payment-methods", CHARGING),
    ("DELETE", "/api/me/payment-methods/pm_1NvHhL2eZvKY", CHARGING),
    ("GET", "/api/me/id-tokens", CHARGING),
    ("POST", "/api/me/id-tokens", CHARGING),
    ("GET", "/api/me/id-tokens/DEADBEEF", CHARGING),
    ("DELETE", "/api/me/id-tokens/DEADBEEF", CHARGING),
    ("GET", "/api/admin/jwt-keys", ("admin", "auditor")),
    ("POST", "/api/admin/jwt-keys/rotate", ("admin",)),
    # community moderation, analytics, notifications (edges/api/community.py, analytics.py, notifications.py)
    ("POST", "/api/admin/community/stations/CP-1/reviews/acc-1/hide", ("admin",)),
    ("POST", f"/api/admin/community/stations/CP-1/photos/{V}/hide", ("admin",)),
    ("GET", "/api/admin/analytics", ("admin",)),
    ("GET", "/api/me/notifications", ACCOUNT),
]


def test_the_table_below_covers_every_account_route_and_matches_its_declaration(stack) -> None:  # noqa: ANN001
    from edges.api import accounts, admin, me
    from edges.api.app import create_app

    application = create_app()
    present = {getattr(r, "path", None) for r in api_routes(application)}
    for router in (accounts.router, me.router, admin.router):
        if router.routes[0].path not in present:
            application.include_router(router)
    declared = {}
    for route in api_routes(application):
        for method in route.methods:
            declared[(method, route.path)] = declared_access(route)
    # every /api route of the whole app declares who may call it
    assert [k for k, v in declared.items() if k[1].startswith("/api/") and v is None] == []
    ours = {k: v for k, v in declared.items() if k[1].startswith(("/api/auth", "/api/me", "/api/admin"))}
    table = {}
    for method, path, who in ENDPOINTS:
        template = next(p for (m, p) in ours if m == method and _matches(p, path.split("?")[0]))
        table[(method, template)] = who
    assert table == ours
    documented = application.openapi()["paths"]
    assert {p for _, p in ours} <= set(documented)


def _matches(template: str, path: str) -> bool:
    import re

    return re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) is not None


async def test_every_endpoint_refuses_every_role_it_does_not_admit(app) -> None:  # noqa: ANN001
    tokens = {role: staff_token(app, role, sub=f"role-{role}") for role in ROLES}
    async with client(app) as c:
        for method, path, who in ENDPOINTS:
            for role in (None, *ROLES):
                headers = bearer(tokens[role]) if role else {}
                r = await c.request(method, path, headers=headers, json={} if method in ("POST", "PUT", "PATCH")
                                    else None)
                assert r.status_code < 500, (method, path, role, r.text)
                if who == "public":
                    assert r.status_code not in (401, 403), (method, path, role, r.text)
                elif role is None:
                    assert r.status_code == 401, (method, path, r.text)
                elif role in who:
                    assert r.status_code not in (401, 403), (method, path, role, r.text)
                else:
                    assert r.status_code == 403 and "needs one of the roles" in r.json()["detail"], \
                        (method, path, role, r.text)


# ---- rate limits ----------------------------------------------------------------------------------------------------
async def test_brute_force_meets_429_with_retry_after_per_account_and_per_ip(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        address = email()
        await register(c, address)
    # per account: 10 attempts in 15 minutes, from anywhere
    for i in range(10):
        async with client(app) as c:
            r = await c.post("/api/auth/login", json={"email": address, "password": f"guess number {i}"})
            assert r.status_code == 401
    async with client(app) as c:
        r = await c.post("/api/auth/login", json={"email": address, "password": PASSWORD})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 90
        assert (await c.post("/api/auth/login", json={"email": email(), "password": PASSWORD})).status_code == 401

    # per IP: 20 a minute, whichever accounts
    async with client(app, ip="192.0.2.77") as c:
        codes = [(await c.post("/api/auth/login", json={"email": email(), "password": PASSWORD})).status_code
                 for _ in range(21)]
        assert codes == [401] * 20 + [429]
        r = await c.post("/api/auth/refresh", json={"refresh_token": "rt_x"})  # other actions have their own budget
        assert r.status_code == 401
    async with client(app, ip="192.0.2.78") as c:
        assert (await c.post("/api/auth/login", json={"email": email(), "password": PASSWORD})).status_code == 401

    # registration: 3 attempts per email an hour (here: 1 created, 2 conflicts, then refused)
    async with client(app) as c:
        taken = email()
        codes = [(await c.post("/api/auth/register", json={"email": taken, "password": PASSWORD})).status_code
                 for _ in range(4)]
        assert codes == [201, 409, 409, 429]

    # refresh: 60 a minute per IP (the budget refills one a second, so a slow machine may fit one or two more in
    # before the first refusal: count up to the first 429, not to an exact index)
    async with client(app, ip="192.0.2.79") as c:
        codes = []
        while 429 not in codes and len(codes) < 70:
            codes.append((await c.post("/api/auth/refresh", json={"refresh_token": f"rt_{len(codes)}"})).status_code)
        assert codes[:60] == [401] * 60 and codes[-1] == 429 and set(codes[60:-1]) <= {401}, codes

    # password change: 5 per 15 minutes per account
    async with client(app) as c:
        _, tokens = await signed_up(c)
        h = bearer(tokens["access_token"])
        codes = [(await c.put("/api/me/password", headers=h, json={"current_password": f"wrong guess {i}",
                                                                     "new_password": "a whole new passphrase"})
                  ).status_code for i in range(6)]
        assert codes == [403] * 5 + [429]


async def test_redis_lua_and_the_pure_gcra_agree(app) -> None:  # noqa: ANN001
    import random

    from chargeverse.ratelimit import Limit, RateLimiter, check

    limiter = RateLimiter(app.state.redis, app.state.auth_config.redis_prefix)
    limits = [Limit(5, 10), Limit(3, 60)]
    keys = [limiter.key("test", "ip", "x"), limiter.key("test", "account", "y")]
    rnd = random.Random(7)
    t = 1_700_000_000.0
    tats: list = [None, None]
    for _ in range(80):
        t += rnd.choice([0.0, 0.1, 1.0, 3.0, 7.0, 20.0])
        got = await limiter.hit(list(zip(keys, limits)), now=t)
        want = check(tats, int(t * 1_000_000), limits)
        assert (got.allowed, got.retry_after) == (want.allowed, want.retry_after)
        tats = list(want.tats)
        stored = await limiter.stored(keys)
        assert [s for s in stored if s is not None] == [x for x in tats if x is not None]


# ---- nothing produces a 500 ------------------------------------------------------------------------------------
GARBAGE_BODIES: list[bytes] = [
    b"", b"not json", b"[]", b"null", b"123", b'"a string"', b'{"a":', b"{}", b'{"email": null}',
    b'{"email": ["x"], "password": {"a": 1}}', b'{"battery_kwh": Infinity}', b'{"battery_kwh": NaN}',
    json.dumps({"email": "a\x00b@example.com", "password": "p\x00" * 8, "display_name": "\x00"}).encode(),
    json.dumps({"make": "\x00", "model": "m", "battery_kwh": 1e308, "connector_types": ["\x00"] * 9}).encode(),
    json.dumps({"station_id": "../../etc/passwd"}).encode(), json.dumps({"uid": "\u202e" * 50}).encode(),
    json.dumps({"refresh_token": "x" * 100_000}).encode(), json.dumps({"password": "p" * 2_000_000}).encode(),
    json.dumps({"phone": 31612345678, "locale": True, "display_name": 7}).encode(),
    json.dumps({"type": "RFID", "uid": "DEADBEEF" * 10}).encode(), b'{"retire_previous": "yes"}',
    json.dumps({"payment_method_id": "pm_" + "😀" * 20}).encode(), b"[" * 5000 + b"]" * 5000,
    "{\"email\": \"\udcff\"}".encode("utf-8", "surrogatepass"), b"\xff\xfe\x00garbage",
]
GARBAGE_PATHS = ["/api/me/vehicles/%00", "/api/me/vehicles/" + "a" * 5000, "/api/me/id-tokens/..%2F..%2Fetc",
                 "/api/me/favourites/%FF%FE", "/api/auth/register/%00.%00.%00", "/api/me/writes/9999999.1.x",
                 "/api/me/vehicles/0190a0a0-0000-7000-8000-000000000001/charge-estimate?station_id=%00&from_soc=-5",
                 "/api/me/payment-methods/4242424242424242", "/api/auth/register/99999.999999999999999999.x"]
GARBAGE_AUTH = ["Bearer", "Bearer ", "Bearer " + "x" * 10_000, "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer \x7f",
                "Bearer eyJhbGciOiJub25lIiwia2lkIjoiLi4vLi4vZXRjIn0.eyJzdWIiOiJ4In0."]


async def test_no_input_produces_a_500(app) -> None:  # noqa: ANN001
    async with client(app) as c:
        _, tokens = await signed_up(c)
    driver = bearer(tokens["access_token"])
    admin = bearer(staff_token(app, "admin"))
    async with client(app) as c:
        for method, path, who in ENDPOINTS:
            h = admin if "admin" in path else driver
            # a body is the whole input of these writes: garbage must be refused (rotate's body is optional)
            must_refuse = method in ("POST", "PUT", "PATCH") and not path.endswith("/rotate")
            # GET and DELETE take no body: one garbage body shows it is ignored, not choked on
            bodies = GARBAGE_BODIES if method in ("POST", "PUT", "PATCH") else GARBAGE_BODIES[-2:]
            tries = [(b, "application/json") for b in bodies] + [(b"{}", "text/plain"), (b"{}", "")]
            for body, ctype in tries:
                r = await c.request(method, path, headers={**h, "Content-Type": ctype}, content=body)
                assert 400 <= r.status_code < 500 or (not must_refuse and r.status_code in (200, 202, 204)), \
                    (method, path, body[:80], r.status_code, r.text[:300])
                if r.status_code >= 400:
                    assert r.json().get("detail"), (method, path, body[:80], r.text)
        for path in GARBAGE_PATHS:
            for method in ("GET", "DELETE"):
                r = await c.request(method, path, headers=driver)
                assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        for auth in GARBAGE_AUTH:
            r = await c.get("/api/me", headers={"Authorization": auth})
            assert r.status_code in (401, 403), (auth[:40], r.text)


# ---- the projection: replay gives the same tables --------------------------------------------------------------
def test_replaying_the_identity_log_into_an_empty_schema_gives_the_same_tables(schema, follower) -> None:  # noqa: ANN001,E501
    from confluent_kafka import Consumer, TopicPartition

    from chargeverse.kafka import base_config

    dsn = get_settings().postgres_dsn.get_secret_value()
    live = IdentityProjection(dsn, schema)
    copy = IdentityProjection(dsn, f"acct_rb_{uuid.uuid4().hex[:8]}")
    try:
        consumer = Consumer({**base_config(), "group.id": f"t-{uuid.uuid4().hex[:6]}"})
        try:
            ends = {("identity", p): consumer.get_watermark_offsets(TopicPartition("identity", p), timeout=10)[1]
                    for p in consumer.list_topics("identity", timeout=10).topics["identity"].partitions}
        finally:
            consumer.close()
        wait_for("the follower to reach the end of the log",
                 lambda: all(live.offsets().get(tp, 0) >= end for tp, end in ends.items()))
        stats = replay(copy)
        assert stats.applied == sum(ends.values()) and stats.dead_letters == 0
        assert copy.checksum() == live.checksum(), _diff(schema, copy.schema)
        assert replay(copy).applied == 0 and copy.checksum() == live.checksum()
        copy.reset()
        assert copy.checksum() != live.checksum()
    finally:
        live.close()
        copy.close()


def _diff(a: str, b: str) -> str:
    """What differs between two identity schemas (for a failure message)."""
    out = []
    with psycopg.connect(get_settings().postgres_dsn.get_secret_value()) as conn:
        for table in ("accounts", "vehicles", "favourites", "payment_methods", "account_id_tokens", "id_tokens"):
            for x, y in ((a, b), (b, a)):
                rows = conn.execute(f"SELECT * FROM {x}.{table} EXCEPT SELECT * FROM {y}.{table}").fetchall()
                out.append(f"{table} only in {x}: {rows[:3]}")
    return "\n".join(out)
