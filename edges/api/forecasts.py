"""Forecasts as apps read them, answered from the `pg.forecasts` projection (the forecasts processor learns them
online from the log: streams/forecasts_service/).

- `GET /api/stations/{id}/forecast`: expected occupied connectors for each of the next 24 hours, in the station's
  local time, with a one-line summary ("usually busy at 17:00").  Anyone signed in may read it, like the station.
- `GET /api/forecasts/sessions/{id}`: the energy and connection time predicted at the session's start (its driver,
  staff).
- `GET /api/operator/charger-faults`: chargers whose behaviour departs from their own history (staff).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require
from streams.forecasts_service.decide import summary

router = APIRouter(tags=["forecasts"])
READERS = ("driver", "fleet_manager", "operator", "admin")
STAFF = ("operator", "admin")
#: an hour counts as busy when at least this share of the station's connectors is expected occupied
BUSY_SHARE = 0.5


class ForecastHour(BaseModel):
    starts_at: datetime = Field(..., description="start of the hour, in the station's local time")
    hour: str = Field(..., examples=["17:00"], description="local clock time of the hour's start")
    expected_occupied: float = Field(..., description="expected number of occupied connectors (time-weighted mean)")
    busy: bool = Field(..., description=f"at least {int(BUSY_SHARE * 100)} % of the connectors expected occupied")


class StationForecast(BaseModel):
    station_id: str
    as_of: datetime = Field(..., description="the status event the forecast reflects")
    time_zone: str
    connectors: int
    occupied_now: int
    hours_learned: int = Field(..., description="hours of this station the model has learned from")
    summary: str
    hours: list[ForecastHour]


def forecast_out(row: tuple[Any, ...]) -> StationForecast:
    """The API form of a station_forecasts row (pure)."""
    station_id, as_of, tz_name, connectors, occupied_now, learned, hours = row
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = [(datetime.fromisoformat(h["starts_at"]).astimezone(tz), float(h["expected_occupied"])) for h in hours]
    return StationForecast(
        station_id=station_id, as_of=as_of, time_zone=tz_name, connectors=connectors, occupied_now=occupied_now,
        hours_learned=learned, summary=summary(local, connectors),
        hours=[ForecastHour(starts_at=t, hour=t.strftime("%H:%M"), expected_occupied=round(v, 2),
                            busy=connectors > 0 and v >= BUSY_SHARE * connectors) for t, v in local])


async def forecast_of(conn: Any, station_id: str) -> StationForecast | None:
    """The station's latest forecast, or None: the hook for the station detail (edges/api/stations.py)."""
    cur = await conn.execute("SELECT station_id, as_of, time_zone, connectors, occupied_now, hours_learned, hours "
                             "FROM station_forecasts WHERE station_id = %s", (station_id,))
    row = await cur.fetchone()
    return None if row is None else forecast_out(row)


@router.get("/api/stations/{station_id}/forecast", response_model=StationForecast,
            summary="How busy the station will be, hour by hour, for the next 24 hours",
            responses={404: {"description": "no forecast for this station yet"}})
async def station_forecast(station_id: str, request: Request,
                           _: dict = Depends(require(*READERS))) -> StationForecast:
    async with request.app.state.pg.connection() as conn:
        found = await forecast_of(conn, station_id)
    if found is None:
        raise HTTPException(404, f"no forecast for station {station_id!r} yet")
    return found


class SessionForecastOut(BaseModel):
    session_id: str
    station_id: str
    started_at: datetime
    predicted_kwh: float
    predicted_duration_h: float
    expected_unplug_at: datetime = Field(..., description="the 'ready at' estimate")
    user_sessions_seen: int
    model: str


@router.get("/api/forecasts/sessions/{session_id}", response_model=SessionForecastOut,
            summary="Energy and connection time predicted at a session's start",
            responses={404: {"description": "no such session of yours, or no forecast"}})
async def session_forecast(session_id: str, request: Request,
                           who: dict = Depends(require(*READERS))) -> SessionForecastOut:
    staff = bool(set(who.get("roles", [])) & set(STAFF))
    mine = "" if staff else (" AND f.session_id IN (SELECT s.session_id FROM sessions s WHERE s.id_token IN "
                             "(SELECT uid FROM id_tokens WHERE account_id = %s))")
    params: tuple[Any, ...] = (session_id,) if staff else (session_id, str(who["sub"]))
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute("SELECT f.session_id, f.station_id, f.started_at, f.predicted_kwh, "
                                 "f.predicted_duration_h, f.expected_unplug_at, f.user_sessions_seen, f.model FROM "
                                 f"session_forecasts f WHERE f.session_id = %s{mine}", params)
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no forecast for session {session_id!r}")
    keys = ("session_id", "station_id", "started_at", "predicted_kwh", "predicted_duration_h", "expected_unplug_at",
            "user_sessions_seen", "model")
    return SessionForecastOut(**dict(zip(keys, row)))


class ChargerFault(BaseModel):
    station_id: str
    kind: str
    at: datetime
    detail: str
    session_id: str | None


@router.get("/api/operator/charger-faults", response_model=list[ChargerFault],
            summary="Suspected charger faults (behaviour unlike the charger's own history), newest first")
async def charger_faults(request: Request, station_id: str | None = Query(None, max_length=48),
                         limit: int = Query(100, ge=1, le=1000),
                         _: dict = Depends(require(*STAFF))) -> list[ChargerFault]:
    where, params = ("WHERE station_id = %s", (station_id, limit)) if station_id else ("", (limit,))
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT station_id, kind, at, detail, session_id FROM charger_faults {where} "
                                 "ORDER BY at DESC, station_id, kind LIMIT %s", params)
        rows = await cur.fetchall()
    return [ChargerFault(station_id=r[0], kind=r[1], at=r[2], detail=r[3], session_id=r[4]) for r in rows]
