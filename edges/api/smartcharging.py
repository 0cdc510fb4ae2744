"""Smart charging (`/api/smartcharging/*`): sites and their limits for fleet managers, charging needs for drivers.

The API decides nothing about power: it validates, publishes an event on `sites` (keyed by site id, so a site's
inputs are ordered) and answers from the `pg.smartcharging` projection.  The smartcharging processor re-plans on
the event and sends each car's charging profile to its charger (streams/smartcharging_service/).

Who may call:
- sites and their price signals: fleet managers (the sites they own or that belong to a fleet they manage) and
  admins (any).  A site of someone else answers 404, so site ids cannot be probed.
- a session's needs (departure, energy, home mode) and plan: the driver whose token started the session, the
  manager of the session's site, admins.  Another driver's session answers 404.

Bad input is a 422 that says why (an impossible tree, a departure before the session started, a connector of
another site is a 409); needs that cannot be met in time are accepted and planned best-effort: the plan says
`infeasible` and why.  Pure helpers (departure for "ready by 07:30", energy for a target SoC) have no I/O.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, time as dtime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from chargeverse.consistency import wait_applied
from chargeverse.events import envelope
from chargeverse.topics import SITES
from edges.api.auth import auth_config, require
from edges.api.runtime import SOURCE, GuardedRoute, correlation_id, producer
from streams.smartcharging_service.decide import OBJECTIVES, SiteInvalid, check_site, peak_floor_in_force

router = APIRouter(prefix="/api/smartcharging", tags=["smart charging"], route_class=GuardedRoute)
PROJECTION = "pg.smartcharging"
MANAGERS = ("fleet_manager", "admin")
NEEDS_ROLES = ("driver", "fleet_manager", "admin")
_ID = r"^[A-Za-z0-9._:-]{1,64}$"


# ---- pure parts ------------------------------------------------------------------------------------------------
def next_local(ready_by: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The next instant (after `now`) at which the local clock of `tz` shows `ready_by` ('07:30'), in UTC."""
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", ready_by or "")
    if not m:
        raise ValueError(f"ready_by must be HH:MM (24 h), got {ready_by!r}")
    local_now = now.astimezone(tz)
    day = local_now.date()
    for _ in range(3):
        cand = datetime.combine(day, dtime(int(m.group(1)), int(m.group(2))), tzinfo=tz)
        if cand.astimezone(timezone.utc) > now:
            return cand.astimezone(timezone.utc)
        day += timedelta(days=1)
    raise AssertionError("unreachable: a local time recurs every day")


def energy_for_soc(battery_kwh: float, target_percent: float, soc_percent: float | None) -> float:
    """kWh to bring a battery from `soc_percent` (None: unknown, planned from empty) to `target_percent`."""
    if not (battery_kwh > 0 and math.isfinite(battery_kwh)):
        raise ValueError("the vehicle's battery size must be a positive number of kWh")
    if not 0 < target_percent <= 100:
        raise ValueError("target_soc_percent must be in (0, 100]")
    start = 0.0 if soc_percent is None else min(max(float(soc_percent), 0.0), 100.0)
    return max(target_percent - start, 0.0) / 100.0 * battery_kwh


# ---- models ----------------------------------------------------------------------------------------------------
class LimitIn(BaseModel):
    node_id: str = Field(..., pattern=_ID)
    parent_id: str | None = Field(None, pattern=_ID, description="null for the root (the grid connection)")
    cap_kw: float = Field(..., ge=0, le=100_000)


class ConnectorIn(BaseModel):
    charge_point_id: str = Field(..., min_length=1, max_length=48)
    connector_id: int = Field(..., ge=1, le=1000, description="1.6 connectorId / 2.0.1 evse id")
    node_id: str = Field(..., pattern=_ID)
    max_kw: float = Field(..., gt=0, le=1000)
    phases: int = Field(3, ge=1, le=3)
    unit: str = Field("W", pattern=r"^(W|A)$", description="charging rate unit of its profiles")


