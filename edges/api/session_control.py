"""Drivers start and stop charging from the app: `POST /api/sessions/start`, `PUT /api/sessions/{id}/stop`.

The API never talks to a charger or a partner.  At one of our stations (stations.own) it publishes an
`OcppCommandRequested` (RemoteStartTransaction for OCPP 1.6, RequestStartTransaction for 2.0.1) on
`ocpp.commands` carrying the driver's app id token, and answers 202 with a place to poll
(`/api/sessions/start-requests/{command_id}`): the command's outcome from the `pg.ocpp_commands` projection, then
the session once the charger has started it (`SESSION_OF_START`: at that charger and connector, with that id token,
started since the request and not stopped before it), whose detail is `GET /api/sessions/{id}`.  A start that did
not happen says why (`start_detail`: the charger's answer, or offline / timeout / not sent).  At a roamed station
it publishes an `OcpiCommandRequested` START_SESSION on `ocpi.outbound` (keyed by the partner); the OCPI commands
sender that POSTs it to the partner is not built yet, so such a start answers 202 FORWARDED and nothing more happens
until it is.

The call depends on the version the charger speaks, which no projection holds: the version the OCPP edge holding
its socket wrote beside the charger's command route (edges/ocpp/dispatch.py, `cv:ocpp:route-version:`) is used;
for a charger not connected now, the version of its latest session, else 1.6 (such a start ends OFFLINE anyway).
A wrong choice is refused by the edge (REFUSED / WrongVersion, never sent) and shows in the poll.

One active session per connector and per token ("starting twice is a clear 409, not two sessions"):
1. the sessions projection: an ACTIVE session at the connector, or with one of the driver's tokens, is a 409;
2. a short Redis lock (SET NX EX `LOCK_SECONDS`) per connector and per token, taken before publishing, so two
   concurrent starts cannot both pass step 1 while neither session exists yet; the loser gets 409.
The window that remains: the lock expires after `LOCK_SECONDS`; if by then the charger has not started the
transaction (the driver has not plugged in yet: chargers wait up to their ConnectionTimeOut) the projection
does not show it, and a second start can be published.  The charger itself still refuses a second transaction
on an occupied connector; for the token, two different chargers could each start one, and the second would show
as a second ACTIVE session (the edge's Authorize does not yet refuse a token already in a transaction, OCPP 1.6
ConcurrentTx).  The lock is released early when the command fails (poll) and when the driver stops.
"""

from __future__ import annotations

import asyncio

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chargeverse.events import envelope, uuid7
from chargeverse.ocpp_commands import V16, V201, CommandInvalid, validate
from chargeverse.topics import OCPI_OUTBOUND, OCPP_COMMANDS
from edges.api import identity as idm
from edges.api.auth import require
from edges.api.runtime import SOURCE, GuardedRoute, correlation_id, producer, publish_and_wait
from edges.ocpp.authorization import fleet_refusal, fleet_rules
from edges.ocpp.dispatch import ROUTE_VERSION_PREFIX

router = APIRouter(prefix="/api/sessions", tags=["sessions"], route_class=GuardedRoute)
DRIVERS = ("driver", "fleet_manager")
STAFF = ("operator", "admin")
LOCK_SECONDS = 120
COMMAND_TIMEOUT_S = 30
LOCK_PREFIX = "cv:session-start:"


# ---- pure parts ------------------------------------------------------------------------------------------------
def start_command(version: str, uid: str, connector_id: int, remote_start_id: int) -> tuple[str, dict[str, Any]]:
    """The OCPP action and payload that start a charge for token `uid` at `connector_id` (2.0.1: the EVSE)."""
    if version == V201:
        return "RequestStartTransaction", {"idToken": {"idToken": uid, "type": "Central"},
                                           "evseId": connector_id, "remoteStartId": remote_start_id}
    return "RemoteStartTransaction", {"idTag": uid, "connectorId": connector_id}


