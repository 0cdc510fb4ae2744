"""Fleets (`/api/fleets/*`): a company's drivers, their cost centres, budgets and allowed stations/networks, and
the fleet's monthly session report (JSON, or CSV for the company's accounting).

Who may call: a fleet manager manages the fleets they manage (anyone else's answers 404, so ids cannot be
probed); an admin manages any fleet.  Every write publishes one event on `identity` keyed by the fleet id
(FleetCreated, FleetMemberAdded, FleetMemberRemoved, FleetPolicySet) and answers from the `pg.fleets` projection
once it has applied the event, or 202 + Location when the projection is slower than `write_wait_seconds`.

Enforcement is not here: the OCPP edge refuses a member's token at authorization time when the fleet's policy
says so (edges/ocpp/authorization.py), and the session-start API checks the same rule up front
(edges/api/session_control.py).  The pure parts (month parsing, report rows, CSV) are functions below with no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from chargeverse.consistency import wait_applied
from chargeverse.events import envelope, uuid7
from chargeverse.topics import IDENTITY
from edges.api.auth import auth_config, require
from edges.api.runtime import SOURCE, GuardedRoute, correlation_id, producer
from ledger.billing.cdr_checks import CdrRejected
from ledger.billing.invoices import fleet_invoices, fleet_report_csv, month_bounds, priced_session_from_cdr

router = APIRouter(prefix="/api/fleets", tags=["fleets"], route_class=GuardedRoute)
PROJECTION = "pg.fleets"
MANAGERS = ("fleet_manager", "admin")
_ID = r"^[A-Za-z0-9._:-]{1,80}$"
MAX_LIST = 500


# ---- pure parts ------------------------------------------------------------------------------------------------
def parse_month(text: str) -> tuple[int, int]:
    """'2026-11' -> (2026, 11); ValueError with a reason otherwise."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise ValueError(f"month must be YYYY-MM (e.g. 2026-11), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_budget(text: str | None) -> Decimal | None:
    """A budget as a plain decimal string with at most 2 decimals, >= 0; None: no limit."""
    if text is None:
        return None
    if not re.fullmatch(r"\d{1,9}(\.\d{1,2})?", text.strip()):
        raise ValueError("monthly_budget must be a plain decimal like '150.00' (>= 0, at most 2 decimals)")
    return Decimal(text.strip())


@dataclass(frozen=True)
class ReportSession:
    session_id: str
    account_id: str
    cost_centre: str | None
    station_id: str
    ended_at: datetime
    energy_kwh: Decimal
    currency: str
    excl_vat: Decimal
    incl_vat: Decimal | None


def report_rows(sessions: Iterable[ReportSession]) -> list[dict[str, Any]]:
    """Per (cost centre, driver, currency): sessions, energy and cost, sorted; amounts as plain strings."""
    agg: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in sessions:
        k = (s.cost_centre or "", s.account_id, s.currency)
        a = agg.setdefault(k, {"cost_centre": s.cost_centre, "account_id": s.account_id, "currency": s.currency,
                               "sessions": 0, "energy_kwh": Decimal(0), "excl_vat": Decimal(0),
                               "incl_vat": Decimal(0)})
        a["sessions"] += 1
        a["energy_kwh"] += s.energy_kwh
        a["excl_vat"] += s.excl_vat
        a["incl_vat"] += s.incl_vat if s.incl_vat is not None else s.excl_vat
    return [{**a, "energy_kwh": str(a["energy_kwh"]), "excl_vat": str(a["excl_vat"]), "incl_vat": str(a["incl_vat"])}
            for _, a in sorted(agg.items())]


# ---- models ----------------------------------------------------------------------------------------------------
class FleetIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=120)
    company: str = Field(..., min_length=1, max_length=200)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    time_zone: str = Field("Europe/Amsterdam", max_length=64)
    manager_account_id: str | None = Field(None, pattern=_ID, description="admin only: who manages it "
                                                                          "(default: the caller)")

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class MemberIn(BaseModel):
    account_id: str | None = Field(None, pattern=_ID)
    email: str | None = Field(None, max_length=254, description="instead of account_id")
    cost_centre: str | None = Field(None, max_length=64)


