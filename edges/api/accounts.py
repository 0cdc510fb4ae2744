"""Register, login, refresh, logout (`/api/auth/*`).

- register: publishes AccountRegistered keyed by the account id derived from the email, waits for the projection
  and answers 201 with the account, 409 when the email is taken (checked before publishing and again after the
  wait: of two racing registrations the projection keeps the first on the log), or 202 + Location to poll.
- login: argon2id verification against the projection; answers a short-lived access JWT and a refresh token
  that starts a new family (edges/api/refresh.py).  Unknown emails cost the same hashing time as wrong passwords
  and get the same answer.
- refresh: rotates; presenting a consumed token revokes its family.  Roles are re-read from the projection, so a
  role change reaches the next access token.
- logout: revokes the token's family (or every family of its account with `everywhere`).
Rate limits (per IP and per account, Redis GCRA) guard login, register and refresh: 429 with Retry-After.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chargeverse.kafka import Delivered, EventProducer
from chargeverse.pnc import emaid
from chargeverse.settings import Settings, get_settings
from chargeverse.tokens import ROLES, issue
from chargeverse.topics import IDENTITY
from edges.api import identity as idm
from edges.api.auth import AuthConfig, auth_config, keyring_store, public
from edges.api.refresh import Outcome
from edges.api.runtime import (
    SOURCE, GuardedRoute, correlation_id, enforce, hasher, is_applied, parse_receipt, pending, publish_and_wait,
    refresh_tokens,
)

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=GuardedRoute)


class Account(BaseModel):
    account_id: str
    email: str
    display_name: str | None
    phone: str | None = None
    locale: str | None = None
    roles: list[str]
    contract_id: str
    registered_at: str


class Tokens(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    account_id: str
    roles: list[str]


ACCOUNT_COLUMNS = ("account_id, email, display_name, phone, locale, roles, contract_id, registered_at, "
                   "registered_event_id, password_hash, password_changed_at")


async def load_account(request: Request, *, account_id: str) -> dict[str, Any] | None:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = %s", (account_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    return dict(zip([c.strip() for c in ACCOUNT_COLUMNS.split(",")], row))


def account_view(a: dict[str, Any]) -> Account:
    return Account(account_id=a["account_id"], email=a["email"], display_name=a["display_name"], phone=a["phone"],
                   locale=a["locale"], roles=list(a["roles"]), contract_id=a["contract_id"],
                   registered_at=a["registered_at"].isoformat())


async def mint(request: Request, account: dict[str, Any], refresh_token: str) -> Tokens:
    cfg = auth_config(request)
    ring = await keyring_store(request).get()
    access = issue(account["account_id"], list(account["roles"]), cfg.access_ttl_seconds, keyring=ring)
    return Tokens(access_token=access, expires_in=cfg.access_ttl_seconds, refresh_token=refresh_token,
                  refresh_expires_in=cfg.refresh_idle_seconds, account_id=account["account_id"],
                  roles=list(account["roles"]))


async def new_session(request: Request, account: dict[str, Any]) -> Tokens:
    _, token = await refresh_tokens(request).start(account["account_id"], int(time.time()))
    return await mint(request, account, token)


def _conflict(email: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"an account with the email {email} already exists")


@router.post("/register", status_code=201, response_model=Account, summary="Create an account",
             responses={202: {"description": "accepted; poll Location"}, 409: {"description": "email taken"},
                        429: {"description": "rate limited"}})
async def register(body: idm.RegisterBody, request: Request,
                   _: None = Depends(public("anyone may register; rate-limited per IP and per email"))) -> Any:
    account_id = idm.account_id_for(body.email)
    await enforce(request, "register", account_id)
    if await load_account(request, account_id=account_id) is not None:
        raise _conflict(body.email)
    cfg = auth_config(request)
    password_hash = await hasher(request).hash(body.password)
    rec = idm.account_registered(
        account_id=account_id, email=body.email, password_hash=password_hash, display_name=body.display_name,
        roles=[body.role], contract_id=str(emaid.generate(cfg.contract_country, cfg.contract_provider)),
        source=SOURCE, correlation_id=correlation_id(request))
    written = await publish_and_wait(request, account_id, "AccountRegistered", rec)
    if not written.applied:
        return pending(f"/api/auth/register/{written.receipt}", written)
    account = await load_account(request, account_id=account_id)
    if account is None or account["registered_event_id"] != rec["event_id"]:
        raise _conflict(body.email)
    return JSONResponse(account_view(account).model_dump(), status_code=201,
                        headers={"Location": "/api/me"})


@router.get("/register/{receipt}", response_model=Account, summary="Outcome of a registration answered 202",
            responses={202: {"description": "still pending"}, 404: {"description": "no such receipt"},
                       409: {"description": "the email was taken by an earlier registration"}})
async def registration_outcome(receipt: str, request: Request,
                               _: None = Depends(public("holder of the receipt (an unguessable event id)"))) -> Any:
    delivered, event_id = parse_receipt(receipt)
    if not await is_applied(request, delivered):
        return JSONResponse({"status": "pending"}, status_code=202, headers={"Retry-After": "1"})
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute("SELECT account_id FROM accounts WHERE registered_event_id = %s", (event_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(409, "not registered: the email was taken by an earlier registration (or no such "
                                 "registration)")
    account = await load_account(request, account_id=row[0])
    assert account is not None
    return JSONResponse(account_view(account).model_dump(), status_code=201)


@router.post("/login", response_model=Tokens, summary="Exchange email and password for tokens",
             responses={401: {"description": "wrong email or password"}, 429: {"description": "rate limited"}})
async def login(body: idm.LoginBody, request: Request,
                _: None = Depends(public("the credentials are the body; rate-limited per IP and per account"))
                ) -> Tokens:
    try:
        email = idm.normalise_email(body.email)
    except ValueError:
        email = None
    account_id = idm.account_id_for(email) if email else None
    await enforce(request, "login", account_id)
    account = await load_account(request, account_id=account_id) if account_id else None
    ok = await hasher(request).verify(account["password_hash"] if account else None, body.password)
    if not ok or account is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password")
    return await new_session(request, account)


_REFUSED = {
    Outcome.UNKNOWN: "unknown or expired refresh token; log in again",
    Outcome.EXPIRED: "refresh token expired; log in again",
    Outcome.REVOKED: "this session was signed out; log in again",
    Outcome.REUSED: "refresh token was already used: every session of this login is signed out; log in again",
}


@router.post("/refresh", response_model=Tokens, summary="Rotate a refresh token for a new access token",
             responses={401: {"description": "refused (unknown, expired, revoked, reused)"},
                        429: {"description": "rate limited"}})
async def refresh(body: idm.RefreshBody, request: Request,
                  _: None = Depends(public("the refresh token in the body is the credential"))) -> Tokens:
    await enforce(request, "refresh", None)
    service = refresh_tokens(request)
    owner = await service.account_of(body.refresh_token)
    if owner is not None:
        await enforce(request, "refresh", owner, ip=False)
    rot = await service.rotate(body.refresh_token, int(time.time()))
    if rot.outcome is not Outcome.ROTATED:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _REFUSED[rot.outcome])
    assert rot.account_id is not None and rot.token is not None and rot.family is not None
    account = await load_account(request, account_id=rot.account_id)
    if account is None:
        await service.store.revoke(rot.family, "account gone")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the account no longer exists")
    return await mint(request, account, rot.token)


@router.post("/logout", status_code=204, summary="Sign out this session (or every session of the account)")
async def logout(body: idm.LogoutBody, request: Request,
                 _: None = Depends(public("the refresh token in the body is the credential"))) -> Response:
    await refresh_tokens(request).logout(body.refresh_token, everywhere=body.everywhere)
    return Response(status_code=204)  # the same answer for unknown tokens: nothing to learn here


def create_account_sync(producer: EventProducer, email: str, password: str, roles: list[str],
                        display_name: str | None = None, settings: Settings | None = None) -> tuple[str, Delivered]:
    """Register an account with any roles (for operators: `cv account create --role admin`; self-service
    registration offers driver and fleet_manager only).  Publishes AccountRegistered and returns (account id,
    where it landed); the projection decides as for any registration: a taken email stays with its owner."""
    from argon2 import PasswordHasher

    normalised = idm.normalise_email(email)
    idm.check_new_password(password, normalised)
    if not roles or set(roles) - set(ROLES):
        raise ValueError(f"roles must be some of {', '.join(ROLES)}")
    cfg = AuthConfig.from_settings(settings or get_settings())
    p = cfg.argon2
    password_hash = PasswordHasher(time_cost=p.time_cost, memory_cost=p.memory_kib,
                                   parallelism=p.parallelism).hash(password)
    account_id = idm.account_id_for(normalised)
    rec = idm.account_registered(
        account_id=account_id, email=normalised, password_hash=password_hash,
        display_name=None if display_name is None else idm.clean_text(display_name, "display_name", 100),
        roles=list(roles), contract_id=str(emaid.generate(cfg.contract_country, cfg.contract_provider)),
        source="cli", correlation_id=account_id)
    return account_id, producer.publish_sync(IDENTITY.name, account_id, "AccountRegistered", rec)