def stop_command(version: str | None, transaction_id: str) -> tuple[str, dict[str, Any]]:
    """The OCPP action and payload that stop transaction `transaction_id` (1.6 ids are integers)."""
    if version == V201:
        return "RequestStopTransaction", {"transactionId": transaction_id}
    return "RemoteStopTransaction", {"transactionId": int(transaction_id)}


def lock_keys(station_id: str, connector_id: int, uid: str) -> tuple[str, str]:
    return f"{LOCK_PREFIX}connector:{station_id}:{connector_id}", f"{LOCK_PREFIX}token:{uid}"


def start_status(outcome: str | None, result: Any, session_id: str | None) -> str:
    """PENDING (no answer yet), STARTED (the session exists), ACCEPTED (charger accepted, waiting for the car),
    REJECTED (charger said no), FAILED (offline, timeout, refused, expired)."""
    if session_id is not None:
        return "STARTED"
    if outcome is None:
        return "PENDING"
    if outcome == "RESULT":
        return "ACCEPTED" if isinstance(result, dict) and result.get("status") == "Accepted" else "REJECTED"
    return "FAILED"


def start_detail(outcome: str | None, result: Any, error_code: str | None, error: str | None) -> str | None:
    """Why a start did not happen, in words the driver's app can show: the charger's own answer when it refused
    (2.0.1 adds a reason code), else the edge's outcome and its description (OFFLINE, TIMEOUT, REFUSED, ...)."""
    if outcome is None:
        return None
    if outcome == "RESULT":
        if not isinstance(result, dict) or result.get("status") == "Accepted":
            return None
        info = result.get("statusInfo") if isinstance(result.get("statusInfo"), dict) else {}
        why = " - ".join(str(x) for x in (info.get("reasonCode"), info.get("additionalInfo")) if x)
        return f"the charger answered {result.get('status')!r}" + (f": {why}" if why else "")
    what = {"OFFLINE": "the charger is offline", "TIMEOUT": "the charger did not answer",
            "ERROR": "the charger answered with an error", "REFUSED": "the command was not sent",
            "EXPIRED": "the command expired before it reached the charger"}.get(outcome, outcome)
    more = ": ".join(x for x in (error_code, error) if x)
    return f"{what} ({more})" if more else what


# ---- models ----------------------------------------------------------------------------------------------------
class StartIn(BaseModel):
    station_id: str = Field(..., min_length=1, max_length=48)
    connector_id: int = Field(..., ge=1, le=1000, description="OCPP 1.6 connector id; 2.0.1: the EVSE id")
    evse_uid: str | None = Field(None, max_length=36, description="roamed stations: the partner's EVSE uid")


class StartRequest(BaseModel):
    command_id: str
    station_id: str
    status: str
    id_token: str
    session_id: str | None = None
    session: str | None = Field(None, description="where the session is, once started")
    detail: str | None = None


#: chargers stamp their transactions with their own clocks: a session that started up to this long before the
#: request (by the charger's clock) can still be the one the request started
START_SKEW = timedelta(minutes=10)
#: the session a start request started: at that charger and EVSE/connector, with the driver's token, started
#: (charger's clock, give or take START_SKEW) after the request, and not stopped before it.  The last condition
#: keeps a driver's previous session there (stopped before the request, or the start would have been a 409)
#: from being taken for the new one when the charger rejects or never starts the new one.
SESSION_OF_START = ("SELECT session_id FROM sessions WHERE charge_point_id = %(cp)s AND id_token = %(uid)s AND "
                    "(evse_id = %(evse)s OR evse_id IS NULL) AND started_at >= %(since)s AND "
                    "(stopped_at IS NULL OR stopped_at >= %(asked)s) ORDER BY started_at DESC LIMIT 1")


# ---- helpers ---------------------------------------------------------------------------------------------------
async def _rows(request: Request, q: str, params: Any) -> list[tuple[Any, ...]]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(q, params)
        return await cur.fetchall()