class PolicyIn(BaseModel):
    account_id: str | None = Field(None, pattern=_ID, description="a member; null: the fleet's default")
    monthly_budget: str | None = Field(None, description="plain decimal in the fleet's currency; null: no limit")
    allowed_station_ids: list[str] | None = Field(None, max_length=1000)
    allowed_networks: list[str] | None = Field(None, max_length=200)

    @field_validator("monthly_budget")
    @classmethod
    def _budget(cls, v: str | None) -> str | None:
        b = parse_budget(v)
        return None if b is None else f"{b:.2f}"


class Policy(BaseModel):
    account_id: str | None
    monthly_budget: str | None
    allowed_station_ids: list[str] | None
    allowed_networks: list[str] | None


class Member(BaseModel):
    account_id: str
    cost_centre: str | None
    joined_at: datetime
    policy: Policy | None = Field(None, description="the policy that applies (own, else the fleet's)")
    spent_this_month: str


class Fleet(BaseModel):
    fleet_id: str
    name: str
    company: str
    manager_account_id: str
    currency: str
    time_zone: str
    created_at: datetime
    policy: Policy | None = None
    members: list[Member] = []


# ---- reads -----------------------------------------------------------------------------------------------------
async def _rows(request: Request, q: str, params: Any) -> list[tuple[Any, ...]]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(q, params)
        return await cur.fetchall()


def _policy(row: tuple[Any, ...] | None) -> Policy | None:
    if row is None:
        return None
    return Policy(account_id=row[0] or None, monthly_budget=None if row[1] is None else f"{row[1]:.2f}",
                  allowed_station_ids=row[2], allowed_networks=row[3])


_SPENT = """COALESCE((SELECT sum(COALESCE(c.total_cost_incl_vat, c.total_cost_excl_vat)) FROM cdrs c
   WHERE c.account_id = m.account_id AND c.currency = f.currency AND (c.cdr->>'end_date_time')::timestamptz
   >= date_trunc('month', now() AT TIME ZONE f.time_zone) AT TIME ZONE f.time_zone), 0)"""


async def load_fleet(request: Request, fleet_id: str) -> Fleet | None:
    got = await _rows(request, "SELECT fleet_id, name, company, manager_account_id, currency, time_zone, created_at "
                               "FROM fleets WHERE fleet_id = %s", (fleet_id,))
    if not got:
        return None
    pols = {r[0]: r for r in await _rows(request, "SELECT account_id, monthly_budget, allowed_station_ids, "
                                                  "allowed_networks FROM fleet_policies WHERE fleet_id = %s",
                                         (fleet_id,))}
    members = await _rows(request, f"SELECT m.account_id, m.cost_centre, m.joined_at, {_SPENT} FROM fleet_members m "
                                   "JOIN fleets f ON f.fleet_id = m.fleet_id WHERE m.fleet_id = %s AND m.left_at "
                                   "IS NULL ORDER BY m.account_id", (fleet_id,))
    r = got[0]
    return Fleet(fleet_id=r[0], name=r[1], company=r[2], manager_account_id=r[3], currency=r[4], time_zone=r[5],
                 created_at=r[6], policy=_policy(pols.get("")),
                 members=[Member(account_id=m[0], cost_centre=m[1], joined_at=m[2],
                                 policy=_policy(pols.get(m[0]) or pols.get("")), spent_this_month=f"{m[3]:.2f}")
                          for m in members])


def _is_admin(who: dict[str, Any]) -> bool:
    return "admin" in who.get("roles", [])


async def _managed(request: Request, fleet_id: str, who: dict[str, Any]) -> Fleet:
    f = await load_fleet(request, fleet_id)
    if f is None or (not _is_admin(who) and f.manager_account_id != str(who["sub"])):
        raise HTTPException(404, f"no fleet {fleet_id!r} that you manage")
    return f


# ---- writes ----------------------------------------------------------------------------------------------------
async def _publish(request: Request, fleet_id: str, event_type: str, payload: dict[str, Any]) -> tuple[str, bool]:
    rec = envelope(source=SOURCE, correlation_id=correlation_id(request))
    rec.update(payload)
    delivered = await producer(request).publish(IDENTITY.name, fleet_id, event_type, rec)
    ok = await wait_applied(request.app.state.pg, PROJECTION, delivered,
                            timeout=auth_config(request).write_wait_seconds)
    return rec["event_id"], ok


def _pending(fleet_id: str) -> JSONResponse:
    loc = f"/api/fleets/{fleet_id}"
    return JSONResponse({"status": "pending", "poll": loc}, status_code=202, headers={"Location": loc,
                                                                                       "Retry-After": "1"})


