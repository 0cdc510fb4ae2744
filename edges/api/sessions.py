"""Charging sessions as drivers and operators read them, answered from the `pg.sessions` projection.

Who sees what: operators and admins see every session; a driver sees the sessions started with one of the
identification tokens issued to their account (the `id_tokens` projection), and nobody else's — asking for
another driver's session answers 404, not 403, so session ids cannot be probed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require
from ledger.tariff import MeterSample, TariffEngineError, price_samples
from projections.postgres.station_tariffs import tariff_at_async

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
STAFF = ("operator", "admin")
READERS = ("driver", "fleet_manager", *STAFF)


class Cost(BaseModel):
    currency: str
    excl_vat: str = Field(..., description="decimal string, e.g. '5.50'")
    incl_vat: str | None = None
    final: bool = Field(..., description="true: the priced CDR; false: a live estimate by the same tariff engine")


class Session(BaseModel):
    session_id: str
    charge_point_id: str
    evse_id: int | None = None
    connector_id: int | None = None
    status: str = Field(..., description="ACTIVE or STOPPED")
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    energy_kwh: float = Field(..., description="energy delivered so far (from register readings)")
    power_kw: float | None = Field(None, description="last reported power")
    soc_percent: float | None = Field(None, description="state of charge, when the charger reports it")
    last_sample_at: datetime | None = None
    stop_reason: str | None = None
    id_token: str | None = None
    authorization_status: str | None = None
    cost: Cost | None = Field(None, description="the final cost once billed, the cost so far while it runs")


class SessionPage(BaseModel):
    items: list[Session]
    limit: int
    offset: int


_COLS = ("s.session_id, s.charge_point_id, s.evse_id, s.connector_id, s.status, s.started_at, s.stopped_at, "
         "s.energy_wh, s.power_w, s.soc_percent, s.last_sample_at, s.stop_reason, s.id_token, "
         "s.authorization_status, c.currency, c.total_cost_excl_vat, c.total_cost_incl_vat")
_FROM = "sessions s LEFT JOIN cdrs c ON c.session_id = s.session_id"


def _session(r: tuple[Any, ...]) -> Session:
    cost = None if r[14] is None else Cost(currency=r[14], excl_vat=str(r[15]),
                                            incl_vat=None if r[16] is None else str(r[16]), final=True)
    return Session(session_id=r[0], charge_point_id=r[1], evse_id=r[2], connector_id=r[3], status=r[4],
                   started_at=r[5], stopped_at=r[6], energy_kwh=round((r[7] or 0) / 1000, 3),
                   power_kw=None if r[8] is None else round(r[8] / 1000, 3), soc_percent=r[9],
                   last_sample_at=r[10], stop_reason=r[11], id_token=r[12], authorization_status=r[13], cost=cost)


def live_cost(tariff: dict[str, Any], time_zone: str, started_at: datetime, now: datetime,
              energy_wh: float) -> Cost:
    """The cost so far, by the same tariff engine that prices the final CDR (from the start to now, with the
    energy delivered so far; the final CDR uses every meter sample, so it can differ by the time-of-day split)."""
    priced = price_samples(tariff, [MeterSample(started_at, 0), MeterSample(max(now, started_at),
                                                                             Decimal(str(energy_wh)))],
                           time_zone=time_zone)
    return Cost(currency=priced.currency, excl_vat=str(priced.total_cost.excl_vat),
                incl_vat=None if priced.total_cost.incl_vat is None else str(priced.total_cost.incl_vat),
                final=False)


def _is_staff(who: dict[str, Any]) -> bool:
    return bool(set(who.get("roles", [])) & set(STAFF))


_MINE = "s.id_token IN (SELECT uid FROM id_tokens WHERE account_id = %(sub)s)"


@router.get("/history", response_model=SessionPage, summary="Your sessions, newest first")
async def history(request: Request, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=100_000),
                  charge_point_id: str | None = Query(None, max_length=48, description="staff: one charger"),
                  who: dict[str, Any] = Depends(require(*READERS))) -> SessionPage:
    where, params = [], {"sub": str(who["sub"]), "limit": limit, "offset": offset}
    if not _is_staff(who):
        where.append(_MINE)
    if charge_point_id is not None:
        where.append("s.charge_point_id = %(cp)s")
        params["cp"] = charge_point_id
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLS} FROM {_FROM} {clause} ORDER BY s.started_at DESC NULLS LAST, "
                                 "s.session_id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
        rows = await cur.fetchall()
    return SessionPage(items=[_session(r) for r in rows], limit=limit, offset=offset)


@router.get("/{session_id}", response_model=Session, summary="One session, live while it runs",
            responses={404: {"description": "no such session (or not yours)"}})
async def detail(session_id: str, request: Request, who: dict[str, Any] = Depends(require(*READERS))) -> Session:
    params = {"id": session_id, "sub": str(who["sub"])}
    mine = "" if _is_staff(who) else f" AND {_MINE}"
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLS} FROM {_FROM} WHERE s.session_id = %(id)s{mine}", params)
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, f"no session {session_id!r}")
        session = _session(row)
        if session.cost is None and session.status == "ACTIVE" and session.started_at is not None:
            t = await tariff_at_async(conn, session.charge_point_id, session.started_at)
            if t is not None:
                try:
                    session.cost = live_cost(t["tariff"], t["time_zone"], session.started_at,
                                             datetime.now(timezone.utc), row[7] or 0)
                except TariffEngineError:
                    pass  # no estimate rather than a wrong one; the CDR will say
    return session