async def _app_token(request: Request, account_id: str) -> str:
    """The driver's accepted app token, created through the identity flow when there is none."""
    got = await _rows(request, "SELECT a.uid FROM account_id_tokens a JOIN id_tokens t ON t.uid = a.uid AND "
                               "t.account_id = a.account_id WHERE a.account_id = %s AND a.status = 'Accepted' AND "
                               "a.token_type = 'APP_USER' ORDER BY a.issued_at, a.uid LIMIT 1", (account_id,))
    if got:
        return str(got[0][0])
    acc = await _rows(request, "SELECT contract_id FROM accounts WHERE account_id = %s", (account_id,))
    if not acc:
        raise HTTPException(404, "no account for this token (tokens from `cv token issue` have none)")
    uid = idm.new_app_token_uid()
    rec = idm.id_token_issued(account_id=account_id, uid=uid, token_type="APP_USER", contract_id=acc[0][0],
                              label="app", valid_until=None, source=SOURCE, correlation_id=correlation_id(request))
    w = await publish_and_wait(request, idm.id_token_key(uid), "IdTokenIssued", rec)
    if not w.applied:
        raise HTTPException(503, "your app token is being created; retry in a moment", headers={"Retry-After": "1"})
    return uid


#: how long to wait for the route of a charger that may have just connected (its edge writes routes in batches,
#: edges/ocpp/dispatch.py ROUTE_FLUSH_S) before falling back to its latest session
VERSION_GRACE_S = 1.0


async def _version(request: Request, station_id: str) -> str:
    """The OCPP version to address the charger in: what it speaks on its socket now, else in its latest session."""
    redis = request.app.state.redis
    deadline = asyncio.get_running_loop().time() + VERSION_GRACE_S
    while True:
        live = await redis.get(ROUTE_VERSION_PREFIX + station_id)
        if live in (V16, V201):
            return str(live)
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.1)
    seen = await _rows(request, "SELECT ocpp_version FROM sessions WHERE charge_point_id = %s AND ocpp_version IS "
                                "NOT NULL ORDER BY started_at DESC NULLS LAST LIMIT 1", (station_id,))
    return str(seen[0][0]) if seen and seen[0][0] in (V16, V201) else V16


async def _lock(request: Request, keys: tuple[str, ...], holder: str) -> bool:
    r = request.app.state.redis
    taken: list[str] = []
    for k in keys:
        if not await r.set(k, holder, nx=True, ex=LOCK_SECONDS):
            for t in taken:
                await r.delete(t)
            return False
        taken.append(k)
    return True


async def _unlock(request: Request, keys: tuple[str, ...], holder: str) -> None:
    r = request.app.state.redis
    for k in keys:
        if await r.get(k) == holder:
            await r.delete(k)


# ---- start -----------------------------------------------------------------------------------------------------
@router.post("/start", status_code=202, response_model=StartRequest, summary="Start charging at a connector",
             responses={403: {"description": "your fleet's policy does not allow it"},
                        404: {"description": "no such station"},
                        409: {"description": "the connector or your token is already in a session"}})
