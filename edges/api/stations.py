"""Station search and detail, answered from the Postgres projection (PostGIS) and Redis live status."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require

router = APIRouter(prefix="/api/stations", tags=["stations"])
READERS = ("driver", "fleet_manager", "operator", "admin")


class Connector(BaseModel):
    connector_id: int
    standard: str | None = None
    max_power_kw: float | None = None
    status: str = Field("Unknown", description="live OCPP status; Unknown until the charger reports")
    error_code: str | None = None
    status_at: str | None = None


class Station(BaseModel):
    station_id: str
    name: str | None
    operator: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    distance_m: float | None = Field(None, description="distance from `near`, when searching")
    online: bool
    vendor: str | None = None
    model: str | None = None
    firmware_version: str | None = None
    last_heartbeat_at: str | None = None
    connectors: list[Connector] = []


class StationPage(BaseModel):
    items: list[Station]
    limit: int
    offset: int


def _parse_near(near: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = near.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise HTTPException(422, "near must be 'lat,lon' in decimal degrees, e.g. near=52.37,4.89") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise HTTPException(422, "near is out of range: latitude in [-90, 90], longitude in [-180, 180]")
    return lat, lon


_COLUMNS = ("s.station_id, s.name, s.operator, s.address, ST_Y(s.location::geometry), ST_X(s.location::geometry), "
            "s.online, s.vendor, s.model, s.firmware_version, s.last_heartbeat_at")


async def _with_live(request: Request, rows: list[tuple[Any, ...]], distances: list[float | None]) -> list[Station]:
    """Stations from rows, with connectors from Postgres and live status from Redis."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    pool = request.app.state.pg
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT station_id, connector_id, standard, max_power_kw, status, error_code, "
                                 "status_at FROM connectors WHERE station_id = ANY(%s) "
                                 "ORDER BY station_id, connector_id", (ids,))
        conns = await cur.fetchall()
    redis = request.app.state.redis
    pipe = redis.pipeline(transaction=False)
    for sid in ids:
        pipe.hgetall(f"cv:station:{sid}")
        pipe.hgetall(f"cv:connectors:{sid}")
    live = await pipe.execute()
    out = []
    for i, r in enumerate(rows):
        station_live, conn_live = live[2 * i], live[2 * i + 1]
        connectors = []
        for c in conns:
            if c[0] != r[0] or c[1] == 0:
                continue
            lv = json.loads(conn_live.get(str(c[1]), "null") or "null") or {}
            connectors.append(Connector(connector_id=c[1], standard=c[2], max_power_kw=c[3],
                                        status=lv.get("status") or c[4] or "Unknown",
                                        error_code=lv.get("error_code") or c[5],
                                        status_at=lv.get("status_at") or (c[6].isoformat() if c[6] else None)))
        online = station_live.get("online", "1" if r[6] else "0") == "1"
        out.append(Station(station_id=r[0], name=r[1], operator=r[2], address=r[3], latitude=r[4], longitude=r[5],
                           distance_m=distances[i], online=online, vendor=r[7], model=r[8],
                           firmware_version=r[9],
                           last_heartbeat_at=station_live.get("last_heartbeat_at") or
                           (r[10].isoformat() if r[10] else None),
                           connectors=connectors))
    return out


@router.get("", response_model=StationPage, summary="Search stations near a point, nearest first")
async def search(request: Request,
                 near: str = Query(..., description="lat,lon in decimal degrees (WGS84)", examples=["52.37,4.89"]),
                 radius: float = Query(5000, gt=0, le=500_000, description="metres"),
                 limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=100_000),
                 _: dict = Depends(require(*READERS))) -> StationPage:
    lat, lon = _parse_near(near)
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS}, ST_Distance(s.location, ST_MakePoint(%(lon)s, %(lat)s)::geography) AS d "
            "FROM stations s WHERE s.location IS NOT NULL "
            "AND ST_DWithin(s.location, ST_MakePoint(%(lon)s, %(lat)s)::geography, %(r)s) "
            "ORDER BY s.location <-> ST_MakePoint(%(lon)s, %(lat)s)::geography, s.station_id "
            "LIMIT %(limit)s OFFSET %(offset)s",
            {"lat": lat, "lon": lon, "r": radius, "limit": limit, "offset": offset})
        rows = await cur.fetchall()
    items = await _with_live(request, [r[:-1] for r in rows], [round(r[-1], 1) for r in rows])
    return StationPage(items=items, limit=limit, offset=offset)


@router.get("/{station_id}", response_model=Station, summary="One station with connectors and live status",
            responses={404: {"description": "no such station"}})
async def detail(station_id: str, request: Request, _: dict = Depends(require(*READERS))) -> Station:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM stations s WHERE s.station_id = %s", (station_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no station {station_id!r}")
    return (await _with_live(request, [row], [None]))[0]