@router.post("", status_code=201, response_model=Fleet, summary="Create a fleet (you manage it)",
             responses={202: {"description": "accepted; poll Location"}})
async def create_fleet(body: FleetIn, request: Request, who: dict = Depends(require(*MANAGERS))) -> Any:
    manager = str(who["sub"])
    if body.manager_account_id is not None and body.manager_account_id != manager:
        if not _is_admin(who):
            raise HTTPException(403, "only an admin may create a fleet for another manager")
        manager = body.manager_account_id
    fleet_id = uuid7()
    _, ok = await _publish(request, fleet_id, "FleetCreated", {
        "fleet_id": fleet_id, "name": body.name, "company": body.company, "manager_account_id": manager,
        "currency": body.currency, "time_zone": body.time_zone, "created_by": str(who["sub"])})
    if not ok:
        return _pending(fleet_id)
    f = await load_fleet(request, fleet_id)
    assert f is not None
    return JSONResponse(f.model_dump(mode="json"), status_code=201, headers={"Location": f"/api/fleets/{fleet_id}"})


@router.get("", response_model=list[Fleet], summary="The fleets you manage (admin: every fleet)")
async def list_fleets(request: Request, who: dict = Depends(require(*MANAGERS))) -> list[Fleet]:
    if _is_admin(who):
        ids = await _rows(request, "SELECT fleet_id FROM fleets ORDER BY created_at, fleet_id LIMIT %s", (MAX_LIST,))
    else:
        ids = await _rows(request, "SELECT fleet_id FROM fleets WHERE manager_account_id = %s ORDER BY created_at, "
                                   "fleet_id LIMIT %s", (str(who["sub"]), MAX_LIST))
    return [f for (i,) in ids if (f := await load_fleet(request, i)) is not None]


@router.get("/{fleet_id}", response_model=Fleet, summary="A fleet, its members, policies and spend this month")
async def get_fleet(fleet_id: str, request: Request, who: dict = Depends(require(*MANAGERS))) -> Fleet:
    return await _managed(request, fleet_id, who)


@router.post("/{fleet_id}/members", response_model=Fleet, summary="Add a driver (by account id or email)",
             responses={202: {"description": "accepted; poll Location"}, 404: {"description": "no such account"}})
async def add_member(fleet_id: str, body: MemberIn, request: Request, who: dict = Depends(require(*MANAGERS))) -> Any:
    await _managed(request, fleet_id, who)
    if (body.account_id is None) == (body.email is None):
        raise HTTPException(422, "give exactly one of account_id and email")
    q, arg = (("account_id = %s", body.account_id) if body.account_id else ("lower(email) = lower(%s)", body.email))
    acc = await _rows(request, f"SELECT account_id FROM accounts WHERE {q}", (arg,))
    if not acc:
        raise HTTPException(404, "no such account")
    account_id = acc[0][0]
    other = await _rows(request, "SELECT fleet_id FROM fleet_members WHERE account_id = %s AND left_at IS NULL "
                                 "AND fleet_id <> %s", (account_id, fleet_id))
    if other:
        raise HTTPException(409, "the driver is a member of another fleet; remove them there first")
    _, ok = await _publish(request, fleet_id, "FleetMemberAdded", {
        "fleet_id": fleet_id, "account_id": account_id, "cost_centre": body.cost_centre,
        "added_by": str(who["sub"])})
    return await _managed(request, fleet_id, who) if ok else _pending(fleet_id)


@router.delete("/{fleet_id}/members/{account_id}", status_code=204, summary="Remove a driver from the fleet")
async def remove_member(fleet_id: str, account_id: str, request: Request,
                        who: dict = Depends(require(*MANAGERS))) -> Response:
    f = await _managed(request, fleet_id, who)
    if account_id not in {m.account_id for m in f.members}:
        raise HTTPException(404, f"{account_id!r} is not a member")
    _, ok = await _publish(request, fleet_id, "FleetMemberRemoved", {
        "fleet_id": fleet_id, "account_id": account_id, "reason": None, "removed_by": str(who["sub"])})
    return Response(status_code=204) if ok else _pending(fleet_id)


@router.put("/{fleet_id}/policy", response_model=Fleet,
            summary="Set the fleet's policy (account_id null) or one member's: budget, allowed stations/networks")