class PeakFloorIn(BaseModel):
    mode: str = Field("history", pattern=r"^(history|off|fixed)$",
                      description="history: fraction x the highest uncontrolled daily peak of earlier closed days; "
                                  "fixed: kw; off: no floor.  Always capped by the grid connection")
    fraction: float = Field(0.6, gt=0, le=1, description="history mode: the share of that peak")
    kw: float | None = Field(None, ge=0, le=100_000, description="fixed mode: the floor in kW")


class SiteIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=120)
    fleet_id: str | None = Field(None, pattern=_ID, description="the fleet whose depot it is")
    time_zone: str = Field("Europe/Amsterdam", max_length=64)
    slot_minutes: int = Field(15, ge=5, le=60)
    horizon_hours: int = Field(24, ge=1, le=72)
    objectives: list[str] = Field(default_factory=lambda: ["energy", "peak", "asap"], min_length=1, max_length=6,
                                  description=f"priority order, from {', '.join(OBJECTIVES)}")
    limits: list[LimitIn] = Field(..., min_length=1, max_length=500, description="parents before children")
    connectors: list[ConnectorIn] = Field(..., min_length=1, max_length=2000)
    default_departure_hours: float = Field(8.0, gt=0, le=72)
    default_energy_kwh: float = Field(20.0, ge=0, le=500)
    peak_floor: PeakFloorIn | None = Field(None, description="the peak floor the site plans against (load below it "
                                                             "costs nothing in the peak stage); default history, 0.6")

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("slot_minutes")
    @classmethod
    def _slot(cls, v: int) -> int:
        if 60 % v:
            raise ValueError("slot_minutes must divide an hour (5, 10, 15, 20, 30 or 60)")
        return v


class PricePointIn(BaseModel):
    starts_at: datetime
    price_per_kwh: str = Field(..., description="decimal string, e.g. '0.2315'")
    carbon_g_per_kwh: float | None = Field(None, ge=0, le=5000)

    @field_validator("price_per_kwh")
    @classmethod
    def _price(cls, v: str) -> str:
        try:
            d = Decimal(v.strip())
        except InvalidOperation as exc:
            raise ValueError("price_per_kwh must be a decimal string like '0.2315'") from exc
        if not d.is_finite() or abs(d) > 100:
            raise ValueError("price_per_kwh must be a finite decimal between -100 and 100")
        return str(d)

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("starts_at needs a time zone (e.g. 2026-11-27T17:00:00Z)")
        return v


class PricesIn(BaseModel):
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    points: list[PricePointIn] = Field(..., min_length=1, max_length=2000)


