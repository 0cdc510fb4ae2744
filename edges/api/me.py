"""The signed-in account (`/api/me/*`): profile, password, vehicles, favourite stations, payment-method references
and id tokens (RFID cards, app tokens).

Every write publishes one `identity` event and answers from the projection once it has applied the event (201/200
reflecting the write, 204 for removals), or 202 + Location (`/api/me/writes/{receipt}`) when the projection is
slower than `write_wait_seconds`.  Reads are answered from the projection.  Checks against the projection before
publishing (the account exists, limits, duplicates) keep the log free of pointless events; the projection stays the
judge of races (see projections/postgres/identity.py).

Who may call: every account holder (driver, fleet_manager, admin) has a profile and a password; vehicles,
favourites, payment methods and id tokens are for the roles that charge (driver, fleet_manager).  Operator and
auditor tokens belong to staff tooling, not to accounts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from edges.api import identity as idm
from edges.api.accounts import Account, Tokens, account_view, load_account, new_session
from edges.api.auth import require
from edges.api.runtime import (
    SOURCE, GuardedRoute, Written, correlation_id, enforce, hasher, is_applied, parse_receipt, pending,
    publish_and_wait, refresh_tokens,
)

router = APIRouter(prefix="/api/me", tags=["me"], route_class=GuardedRoute)

ACCOUNT_HOLDERS = ("driver", "fleet_manager", "admin")
CHARGING = ("driver", "fleet_manager")

VehicleId = Path(pattern=idm.VEHICLE_ID, description="vehicle id (uuid)")
StationId = Path(pattern=idm.STATION_ID, max_length=64)
PaymentMethodId = Path(pattern=idm.PAYMENT_METHOD_ID, max_length=80)
TokenUid = Path(pattern=idm.TOKEN_UID, description="the token uid as listed")


async def _account(request: Request, p: dict[str, Any]) -> dict[str, Any]:
    account = await load_account(request, account_id=str(p["sub"]))
    if account is None:
        raise HTTPException(404, "no account for this token (tokens from `cv token issue` have none)")
    return account


async def _rows(request: Request, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def _one(request: Request, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    rows = await _rows(request, query, params)
    return rows[0] if rows else None


def _write_location(w: Written) -> str:
    return f"/api/me/writes/{w.receipt}"


def _stale() -> HTTPException:
    return HTTPException(409, "the change was recorded but the account changed meanwhile; reload and retry")


# ---- profile and password ------------------------------------------------------------------------------------------
@router.get("", response_model=Account, summary="My profile")
async def me(request: Request, p: dict = Depends(require(*ACCOUNT_HOLDERS))) -> Account:
    return account_view(await _account(request, p))


@router.patch("", response_model=Account, summary="Change profile fields (present fields only; null clears)",
              responses={202: {"description": "accepted; poll Location"}})
async def patch_me(body: idm.ProfilePatch, request: Request, p: dict = Depends(require(*ACCOUNT_HOLDERS))) -> Any:
    account = await _account(request, p)
    changes = {f: getattr(body, f) for f in body.model_fields_set}
    rec = idm.profile_updated(account_id=account["account_id"], changes=changes, source=SOURCE,
                              correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "ProfileUpdated", rec)
    if not w.applied:
        return pending(_write_location(w), w)
    return account_view(await _account(request, p))


@router.put("/password", response_model=Tokens, summary="Change my password: signs out every session, returns "
            "new tokens for this one", responses={202: {"description": "accepted; tokens valid, poll Location"},
                                                  403: {"description": "current password wrong"},
                                                  429: {"description": "rate limited"}})
async def change_password(body: idm.PasswordBody, request: Request,
                          p: dict = Depends(require(*ACCOUNT_HOLDERS))) -> Any:
    account = await _account(request, p)
    await enforce(request, "password", account["account_id"])
    if body.new_password.strip().lower() == account["email"].lower():
        raise HTTPException(422, "password must not be the email address")
    h = hasher(request)
    if not await h.verify(account["password_hash"], body.current_password):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "current password is wrong")
    rec = idm.password_changed(account_id=account["account_id"], password_hash=await h.hash(body.new_password),
                               source=SOURCE, correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "PasswordChanged", rec)
    # the change is on the log: every session (refresh family) of the account ends, this caller gets a new one
    await refresh_tokens(request).revoke_account(account["account_id"], "password changed")
    tokens = await new_session(request, account)
    if not w.applied:
        return JSONResponse({**tokens.model_dump(), "status": "pending", "receipt": w.receipt}, status_code=202,
                            headers={"Location": _write_location(w), "Retry-After": "1"})
    return tokens


@router.get("/writes/{receipt}", summary="Whether a write answered 202 is visible yet",
            responses={202: {"description": "still pending"}, 404: {"description": "malformed receipt"}})
async def write_status(receipt: str, request: Request, p: dict = Depends(require(*ACCOUNT_HOLDERS))) -> Any:
    delivered, _ = parse_receipt(receipt)
    if await is_applied(request, delivered):
        return {"status": "applied"}
    return JSONResponse({"status": "pending"}, status_code=202, headers={"Retry-After": "1"})


# ---- vehicles ------------------------------------------------------------------------------------------------------
class Vehicle(BaseModel):
    vehicle_id: str
    make: str
    model: str
    year: int | None
    battery_kwh: float
    max_ac_kw: float | None
    max_dc_kw: float | None
    connector_types: list[str]
    nickname: str | None
    added_at: str


_VEHICLE_COLUMNS = ("vehicle_id, make, model, year, battery_kwh, max_ac_kw, max_dc_kw, connector_types, nickname, "
                    "added_at")


def _vehicle(row: tuple[Any, ...]) -> Vehicle:
    return Vehicle(vehicle_id=row[0], make=row[1], model=row[2], year=row[3], battery_kwh=row[4], max_ac_kw=row[5],
                   max_dc_kw=row[6], connector_types=list(row[7]), nickname=row[8], added_at=row[9].isoformat())


async def _load_vehicle(request: Request, account_id: str, vehicle_id: str) -> Vehicle | None:
    row = await _one(request, f"SELECT {_VEHICLE_COLUMNS} FROM vehicles WHERE account_id = %s AND vehicle_id = %s",
                     (account_id, vehicle_id))
    return None if row is None else _vehicle(row)


@router.get("/vehicles", response_model=list[Vehicle], summary="My vehicles")
async def vehicles(request: Request, p: dict = Depends(require(*CHARGING))) -> list[Vehicle]:
    account = await _account(request, p)
    rows = await _rows(request, f"SELECT {_VEHICLE_COLUMNS} FROM vehicles WHERE account_id = %s "
                                "ORDER BY added_at, vehicle_id", (account["account_id"],))
    return [_vehicle(r) for r in rows]


@router.post("/vehicles", status_code=201, response_model=Vehicle, summary="Add a vehicle",
             responses={202: {"description": "accepted; poll Location"}, 409: {"description": "too many"}})
async def add_vehicle(body: idm.VehicleBody, request: Request, p: dict = Depends(require(*CHARGING))) -> Any:
    from chargeverse.events import uuid7

    account = await _account(request, p)
    count = await _one(request, "SELECT count(*) FROM vehicles WHERE account_id = %s", (account["account_id"],))
    if count and count[0] >= idm.MAX_VEHICLES:
        raise HTTPException(409, f"at most {idm.MAX_VEHICLES} vehicles per account")
    vehicle_id = uuid7()
    rec = idm.vehicle_added(account_id=account["account_id"], vehicle_id=vehicle_id, body=body, source=SOURCE,
                            correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "VehicleAdded", rec)
    location = f"/api/me/vehicles/{vehicle_id}"
    if not w.applied:
        return pending(_write_location(w), w)
    v = await _load_vehicle(request, account["account_id"], vehicle_id)
    if v is None:
        raise _stale()
    return JSONResponse(v.model_dump(), status_code=201, headers={"Location": location})


@router.get("/vehicles/{vehicle_id}", response_model=Vehicle, summary="One of my vehicles")
async def vehicle(request: Request, vehicle_id: str = VehicleId, p: dict = Depends(require(*CHARGING))) -> Vehicle:
    account = await _account(request, p)
    v = await _load_vehicle(request, account["account_id"], vehicle_id)
    if v is None:
        raise HTTPException(404, f"no vehicle {vehicle_id} on this account")
    return v


@router.delete("/vehicles/{vehicle_id}", status_code=204, summary="Remove a vehicle")
async def remove_vehicle(request: Request, vehicle_id: str = VehicleId,
                         p: dict = Depends(require(*CHARGING))) -> Response:
    account = await _account(request, p)
    if await _load_vehicle(request, account["account_id"], vehicle_id) is None:
        raise HTTPException(404, f"no vehicle {vehicle_id} on this account")
    rec = idm.vehicle_removed(account_id=account["account_id"], vehicle_id=vehicle_id, source=SOURCE,
                              correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "VehicleRemoved", rec)
    return Response(status_code=204) if w.applied else pending(_write_location(w), w)


class ConnectorEstimate(BaseModel):
    connector_id: int
    standard: str | None
    power_kw: float | None
    minutes: int | None


class ChargeEstimate(BaseModel):
    vehicle_id: str
    station_id: str
    from_soc: int
    to_soc: int
    compatible: list[ConnectorEstimate]
    model: str = ("90% efficiency; AC at constant power; DC at full power to 80% and a third above; the smaller of "
                  "the vehicle's and the connector's power limits")


@router.get("/vehicles/{vehicle_id}/charge-estimate", response_model=ChargeEstimate,
            summary="Which connectors of a station fit the vehicle, and roughly how long a charge takes")
async def charge_estimate(request: Request, vehicle_id: str = VehicleId,
                          station_id: str = Query(pattern=idm.STATION_ID, max_length=64),
                          from_soc: int = Query(20, ge=0, le=99), to_soc: int = Query(80, ge=1, le=100),
                          p: dict = Depends(require(*CHARGING))) -> ChargeEstimate:
    if from_soc >= to_soc:
        raise HTTPException(422, "from_soc must be below to_soc")
    account = await _account(request, p)
    v = await _load_vehicle(request, account["account_id"], vehicle_id)
    if v is None:
        raise HTTPException(404, f"no vehicle {vehicle_id} on this account")
    if await _one(request, "SELECT 1 FROM stations WHERE station_id = %s", (station_id,)) is None:
        raise HTTPException(404, f"no station {station_id!r}")
    rows = await _rows(request, "SELECT connector_id, standard, max_power_kw FROM connectors WHERE station_id = %s "
                                "AND connector_id > 0 ORDER BY connector_id", (station_id,))
    out = []
    for cid, standard, max_kw in rows:
        if standard not in v.connector_types:
            continue
        dc = standard in idm.DC_CONNECTORS
        power = idm.charge_power_kw(v.max_ac_kw, v.max_dc_kw, max_kw, dc)
        minutes = idm.estimate_charge_minutes(v.battery_kwh, from_soc, to_soc, power, dc) if power else None
        out.append(ConnectorEstimate(connector_id=cid, standard=standard, power_kw=power, minutes=minutes))
    return ChargeEstimate(vehicle_id=vehicle_id, station_id=station_id, from_soc=from_soc, to_soc=to_soc,
                          compatible=out)


# ---- favourites ----------------------------------------------------------------------------------------------------
class Favourite(BaseModel):
    station_id: str
    name: str | None
    added_at: str


async def _load_favourites(request: Request, account_id: str, station_id: str | None = None) -> list[Favourite]:
    rows = await _rows(request, "SELECT f.station_id, s.name, f.added_at FROM favourites f LEFT JOIN stations s "
                                "ON s.station_id = f.station_id WHERE f.account_id = %s "
                                "AND (%s::text IS NULL OR f.station_id = %s) ORDER BY f.added_at, f.station_id",
                       (account_id, station_id, station_id))
    return [Favourite(station_id=r[0], name=r[1], added_at=r[2].isoformat()) for r in rows]


@router.get("/favourites", response_model=list[Favourite], summary="My favourite stations")
async def favourites(request: Request, p: dict = Depends(require(*CHARGING))) -> list[Favourite]:
    account = await _account(request, p)
    return await _load_favourites(request, account["account_id"])


@router.post("/favourites", status_code=201, response_model=Favourite, summary="Add a favourite station",
             responses={200: {"description": "already a favourite"}, 202: {"description": "accepted; poll Location"},
                        404: {"description": "no such station"}})
async def add_favourite(body: idm.FavouriteBody, request: Request, p: dict = Depends(require(*CHARGING))) -> Any:
    account = await _account(request, p)
    existing = await _load_favourites(request, account["account_id"], body.station_id)
    if existing:
        return JSONResponse(existing[0].model_dump(), status_code=200)
    if await _one(request, "SELECT 1 FROM stations WHERE station_id = %s", (body.station_id,)) is None:
        raise HTTPException(404, f"no station {body.station_id!r}")
    count = await _one(request, "SELECT count(*) FROM favourites WHERE account_id = %s", (account["account_id"],))
    if count and count[0] >= idm.MAX_FAVOURITES:
        raise HTTPException(409, f"at most {idm.MAX_FAVOURITES} favourites per account")
    rec = idm.favourite(account_id=account["account_id"], station_id=body.station_id, source=SOURCE,
                        correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "FavouriteAdded", rec)
    if not w.applied:
        return pending(_write_location(w), w)
    got = await _load_favourites(request, account["account_id"], body.station_id)
    if not got:
        raise _stale()
    return JSONResponse(got[0].model_dump(), status_code=201, headers={"Location": "/api/me/favourites"})


@router.delete("/favourites/{station_id}", status_code=204, summary="Remove a favourite station")
async def remove_favourite(request: Request, station_id: str = StationId,
                           p: dict = Depends(require(*CHARGING))) -> Response:
    account = await _account(request, p)
    if not await _load_favourites(request, account["account_id"], station_id):
        raise HTTPException(404, f"{station_id!r} is not a favourite")
    rec = idm.favourite(account_id=account["account_id"], station_id=station_id, source=SOURCE,
                        correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "FavouriteRemoved", rec)
    return Response(status_code=204) if w.applied else pending(_write_location(w), w)


# ---- payment methods -----------------------------------------------------------------------------------------------
class PaymentMethod(BaseModel):
    payment_method_id: str
    provider: str
    label: str | None
    added_at: str


async def _load_payment_methods(request: Request, account_id: str, ref: str | None = None) -> list[PaymentMethod]:
    rows = await _rows(request, "SELECT payment_method_id, provider, label, added_at FROM payment_methods "
                                "WHERE account_id = %s AND (%s::text IS NULL OR payment_method_id = %s) "
                                "ORDER BY added_at, payment_method_id", (account_id, ref, ref))
    return [PaymentMethod(payment_method_id=r[0], provider=r[1], label=r[2], added_at=r[3].isoformat()) for r in rows]


@router.get("/payment-methods", response_model=list[PaymentMethod], summary="My payment-method references")
async def payment_methods(request: Request, p: dict = Depends(require(*CHARGING))) -> list[PaymentMethod]:
    account = await _account(request, p)
    return await _load_payment_methods(request, account["account_id"])


@router.post("/payment-methods", status_code=201, response_model=PaymentMethod,
             summary="Add a payment method by the provider's tokenised id (never card numbers: 422)",
             responses={200: {"description": "already added"}, 202: {"description": "accepted; poll Location"}})
async def add_payment_method(body: idm.PaymentMethodBody, request: Request,
                             p: dict = Depends(require(*CHARGING))) -> Any:
    account = await _account(request, p)
    existing = await _load_payment_methods(request, account["account_id"], body.payment_method_id)
    if existing:
        return JSONResponse(existing[0].model_dump(), status_code=200)
    count = await _one(request, "SELECT count(*) FROM payment_methods WHERE account_id = %s", (account["account_id"],))
    if count and count[0] >= idm.MAX_PAYMENT_METHODS:
        raise HTTPException(409, f"at most {idm.MAX_PAYMENT_METHODS} payment methods per account")
    rec = idm.payment_method_added(account_id=account["account_id"], body=body, source=SOURCE,
                                   correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "PaymentMethodAdded", rec)
    if not w.applied:
        return pending(_write_location(w), w)
    got = await _load_payment_methods(request, account["account_id"], body.payment_method_id)
    if not got:
        raise _stale()
    return JSONResponse(got[0].model_dump(), status_code=201, headers={"Location": "/api/me/payment-methods"})


@router.delete("/payment-methods/{payment_method_id}", status_code=204, summary="Remove a payment-method reference")
async def remove_payment_method(request: Request, payment_method_id: str = PaymentMethodId,
                                p: dict = Depends(require(*CHARGING))) -> Response:
    account = await _account(request, p)
    if not await _load_payment_methods(request, account["account_id"], payment_method_id):
        raise HTTPException(404, f"no payment method {payment_method_id} on this account")
    rec = idm.payment_method_removed(account_id=account["account_id"], payment_method_id=payment_method_id,
                                     source=SOURCE, correlation_id=correlation_id(request))
    w = await publish_and_wait(request, account["account_id"], "PaymentMethodRemoved", rec)
    return Response(status_code=204) if w.applied else pending(_write_location(w), w)


# ---- id tokens -----------------------------------------------------------------------------------------------------
class IdToken(BaseModel):
    uid: str
    type: str
    contract_id: str
    label: str | None
    status: str
    valid_until: str | None
    issued_at: str


async def _load_tokens(request: Request, account_id: str, uid: str | None = None) -> list[IdToken]:
    rows = await _rows(request, "SELECT uid, token_type, contract_id, label, status, valid_until, issued_at "
                                "FROM account_id_tokens WHERE account_id = %s AND (%s::text IS NULL OR uid = %s) "
                                "ORDER BY issued_at, uid", (account_id, uid, uid))
    return [IdToken(uid=r[0], type=r[1], contract_id=r[2], label=r[3], status=r[4],
                    valid_until=r[5].isoformat() if r[5] else None, issued_at=r[6].isoformat()) for r in rows]


@router.get("/id-tokens", response_model=list[IdToken], summary="My id tokens (RFID cards, app tokens)")
async def id_tokens(request: Request, p: dict = Depends(require(*CHARGING))) -> list[IdToken]:
    account = await _account(request, p)
    return await _load_tokens(request, account["account_id"])


@router.get("/id-tokens/{uid}", response_model=IdToken, summary="One of my id tokens")
async def id_token(request: Request, uid: str = TokenUid, p: dict = Depends(require(*CHARGING))) -> IdToken:
    account = await _account(request, p)
    got = await _load_tokens(request, account["account_id"], uid)
    if not got:
        raise HTTPException(404, f"no id token {uid} on this account")
    return got[0]


@router.post("/id-tokens", status_code=201, response_model=IdToken,
             summary="Register an RFID card (its uid) or create an app token",
             responses={202: {"description": "accepted; poll Location"},
                        409: {"description": "uid belongs to someone else, or too many tokens"}})
async def add_id_token(body: idm.IdTokenBody, request: Request, p: dict = Depends(require(*CHARGING))) -> Any:
    account = await _account(request, p)
    uid = body.uid or idm.new_app_token_uid()
    taken = await _one(request, "SELECT account_id FROM account_id_tokens WHERE uid = %s UNION ALL "
                                "SELECT account_id FROM id_tokens WHERE uid = %s", (uid, uid))
    if taken is not None:
        mine = await _load_tokens(request, account["account_id"], uid)
        if mine and mine[0].status == "Accepted":
            return JSONResponse(mine[0].model_dump(), status_code=200)
        raise HTTPException(409, f"id token {uid} is already registered (or was blocked); it cannot be added")
    count = await _one(request, "SELECT count(*) FROM account_id_tokens WHERE account_id = %s AND status = 'Accepted'",
                       (account["account_id"],))
    if count and count[0] >= idm.MAX_ID_TOKENS:
        raise HTTPException(409, f"at most {idm.MAX_ID_TOKENS} active id tokens per account")
    rec = idm.id_token_issued(account_id=account["account_id"], uid=uid, token_type=body.type,
                              contract_id=account["contract_id"], label=body.label, valid_until=None, source=SOURCE,
                              correlation_id=correlation_id(request))
    w = await publish_and_wait(request, idm.id_token_key(uid), "IdTokenIssued", rec)
    if not w.applied:
        return pending(_write_location(w), w)
    got = await _load_tokens(request, account["account_id"], uid)
    owner = await _one(request, "SELECT account_id FROM id_tokens WHERE uid = %s", (uid,))
    if not got or owner is None or owner[0] != account["account_id"]:
        raise HTTPException(409, f"id token {uid} was claimed first by another account")
    return JSONResponse(got[0].model_dump(), status_code=201, headers={"Location": f"/api/me/id-tokens/{uid}"})


@router.delete("/id-tokens/{uid}", status_code=204, summary="Block one of my id tokens (final: lost or retired)")
async def block_id_token(request: Request, uid: str = TokenUid, p: dict = Depends(require(*CHARGING))) -> Response:
    account = await _account(request, p)
    got = await _load_tokens(request, account["account_id"], uid)
    if not got:
        raise HTTPException(404, f"no id token {uid} on this account")
    if got[0].status == "Blocked":
        return Response(status_code=204)
    rec = idm.id_token_blocked(account_id=account["account_id"], uid=uid, reason="blocked by the holder",
                               source=SOURCE, correlation_id=correlation_id(request))
    w = await publish_and_wait(request, idm.id_token_key(uid), "IdTokenBlocked", rec)
    return Response(status_code=204) if w.applied else pending(_write_location(w), w)