async def start(body: StartIn, request: Request, who: dict = Depends(require(*DRIVERS))) -> Any:
    account_id = str(who["sub"])
    st = await _rows(request, "SELECT own, operator FROM stations WHERE station_id = %s", (body.station_id,))
    if not st:
        raise HTTPException(404, f"no station {body.station_id!r}")
    own, network = bool(st[0][0]), st[0][1]
    async with request.app.state.pg.connection() as conn:
        why = fleet_refusal((await fleet_rules(conn, [account_id])).get(account_id, []), body.station_id, network)
    if why:
        raise HTTPException(403, f"not allowed by your fleet's policy: {why}")
    busy = await _rows(request, "SELECT session_id, charge_point_id = %s AND connector_id = %s FROM sessions "
                                "WHERE status = 'ACTIVE' AND ((charge_point_id = %s AND connector_id = %s) OR "
                                "id_token IN (SELECT uid FROM account_id_tokens WHERE account_id = %s)) LIMIT 1",
                       (body.station_id, body.connector_id, body.station_id, body.connector_id, account_id))
    if busy:
        what = "the connector is" if busy[0][1] else "you are"
        raise HTTPException(409, f"{what} already charging (session {busy[0][0]})" if not busy[0][1]
                            else f"{what} already in use")
    uid = await _app_token(request, account_id)  # after the refusals: a refused start creates nothing
    command_id = uuid7()
    keys = lock_keys(body.station_id, body.connector_id, uid)
    if not await _lock(request, keys, command_id):
        raise HTTPException(409, "a start for this connector or your token is already under way")
    try:
        if own:
            return await _start_own(request, body, account_id, uid, command_id)
        return await _start_roamed(request, body, account_id, uid, command_id)
    except BaseException:
        await _unlock(request, keys, command_id)
        raise


async def _start_own(request: Request, body: StartIn, account_id: str, uid: str, command_id: str) -> Any:
    version = await _version(request, body.station_id)
    action, payload = start_command(version, uid, body.connector_id, int(command_id[-8:], 16) & 0x7FFFFFFF)
    try:
        validate(action, payload, version)
    except CommandInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    now = datetime.now(timezone.utc)
    rec = envelope(source=SOURCE, correlation_id=command_id)
    rec.update(command_id=command_id, charge_point_id=body.station_id, action=action, payload=json.dumps(payload),
               ocpp_version=version, requested_by=account_id,
               expires_at=now + timedelta(seconds=COMMAND_TIMEOUT_S + 60), timeout_ms=COMMAND_TIMEOUT_S * 1000)
    await producer(request).publish(OCPP_COMMANDS.name, body.station_id, "OcppCommandRequested", rec)
    loc = f"/api/sessions/start-requests/{command_id}"
    out = StartRequest(command_id=command_id, station_id=body.station_id, status="PENDING", id_token=uid)
    return JSONResponse(out.model_dump(), status_code=202, headers={"Location": loc, "Retry-After": "1"})


async def _start_roamed(request: Request, body: StartIn, account_id: str, uid: str, command_id: str) -> Any:
    loc = await _rows(request, "SELECT partner_id, country_code, party_id, id FROM ocpi_locations WHERE id = upper(%s) "
                               "ORDER BY last_updated DESC LIMIT 1", (body.station_id,))
    if not loc:
        raise HTTPException(409, f"station {body.station_id!r} is roamed but no partner publishes it")
    partner_id, country, party, location_id = loc[0]
    acc = await _rows(request, "SELECT contract_id FROM accounts WHERE account_id = %s", (account_id,))
    contract = acc[0][0] if acc else None
    ocpi = {"response_url": None, "token": {"country_code": country, "party_id": party, "uid": uid, "type": "APP_USER",
                                            "contract_id": contract}, "location_id": location_id,
            "evse_uid": body.evse_uid, "connector_id": None if body.evse_uid is None else str(body.connector_id),
            "authorization_reference": command_id}
    rec = envelope(source=SOURCE, correlation_id=command_id)
    rec.update(command_id=command_id, partner_id=partner_id, command="START_SESSION", location_id=location_id,
               evse_uid=body.evse_uid, connector_id=ocpi["connector_id"], session_id=None, token_uid=uid,
               contract_id=contract, requested_by=account_id, payload=json.dumps(ocpi))
    await producer(request).publish(OCPI_OUTBOUND.name, partner_id, "OcpiCommandRequested", rec)
    out = StartRequest(command_id=command_id, station_id=body.station_id, status="FORWARDED", id_token=uid,
                       detail="sent towards the partner; the session shows in your history once the partner "
                              "reports it")
    return JSONResponse(out.model_dump(), status_code=202)


