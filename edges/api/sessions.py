"""Charging sessions as drivers and operators read them, answered from the `pg.sessions` projection.

Who sees what: operators and admins see every session; a driver sees the sessions started with one of the
identification tokens issued to their account (the `id_tokens` projection), and nobody else's — asking for
another driver's session answers 404, not 403, so session ids cannot be probed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
STAFF = ("operator", "admin")
READERS = ("driver", "fleet_manager", *STAFF)


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


class SessionPage(BaseModel):
    items: list[Session]
    limit: int
    offset: int


_COLS = ("session_id, charge_point_id, evse_id, connector_id, status, started_at, stopped_at, energy_wh, power_w, "
         "soc_percent, last_sample_at, stop_reason, id_token, authorization_status")


def _session(r: tuple[Any, ...]) -> Session:
    return Session(session_id=r[0], charge_point_id=r[1], evse_id=r[2], connector_id=r[3], status=r[4],
                   started_at=r[5], stopped_at=r[6], energy_kwh=round((r[7] or 0) / 1000, 3),
                   power_kw=None if r[8] is None else round(r[8] / 1000, 3), soc_percent=r[9],
                   last_sample_at=r[10], stop_reason=r[11], id_token=r[12], authorization_status=r[13])


def _is_staff(who: dict[str, Any]) -> bool:
    return bool(set(who.get("roles", [])) & set(STAFF))


_MINE = "id_token IN (SELECT uid FROM id_tokens WHERE account_id = %(sub)s)"


@router.get("/history", response_model=SessionPage, summary="Your sessions, newest first")
async def history(request: Request, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=100_000),
                  charge_point_id: str | None = Query(None, max_length=48, description="staff: one charger"),
                  who: dict[str, Any] = Depends(require(*READERS))) -> SessionPage:
    where, params = [], {"sub": str(who["sub"]), "limit": limit, "offset": offset}
    if not _is_staff(who):
        where.append(_MINE)
    if charge_point_id is not None:
        where.append("charge_point_id = %(cp)s")
        params["cp"] = charge_point_id
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLS} FROM sessions {clause} ORDER BY started_at DESC NULLS LAST, "
                                 "session_id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
        rows = await cur.fetchall()
    return SessionPage(items=[_session(r) for r in rows], limit=limit, offset=offset)


@router.get("/{session_id}", response_model=Session, summary="One session, live while it runs",
            responses={404: {"description": "no such session (or not yours)"}})
async def detail(session_id: str, request: Request, who: dict[str, Any] = Depends(require(*READERS))) -> Session:
    params = {"id": session_id, "sub": str(who["sub"])}
    mine = "" if _is_staff(who) else f" AND {_MINE}"
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLS} FROM sessions WHERE session_id = %(id)s{mine}", params)
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no session {session_id!r}")
    return _session(row)