class NeedsIn(BaseModel):
    departure_at: datetime | None = Field(None, description="when the car leaves")
    energy_kwh: float | None = Field(None, gt=0, le=500, description="total energy the session needs")
    mode: str = Field("asap", pattern=r"^(asap|cheapest)$")

    @field_validator("departure_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("departure_at needs a time zone (e.g. 2026-11-27T17:00:00Z)")
        return v


class HomeModeIn(BaseModel):
    ready_by: str = Field(..., examples=["07:30"], description="local time at the site, HH:MM")
    target_soc_percent: float = Field(80, gt=0, le=100)
    vehicle_id: str | None = Field(None, max_length=64, description="default: the driver's only vehicle")
    current_soc_percent: float | None = Field(None, ge=0, le=100,
                                              description="used when the charger does not report SoC")


# ---- reads -----------------------------------------------------------------------------------------------------
async def _rows(request: Request, q: str, params: Any) -> list[tuple[Any, ...]]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(q, params)
        return await cur.fetchall()


def _is_admin(who: dict[str, Any]) -> bool:
    return "admin" in who.get("roles", [])


async def _manages_fleet(request: Request, fleet_id: str, who: dict[str, Any]) -> bool:
    if _is_admin(who):
        return bool(await _rows(request, "SELECT 1 FROM fleets WHERE fleet_id = %s", (fleet_id,)))
    return bool(await _rows(request, "SELECT 1 FROM fleets WHERE fleet_id = %s AND manager_account_id = %s",
                            (fleet_id, str(who["sub"]))))


async def _site_row(request: Request, site_id: str) -> tuple[Any, ...] | None:
    got = await _rows(request, "SELECT site_id, version, name, fleet_id, owner_account_id, time_zone, definition, "
                               "defined_by, defined_at FROM sc_sites WHERE site_id = %s", (site_id,))
    return got[0] if got else None


async def _may_manage(request: Request, row: tuple[Any, ...], who: dict[str, Any]) -> bool:
    if _is_admin(who) or row[4] == str(who["sub"]):
        return True
    return row[3] is not None and "fleet_manager" in who.get("roles", []) and \
        await _manages_fleet(request, row[3], who)


async def _managed_site(request: Request, site_id: str, who: dict[str, Any]) -> tuple[Any, ...]:
    row = await _site_row(request, site_id)
    if row is None or not await _may_manage(request, row, who):
        raise HTTPException(404, f"no site {site_id!r} that you manage")
    return row


async def _site_out(request: Request, row: tuple[Any, ...]) -> dict[str, Any]:
    sched = await _rows(request, "SELECT computed_at, plan_start, slot_seconds, trigger, site_peak_kw, infeasible, "
                                 "issues, objectives, peak_floor FROM sc_schedules WHERE site_id = %s", (row[0],))
    plans = await _rows(request, "SELECT p.session_id, p.charge_point_id, p.connector_id, p.power_kw, "
                                 "p.requested_kwh, p.delivered_kwh, p.planned_kwh, p.departure_at, p.need_source, "
                                 "p.command_id "
                                 "FROM sc_session_plans p JOIN sc_schedules s ON s.site_id = p.site_id AND "
                                 "s.event_id = p.event_id WHERE p.site_id = %s ORDER BY p.session_id", (row[0],))
    prices = await _rows(request, "SELECT currency, points FROM sc_prices WHERE site_id = %s", (row[0],))
    out = {"site_id": row[0], "version": row[1], "name": row[2], "fleet_id": row[3], "owner_account_id": row[4],
           "time_zone": row[5], **{k: v for k, v in row[6].items() if k not in ("name", "fleet_id", "time_zone")},
           "peak_floor": peak_floor_in_force(row[6].get("peak_floor")),  # null stored: the default
           "defined_by": row[7], "defined_at": row[8].isoformat(),
           "prices": {"currency": prices[0][0], "points": prices[0][1]} if prices else None, "schedule": None}
    if sched:
        s = sched[0]
        out["schedule"] = {
            "computed_at": s[0].isoformat(), "plan_start": s[1].isoformat(), "slot_seconds": s[2], "trigger": s[3],
            "site_peak_kw": s[4], "infeasible": s[5], "issues": s[6], "objectives": s[7], "peak_floor": s[8],
            "sessions": [{"session_id": p[0], "charge_point_id": p[1], "connector_id": p[2], "power_kw": p[3],
                          "requested_kwh": p[4], "delivered_kwh": p[5], "planned_kwh": p[6],
                          "departure_at": p[7].isoformat(), "need_source": p[8],
                          "profile_command_id": p[9]} for p in plans]}
    return out


_MINE = "s.id_token IN (SELECT uid FROM id_tokens WHERE account_id = %s)"


async def _session_for(request: Request, session_id: str, who: dict[str, Any]) -> dict[str, Any]:
    """The session (with its site) if the caller may set its needs: its driver, its site's manager, an admin."""
    got = await _rows(request, "SELECT s.session_id, s.charge_point_id, COALESCE(s.evse_id, s.connector_id), "
                               "s.status, s.started_at, s.soc_percent, s.id_token, c.site_id FROM sessions s "
                               "LEFT JOIN sc_site_connectors c ON c.charge_point_id = s.charge_point_id AND "
                               "c.connector_id = COALESCE(s.evse_id, s.connector_id) WHERE s.session_id = %s",
                      (session_id,))
    missing = HTTPException(404, f"no session {session_id!r} of yours")
    if not got:
        raise missing
    r = got[0]
    sess = {"session_id": r[0], "charge_point_id": r[1], "connector_id": r[2], "status": r[3], "started_at": r[4],
            "soc_percent": r[5], "id_token": r[6], "site_id": r[7], "site": None}
    if r[7] is not None:
        sess["site"] = await _site_row(request, r[7])
    allowed = _is_admin(who)
    if not allowed and "driver" in who.get("roles", []) and r[6] is not None:
        allowed = bool(await _rows(request, "SELECT 1 FROM id_tokens WHERE uid = %s AND account_id = %s",
                                   (r[6], str(who["sub"]))))
    if not allowed and "fleet_manager" in who.get("roles", []) and sess["site"] is not None:
        allowed = await _may_manage(request, sess["site"], who)
    if not allowed:
        raise missing
    return sess


# ---- writes ----------------------------------------------------------------------------------------------------
async def _publish(request: Request, site_id: str, event_type: str, payload: dict[str, Any]) -> tuple[str, bool]:
    rec = envelope(source=SOURCE, correlation_id=correlation_id(request))
    rec.update(payload)
    delivered = await producer(request).publish(SITES.name, site_id, event_type, rec)
    ok = await wait_applied(request.app.state.pg, PROJECTION, delivered,
                            timeout=auth_config(request).write_wait_seconds)
    return rec["event_id"], ok


def _pending(location: str) -> JSONResponse:
    return JSONResponse({"status": "pending", "poll": location}, status_code=202,
                        headers={"Location": location, "Retry-After": "1"})


@router.put("/sites/{site_id}", summary="Define or redefine a site: its connectors and the tree of limits above them",
            responses={202: {"description": "accepted; poll Location"}, 404: {"description": "not your site/fleet"},
                       409: {"description": "a connector belongs to another site"},
                       422: {"description": "the tree or the connectors cannot be planned"}})
async def define_site(site_id: str, body: SiteIn, request: Request, who: dict = Depends(require(*MANAGERS))) -> Any:
    if not re.fullmatch(_ID, site_id):
        raise HTTPException(422, "site id: 1-64 of A-Z a-z 0-9 . _ : -")
    limits = [n.model_dump() for n in body.limits]
    connectors = [c.model_dump() for c in body.connectors]
    peak_floor = body.peak_floor.model_dump() if body.peak_floor is not None else None
    try:
        check_site(limits, connectors, body.objectives, peak_floor)
    except SiteInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    existing = await _site_row(request, site_id)
    owner = str(who["sub"])
    if existing is not None:
        if not await _may_manage(request, existing, who):
            raise HTTPException(404, f"no site {site_id!r} that you manage")
        owner = existing[4]
    if body.fleet_id is not None and not await _manages_fleet(request, body.fleet_id, who):
        raise HTTPException(404, f"no fleet {body.fleet_id!r} that you manage")
    pairs = [(c["charge_point_id"], c["connector_id"]) for c in connectors]
    known = {r[0] for r in await _rows(request, "SELECT station_id FROM stations WHERE station_id = ANY(%s)",
                                       (sorted({p[0] for p in pairs}),))}
    unknown = sorted({p[0] for p in pairs} - known)
    if unknown:
        raise HTTPException(422, f"unknown chargers: {', '.join(unknown[:10])} (register them first)")
    taken = await _rows(request, "SELECT charge_point_id, connector_id, site_id FROM sc_site_connectors WHERE "
                                 "site_id <> %s AND (charge_point_id, connector_id) IN "
                                 "(SELECT * FROM unnest(%s::text[], %s::int[]))",
                        (site_id, [p[0] for p in pairs], [p[1] for p in pairs]))
    if taken:
        t = taken[0]
        raise HTTPException(409, f"{t[0]} connector {t[1]} already belongs to another site")
    _, ok = await _publish(request, site_id, "SiteDefined", {
        "site_id": site_id, "name": body.name, "fleet_id": body.fleet_id, "owner_account_id": owner,
        "time_zone": body.time_zone, "slot_minutes": body.slot_minutes, "horizon_hours": body.horizon_hours,
        "objectives": body.objectives, "limits": limits, "connectors": connectors,
        "default_departure_hours": body.default_departure_hours, "default_energy_kwh": body.default_energy_kwh,
        "peak_floor": peak_floor, "defined_by": str(who["sub"]), "raw": body.model_dump_json()})
    loc = f"/api/smartcharging/sites/{site_id}"
    if not ok:
        return _pending(loc)
    row = await _site_row(request, site_id)
    assert row is not None
    return JSONResponse(await _site_out(request, row), status_code=200 if existing else 201,
                        headers={"Location": loc})


@router.get("/sites", summary="The sites you manage (admin: every site)")
async def list_sites(request: Request, who: dict = Depends(require(*MANAGERS))) -> list[dict[str, Any]]:
    rows = await _rows(request, "SELECT site_id, version, name, fleet_id, owner_account_id, time_zone, definition, "
                                "defined_by, defined_at FROM sc_sites ORDER BY site_id LIMIT 1000", ())
    return [await _site_out(request, r) for r in rows if await _may_manage(request, r, who)]


@router.get("/sites/{site_id}", summary="A site, its price signal and its latest plan",
            responses={404: {"description": "no such site that you manage"}})
async def get_site(site_id: str, request: Request, who: dict = Depends(require(*MANAGERS))) -> dict[str, Any]:
    return await _site_out(request, await _managed_site(request, site_id, who))


@router.put("/sites/{site_id}/prices", status_code=202,
            summary="Set the price (and carbon) signal the site plans against",
            responses={404: {"description": "no such site that you manage"}})
async def set_prices(site_id: str, body: PricesIn, request: Request, who: dict = Depends(require(*MANAGERS))) -> Any:
    await _managed_site(request, site_id, who)
    points = sorted(body.points, key=lambda p: p.starts_at)
    if len({p.starts_at for p in points}) != len(points):
        raise HTTPException(422, "two price points start at the same time")
    event_id, _ = await _publish(request, site_id, "ChargingPriceSignalSet", {
        "site_id": site_id, "currency": body.currency,
        "points": [{"starts_at": p.starts_at.astimezone(timezone.utc), "price_per_kwh": p.price_per_kwh,
                    "carbon_g_per_kwh": p.carbon_g_per_kwh} for p in points], "set_by": str(who["sub"])})
    return {"status": "accepted", "event_id": event_id, "points": len(points)}


async def _set_needs(request: Request, sess: dict[str, Any], who: dict[str, Any], *, departure: datetime | None,
                     energy: float | None, mode: str, extra: dict[str, Any], raw: str) -> dict[str, Any]:
    if sess["site"] is None:
        raise HTTPException(422, "the session's connector is not part of a smart-charging site")
    if sess["status"] != "ACTIVE":
        raise HTTPException(422, "the session has ended; its needs can no longer change")
    if departure is not None and sess["started_at"] is not None and departure <= sess["started_at"]:
        raise HTTPException(422, f"departure_at {departure.isoformat()} is not after the session's start "
                                 f"{sess['started_at'].isoformat()}")
    if departure is not None and departure > datetime.now(timezone.utc) + timedelta(days=7):
        raise HTTPException(422, "departure_at is more than 7 days ahead")
    payload = {"site_id": sess["site_id"], "session_id": sess["session_id"],
               "charge_point_id": sess["charge_point_id"], "connector_id": sess["connector_id"],
               "departure_at": departure.astimezone(timezone.utc) if departure else None, "energy_kwh": energy,
               "mode": mode, "target_soc_percent": None, "battery_kwh": None, "soc_percent": None,
               "set_by": str(who["sub"]), "raw": raw}
    payload.update(extra)
    event_id, _ = await _publish(request, sess["site_id"], "ChargingNeedsSet", payload)
    return {"status": "accepted", "event_id": event_id, "session_id": sess["session_id"], "site_id": sess["site_id"],
            "departure_at": payload["departure_at"].isoformat() if payload["departure_at"] else None,
            "energy_kwh": energy, "mode": mode, **{k: v for k, v in extra.items()},
            "plan": f"/api/smartcharging/sessions/{sess['session_id']}/plan"}


@router.put("/sessions/{session_id}/needs", status_code=202,
            summary="Say when the car leaves and how much energy it needs; the site re-plans",
            responses={404: {"description": "no such session of yours"},
                       422: {"description": "not on a site, ended, or a departure before the start"}})
async def set_needs(session_id: str, body: NeedsIn, request: Request,
                    who: dict = Depends(require(*NEEDS_ROLES))) -> Any:
    if body.departure_at is None and body.energy_kwh is None and body.mode == "asap":
        raise HTTPException(422, "give departure_at, energy_kwh or mode")
    sess = await _session_for(request, session_id, who)
    return await _set_needs(request, sess, who, departure=body.departure_at, energy=body.energy_kwh,
                            mode=body.mode, extra={}, raw=body.model_dump_json())


@router.post("/sessions/{session_id}/home-mode", status_code=202,
             summary="Home mode: ready by a local time with a target state of charge, in the cheapest hours",
             responses={404: {"description": "no such session of yours"},
                        422: {"description": "no vehicle to size the battery, or a bad time"}})
async def home_mode(session_id: str, body: HomeModeIn, request: Request,
                    who: dict = Depends(require(*NEEDS_ROLES))) -> Any:
    sess = await _session_for(request, session_id, who)
    if sess["site"] is None:
        raise HTTPException(422, "the session's connector is not part of a smart-charging site")
    tz = ZoneInfo(sess["site"][5])
    try:
        departure = next_local(body.ready_by, tz, datetime.now(timezone.utc))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    owner = await _rows(request, "SELECT account_id FROM id_tokens WHERE uid = %s", (sess["id_token"] or "",))
    account = owner[0][0] if owner and owner[0][0] else str(who["sub"])
    q = "SELECT vehicle_id, battery_kwh FROM vehicles WHERE account_id = %s"
    vehicles = await _rows(request, q + (" AND vehicle_id = %s" if body.vehicle_id else "") + " ORDER BY vehicle_id",
                           (account, body.vehicle_id) if body.vehicle_id else (account,))
    if len(vehicles) != 1:
        raise HTTPException(422, "no such vehicle on the driver's account" if body.vehicle_id else
                            "say which vehicle (vehicle_id): the driver has none or several")
    soc = sess["soc_percent"] if sess["soc_percent"] is not None else body.current_soc_percent
    try:
        energy = energy_for_soc(float(vehicles[0][1]), body.target_soc_percent, soc)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    extra = {"target_soc_percent": body.target_soc_percent, "battery_kwh": float(vehicles[0][1]),
             "soc_percent": soc}
    out = await _set_needs(request, sess, who, departure=departure, energy=round(energy, 3) or None, mode="cheapest",
                           extra=extra, raw=body.model_dump_json())
    out["soc_known"] = soc is not None
    return out


@router.get("/sessions/{session_id}/plan", summary="A session's needs and its latest charging plan",
            responses={404: {"description": "no such session of yours, or not on a site"}})
async def session_plan(session_id: str, request: Request, who: dict = Depends(require(*NEEDS_ROLES))) -> Any:
    sess = await _session_for(request, session_id, who)
    if sess["site"] is None:
        raise HTTPException(404, "the session's connector is not part of a smart-charging site")
    plan = await _rows(request, "SELECT plan_start, slot_seconds, power_kw, requested_kwh, delivered_kwh, "
                                "planned_kwh, departure_at, need_source, command_id, computed_at FROM "
                                "sc_session_plans WHERE session_id = %s", (session_id,))
    needs = await _rows(request, "SELECT departure_at, energy_kwh, mode, target_soc_percent, set_at FROM sc_needs "
                                 "WHERE session_id = %s", (session_id,))
    p = plan[0] if plan else None
    n = needs[0] if needs else None
    return {"session_id": session_id, "site_id": sess["site_id"],
            "needs": None if n is None else {"departure_at": n[0].isoformat() if n[0] else None, "energy_kwh": n[1],
                                             "mode": n[2], "target_soc_percent": n[3], "set_at": n[4].isoformat()},
            "plan": None if p is None else {
                "plan_start": p[0].isoformat(), "slot_seconds": p[1], "power_kw": p[2], "requested_kwh": p[3],
                "delivered_kwh": p[4], "planned_kwh": p[5], "departure_at": p[6].isoformat(), "need_source": p[7],
                "last_profile_command_id": p[8], "computed_at": p[9].isoformat()}}