@router.get("/start-requests/{command_id}", response_model=StartRequest, summary="How a start request is going")
async def start_request(command_id: str, request: Request, who: dict = Depends(require(*DRIVERS, *STAFF))) -> Any:
    staff = bool(set(who.get("roles", [])) & set(STAFF))
    rows = await _rows(request, "SELECT charge_point_id, payload, requested_at, outcome, result, error_description, "
                                "requested_by, error_code FROM ocpp_commands WHERE command_id = %s", (command_id,))
    if not rows or (not staff and rows[0][6] != str(who["sub"])):
        return JSONResponse({"status": "PENDING", "command_id": command_id}, status_code=202,
                            headers={"Retry-After": "1"})  # not projected yet (or not yours: same answer)
    cp, payload, requested_at, outcome, result, error, _, error_code = rows[0]
    p = json.loads(payload) if isinstance(payload, str) else payload
    uid = p.get("idTag") or (p.get("idToken") or {}).get("idToken")
    connector = p.get("connectorId") or p.get("evseId")
    found = await _rows(request, SESSION_OF_START, {"cp": cp, "uid": uid, "evse": connector,
                                                    "since": requested_at - START_SKEW, "asked": requested_at})
    sid = found[0][0] if found else None
    status = start_status(outcome, result, sid)
    if status in ("REJECTED", "FAILED"):
        await _unlock(request, lock_keys(cp, int(connector or 0), uid), command_id)
    return StartRequest(command_id=command_id, station_id=cp, status=status, id_token=uid, session_id=sid,
                        session=None if sid is None else f"/api/sessions/{sid}",
                        detail=None if sid is not None else start_detail(outcome, result, error_code, error))


# ---- stop ------------------------------------------------------------------------------------------------------
@router.put("/{session_id}/stop", status_code=202, summary="Stop one of your sessions",
            responses={404: {"description": "no such session (or not yours)"},
                       409: {"description": "the session is not active"}})
async def stop(session_id: str, request: Request, who: dict = Depends(require(*DRIVERS, *STAFF))) -> Any:
    staff = bool(set(who.get("roles", [])) & set(STAFF))
    mine = "" if staff else " AND id_token IN (SELECT uid FROM account_id_tokens WHERE account_id = %(sub)s)"
    rows = await _rows(request, "SELECT charge_point_id, transaction_id, ocpp_version, status, connector_id, id_token "
                                f"FROM sessions WHERE session_id = %(id)s{mine}",
                       {"id": session_id, "sub": str(who["sub"])})
    if not rows:
        raise HTTPException(404, f"no session {session_id!r}")
    cp, tx, version, status, connector, uid = rows[0]
    if status != "ACTIVE":
        raise HTTPException(409, f"session {session_id} is {status}, not ACTIVE")
    try:
        action, payload = stop_command(version, str(tx))
        validate(action, payload, version or V16)
    except (ValueError, CommandInvalid) as exc:
        raise HTTPException(409, f"this session cannot be stopped remotely: {exc}") from exc
    command_id = uuid7()
    now = datetime.now(timezone.utc)
    rec = envelope(source=SOURCE, correlation_id=session_id)
    rec.update(command_id=command_id, charge_point_id=cp, action=action, payload=json.dumps(payload),
               ocpp_version=version, requested_by=str(who["sub"]),
               expires_at=now + timedelta(seconds=COMMAND_TIMEOUT_S + 60), timeout_ms=COMMAND_TIMEOUT_S * 1000)
    await producer(request).publish(OCPP_COMMANDS.name, cp, "OcppCommandRequested", rec)
    r = request.app.state.redis
    for k in lock_keys(cp, int(connector or 0), str(uid)):
        await r.delete(k)
    return JSONResponse({"status": "STOP_REQUESTED", "command_id": command_id, "session": f"/api/sessions/{session_id}"},
                        status_code=202, headers={"Location": f"/api/sessions/{session_id}", "Retry-After": "1"})