async def set_policy(fleet_id: str, body: PolicyIn, request: Request, who: dict = Depends(require(*MANAGERS))) -> Any:
    f = await _managed(request, fleet_id, who)
    if body.account_id is not None and body.account_id not in {m.account_id for m in f.members}:
        raise HTTPException(404, f"{body.account_id!r} is not a member")
    _, ok = await _publish(request, fleet_id, "FleetPolicySet", {
        "fleet_id": fleet_id, "account_id": body.account_id, "monthly_budget": body.monthly_budget,
        "allowed_station_ids": body.allowed_station_ids, "allowed_networks": body.allowed_networks,
        "set_by": str(who["sub"])})
    return await _managed(request, fleet_id, who) if ok else _pending(fleet_id)


# ---- report ----------------------------------------------------------------------------------------------------
#: a member's priced sessions that started (CDR start) during a stay in the fleet, or that billing booked to it
_REPORT = """
SELECT c.session_id, c.account_id, COALESCE(c.cost_centre, m.cost_centre),
       COALESCE(s.charge_point_id, c.cdr->'cdr_location'->>'id', ''), c.cdr,
       c.total_energy_kwh, c.currency, c.total_cost_excl_vat, c.total_cost_incl_vat
FROM cdrs c
LEFT JOIN sessions s ON s.session_id = c.session_id
LEFT JOIN fleet_members m ON m.fleet_id = %(fleet)s AND m.account_id = c.account_id
     AND (c.cdr->>'start_date_time')::timestamptz >= m.joined_at
     AND (m.left_at IS NULL OR (c.cdr->>'start_date_time')::timestamptz < m.left_at)
WHERE (c.fleet_id = %(fleet)s OR (c.fleet_id IS NULL AND m.account_id IS NOT NULL))
  AND (c.cdr->>'end_date_time')::timestamptz >= %(start)s AND (c.cdr->>'end_date_time')::timestamptz < %(end)s
ORDER BY c.session_id
"""


@router.get("/{fleet_id}/report", summary="The fleet's sessions of a month per driver and cost centre (JSON or CSV)",
            responses={200: {"content": {"text/csv": {}}}})
async def report(fleet_id: str, request: Request, month: str = Query(..., examples=["2026-11"]),
                 format: str = Query("json", pattern="^(json|csv)$"),  # noqa: A002 - the query parameter's name
                 who: dict = Depends(require(*MANAGERS))) -> Any:
    f = await _managed(request, fleet_id, who)
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    start, end = month_bounds(year, mon, f.time_zone)
    rows = await _rows(request, _REPORT, {"fleet": fleet_id, "start": start, "end": end})
    if format == "csv":
        priced, skipped = [], []
        for r in rows:
            try:
                priced.append(priced_session_from_cdr(r[4], session_id=r[0], account_id=r[1], fleet_id=fleet_id,
                                                      cost_centre=r[2]))
            except (CdrRejected, KeyError, ValueError, TypeError):
                skipped.append(r[0])
        invoices = fleet_invoices(fleet_id, priced, year=year, month=mon, tz=f.time_zone)
        text = "".join(fleet_report_csv(inv) for inv in invoices) or ""
        headers = {"Content-Disposition": f'attachment; filename="fleet-{fleet_id}-{month}.csv"'}
        if skipped:
            headers["X-Skipped-Sessions"] = ",".join(skipped)
        return Response(text, media_type="text/csv", headers=headers)
    sessions = [ReportSession(r[0], r[1], r[2], r[3], datetime.fromisoformat(str(r[4]["end_date_time"])
                                                                            .replace("Z", "+00:00")),
                              Decimal(r[5]), r[6], Decimal(r[7]), None if r[8] is None else Decimal(r[8]))
                for r in rows]
    return {"fleet_id": fleet_id, "month": month, "time_zone": f.time_zone, "drivers": report_rows(sessions),
            "sessions": [{"session_id": s.session_id, "account_id": s.account_id, "cost_centre": s.cost_centre,
                          "station_id": s.station_id, "ended_at": s.ended_at.isoformat(),
                          "energy_kwh": str(s.energy_kwh), "currency": s.currency, "excl_vat": str(s.excl_vat),
                          "incl_vat": None if s.incl_vat is None else str(s.incl_vat)} for s in sessions]}
