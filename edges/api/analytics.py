"""Admin analytics (`GET /api/admin/analytics`): sessions, energy, revenue, utilisation per station and per hour,
peak hours of the day, and CO2 avoided, over a window of at most `MAX_WINDOW_DAYS`.

Answered from projections, never from the log: `sessions` (pg.sessions: start, stop, energy per session) and
`cdrs` (pg.billing: the priced CDR of each session), plus `connectors` (pg.stations) for capacity.  Postgres does
the heavy part (one aggregate per (station, hour) using the index on `sessions.started_at` of migration
150_analytics.sql, or `sessions_by_charger` with `station_id`); the maths below (pure, unit-tested) turns those
buckets into the answer.

How a session is counted (stated in the OpenAPI description too):
- **sessions**: a session counts in the hour it started, when it started inside the window.
- **energy**: spread over the hours the session ran, in proportion to time (a session of 30 kWh from 10:30 to
  12:30 puts 7.5 / 15 / 7.5 kWh in the 10, 11 and 12 o'clock hours); a running session counts its energy so far
  over its time so far.  Only the part inside the window counts.
- **revenue**: the CDR's total incl. VAT (excl. VAT when the CDR has none), in the hour the session started, per
  currency (never summed across currencies).  Money stays Decimal, rendered as strings.
- **utilisation**: occupied connector-time / available connector-time.  A session occupies its connector from
  start to stop (plugged-in time, charging or not).  Available time = connectors of the station (at least 1) x the
  window length; per hour, the connectors of the stations in the answer x the part of the hour inside the window.
- **peak hours**: the hours of the day (UTC) with the most occupied connector-time over the window, top 3.

CO2 avoided (per kWh charged, `co2_avoided_kg`): the petrol car's tailpipe emissions for the distance the energy
drives an EV, minus the grid's emissions for generating that energy:
    avoided_g = kWh x (KM_PER_KWH x PETROL_G_PER_KM - GRID_G_PER_KWH)
with these constants (Europe, rounded; change them here and the answer states the values it used):
- PETROL_G_PER_KM = 150 gCO2/km: a real-world average petrol car (EU type-approval averages of new cars were
  ~120-130 g/km WLTP around 2020 (EEA, "CO2 emissions from new passenger cars"); real-world consumption is ~20-40 %
  above type approval (ICCT, "From laboratory to road"); 2.31 kg CO2 per litre of petrol burnt (UK government GHG
  conversion factors) x 6.5 l/100 km = 150 g/km).
- KM_PER_KWH = 5.5: an EV using ~0.18 kWh/km measured at the charger, charging losses included (typical of
  mid-size EVs in real-world driving; WLTP figures of 0.14-0.17 kWh/km plus ~10 % charging losses).
- GRID_G_PER_KWH = 250 gCO2/kWh: average emission intensity of EU-27 electricity generation in the early 2020s
  (EEA, "Greenhouse gas emission intensity of electricity generation in Europe": ~250 g/kWh in 2022).
So each kWh avoids 5.5 x 150 - 250 = 575 g.  It is an estimate of direct (tailpipe vs generation) emissions; it
leaves out vehicle manufacture, fuel refining and grid losses, and uses one average grid for every station.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require
from edges.api.runtime import GuardedRoute

router = APIRouter(prefix="/api/admin", tags=["admin: analytics"], route_class=GuardedRoute)

MAX_WINDOW_DAYS = 92
PETROL_G_PER_KM = Decimal("150")
KM_PER_KWH = Decimal("5.5")
GRID_G_PER_KWH = Decimal("250")
KWH = Decimal("0.001")
CENT = Decimal("0.01")


# ---- pure maths ----------------------------------------------------------------------------------------------------
def co2_avoided_kg(energy_kwh: Decimal, petrol_g_per_km: Decimal = PETROL_G_PER_KM, km_per_kwh: Decimal = KM_PER_KWH,
                   grid_g_per_kwh: Decimal = GRID_G_PER_KWH) -> Decimal:
    """kg CO2 avoided by driving `energy_kwh` electrically instead of by petrol car (see the module docstring);
    negative when the grid is dirtier than the petrol car it replaces.  Three decimals (grams)."""
    grams = energy_kwh * (km_per_kwh * petrol_g_per_km - grid_g_per_kwh)
    return (grams / 1000).quantize(KWH, rounding=ROUND_HALF_UP)


def utilisation(busy_seconds: float, connectors: int, window_seconds: float) -> float:
    """Occupied connector-time over available connector-time, in [0, 1] (4 decimals); 0 for an empty window."""
    capacity = max(connectors, 1) * window_seconds
    if capacity <= 0:
        return 0.0
    return round(min(max(busy_seconds / capacity, 0.0), 1.0), 4)


def overlap_seconds(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    """Seconds of [start, end) inside [lo, hi)."""
    return max((min(end, hi) - max(start, lo)).total_seconds(), 0.0)


def hour_share_of_window(hour: datetime, lo: datetime, hi: datetime) -> float:
    """Seconds of the clock hour starting at `hour` that lie inside the window [lo, hi)."""
    return overlap_seconds(hour, hour + timedelta(hours=1), lo, hi)


def peak_hours(busy_by_hour_of_day: dict[int, float], top: int = 3) -> list[int]:
    """The hours of the day (0-23) with the most occupied time, busiest first (ties: earlier hour first); hours
    without any occupation are never peaks."""
    ranked = sorted((h for h, s in busy_by_hour_of_day.items() if s > 0), key=lambda h: (-busy_by_hour_of_day[h], h))
    return ranked[:top]


def kwh(wh: float | Decimal | None) -> Decimal:
    return (Decimal(str(wh or 0)) / 1000).quantize(KWH, rounding=ROUND_HALF_UP)


def money(total: Decimal) -> str:
    return format(total.quantize(CENT, rounding=ROUND_HALF_UP), "f")


@dataclass
class Bucket:
    """One (station, hour) aggregate as Postgres returns it."""
    station_id: str
    hour: datetime
    sessions: int = 0
    busy_seconds: float = 0.0
    energy_wh: float = 0.0
    revenue: dict[str, Decimal] = field(default_factory=dict)


def summarise(buckets: Iterable[Bucket], connectors: dict[str, int], lo: datetime, hi: datetime,
              station_limit: int) -> dict[str, Any]:
    """The analytics answer from (station, hour) buckets: totals, per station (busiest first by energy, at most
    `station_limit`), per hour (all stations together), peak hours of the day and CO2 avoided."""
    window = (hi - lo).total_seconds()
    per_station: dict[str, dict[str, Any]] = {}
    per_hour: dict[datetime, dict[str, Any]] = {}
    busy_by_hod: dict[int, float] = {}
    revenue_total: dict[str, Decimal] = {}
    for b in buckets:
        st = per_station.setdefault(b.station_id, {"sessions": 0, "busy": 0.0, "wh": 0.0, "revenue": {}})
        hr = per_hour.setdefault(b.hour, {"sessions": 0, "busy": 0.0, "wh": 0.0, "revenue": {}})
        for agg in (st, hr):
            agg["sessions"] += b.sessions
            agg["busy"] += b.busy_seconds
            agg["wh"] += b.energy_wh
            for cur, amount in b.revenue.items():
                agg["revenue"][cur] = agg["revenue"].get(cur, Decimal(0)) + amount
        for cur, amount in b.revenue.items():
            revenue_total[cur] = revenue_total.get(cur, Decimal(0)) + amount
        busy_by_hod[b.hour.hour] = busy_by_hod.get(b.hour.hour, 0.0) + b.busy_seconds
    all_connectors = sum(max(connectors.get(s, 1), 1) for s in per_station) or 1
    total_wh = sum(s["wh"] for s in per_station.values())
    stations = sorted(per_station.items(), key=lambda kv: (-kv[1]["wh"], kv[0]))
    return {
        "totals": {
            "sessions": sum(s["sessions"] for s in per_station.values()),
            "energy_kwh": format(kwh(total_wh), "f"),
            "revenue": {c: money(v) for c, v in sorted(revenue_total.items())},
            "utilisation": utilisation(sum(s["busy"] for s in per_station.values()), all_connectors, window),
            "co2_avoided_kg": format(co2_avoided_kg(kwh(total_wh)), "f"),
            "stations": len(per_station),
        },
        "per_station": [
            {"station_id": sid, "sessions": s["sessions"], "energy_kwh": format(kwh(s["wh"]), "f"),
             "revenue": {c: money(v) for c, v in sorted(s["revenue"].items())},
             "connectors": max(connectors.get(sid, 1), 1),
             "utilisation": utilisation(s["busy"], connectors.get(sid, 1), window),
             "co2_avoided_kg": format(co2_avoided_kg(kwh(s["wh"])), "f")}
            for sid, s in stations[:station_limit]],
        "per_hour": [
            {"hour": h, "sessions": v["sessions"], "energy_kwh": format(kwh(v["wh"]), "f"),
             "revenue": {c: money(x) for c, x in sorted(v["revenue"].items())},
             "utilisation": utilisation(v["busy"], all_connectors, hour_share_of_window(h, lo, hi))}
            for h, v in sorted(per_hour.items())],
        "peak_hours_utc": peak_hours(busy_by_hod),
    }


# ---- the endpoint --------------------------------------------------------------------------------------------------
class Totals(BaseModel):
    sessions: int
    energy_kwh: str = Field(..., description="decimal string, kWh")
    revenue: dict[str, str] = Field(..., description="currency -> total incl. VAT (decimal string)")
    utilisation: float = Field(..., ge=0, le=1)
    co2_avoided_kg: str
    stations: int = Field(..., description="stations with activity in the window")


class StationFigures(BaseModel):
    station_id: str
    sessions: int
    energy_kwh: str
    revenue: dict[str, str]
    connectors: int
    utilisation: float = Field(..., ge=0, le=1)
    co2_avoided_kg: str


class HourFigures(BaseModel):
    hour: datetime = Field(..., description="start of the clock hour (UTC)")
    sessions: int
    energy_kwh: str
    revenue: dict[str, str]
    utilisation: float = Field(..., ge=0, le=1)


class Co2Method(BaseModel):
    formula: str
    petrol_g_per_km: str
    km_per_kwh: str
    grid_g_per_kwh: str


class Analytics(BaseModel):
    window_from: datetime
    window_to: datetime
    station_id: str | None
    totals: Totals
    per_station: list[StationFigures]
    per_hour: list[HourFigures]
    peak_hours_utc: list[int] = Field(..., description="hours of the day (UTC) with the most occupied "
                                                       "connector-time, busiest first")
    co2_method: Co2Method


_BUCKETS = """
WITH s AS (
    SELECT se.session_id, se.charge_point_id AS station_id, se.started_at,
           GREATEST(COALESCE(se.stopped_at, LEAST(now(), %(to)s)), se.started_at) AS ended_at, se.energy_wh
    FROM sessions se
    WHERE se.started_at IS NOT NULL AND se.started_at < %(to)s
      AND COALESCE(se.stopped_at, now()) >= %(from)s {station}
), parts AS (
    SELECT s.station_id, s.started_at, s.ended_at, s.energy_wh, h AS hour,
           GREATEST(s.started_at, h, %(from)s) AS a, LEAST(s.ended_at, h + interval '1 hour', %(to)s) AS b
    FROM s, generate_series(date_trunc('hour', GREATEST(s.started_at, %(from)s), 'UTC'),
                            GREATEST(LEAST(s.ended_at, %(to)s) - interval '1 microsecond',
                                     GREATEST(s.started_at, %(from)s)),
                            interval '1 hour') AS h
)
SELECT station_id, hour,
       count(*) FILTER (WHERE started_at >= GREATEST(hour, %(from)s) AND started_at < hour + interval '1 hour'),
       coalesce(sum(GREATEST(extract(epoch FROM b - a), 0)), 0)::float8,
       coalesce(sum(CASE WHEN ended_at > started_at
                         THEN energy_wh * GREATEST(extract(epoch FROM b - a), 0) / extract(epoch FROM ended_at - started_at)
                         ELSE energy_wh END), 0)::float8
FROM parts
GROUP BY station_id, hour
"""

_REVENUE = """
SELECT se.charge_point_id, date_trunc('hour', se.started_at, 'UTC'), c.currency,
       sum(COALESCE(c.total_cost_incl_vat, c.total_cost_excl_vat))
FROM cdrs c JOIN sessions se ON se.session_id = c.session_id
WHERE se.started_at >= %(from)s AND se.started_at < %(to)s {station}
GROUP BY 1, 2, 3
"""


@router.get("/analytics", response_model=Analytics,
            summary="Sessions, energy, revenue, utilisation per station and per hour, peak hours, CO2 avoided",
            description="From the sessions and billing projections over [from, to) (at most 92 days; default: the "
                        "last 7 days). Sessions count in the hour they start; energy is spread over the hours a "
                        "session ran in proportion to time; revenue (CDR total incl. VAT, per currency) counts in "
                        "the hour the session started; utilisation = occupied connector-time / (connectors x "
                        "time). CO2 avoided = kWh x (5.5 km/kWh x 150 gCO2/km petrol car - 250 gCO2/kWh grid), "
                        "constants and sources in edges/api/analytics.py.",
            responses={403: {"description": "admins only"},
                       422: {"description": "bad window (inverted, too long, no time zone)"}})
async def analytics(request: Request,
                    from_: datetime | None = Query(None, alias="from", description="window start (ISO 8601 with "
                                                                                    "offset); default: to - 7 days"),
                    to: datetime | None = Query(None, description="window end, exclusive; default: now"),
                    station_id: str | None = Query(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@*+#-]{0,63}$",
                                                   description="one station only"),
                    station_limit: int = Query(100, ge=1, le=1000, description="at most this many stations in "
                                                                               "per_station (busiest first)"),
                    _: dict = Depends(require("admin"))) -> Analytics:
    lo, hi = window(from_, to, datetime.now(timezone.utc))
    params: dict[str, Any] = {"from": lo, "to": hi}
    station_sql = ""
    if station_id is not None:
        params["station"] = station_id
        station_sql = "AND se.charge_point_id = %(station)s"
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(_BUCKETS.format(station=station_sql), params)
        buckets = {(r[0], r[1]): Bucket(r[0], r[1].astimezone(timezone.utc), int(r[2]), float(r[3]), float(r[4]))
                   for r in await cur.fetchall()}
        cur = await conn.execute(_REVENUE.format(station=station_sql), params)
        for sid, hour, currency, total in await cur.fetchall():
            b = buckets.setdefault((sid, hour), Bucket(sid, hour.astimezone(timezone.utc)))
            b.revenue[currency] = b.revenue.get(currency, Decimal(0)) + Decimal(total)
        stations = sorted({sid for sid, _ in buckets})
        cur = await conn.execute("SELECT station_id, count(*) FROM connectors WHERE connector_id > 0 "
                                 "AND station_id = ANY(%s) GROUP BY station_id", (stations,))
        connectors = {sid: int(n) for sid, n in await cur.fetchall()}
    body = summarise(buckets.values(), connectors, lo, hi, station_limit)
    return Analytics(window_from=lo, window_to=hi, station_id=station_id, **body,
                     co2_method=Co2Method(formula="kWh x (km_per_kwh x petrol_g_per_km - grid_g_per_kwh) / 1000",
                                          petrol_g_per_km=str(PETROL_G_PER_KM), km_per_kwh=str(KM_PER_KWH),
                                          grid_g_per_kwh=str(GRID_G_PER_KWH)))


def window(from_: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The [from, to) window in UTC: defaults (to = now, from = to - 7 days), checks (HTTP 422 with the reason)."""
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a time zone offset, e.g. 2026-01-01T00:00:00Z")
    try:
        hi = (to or now).astimezone(timezone.utc)
        lo = (from_ or hi - timedelta(days=7)).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise HTTPException(422, "from/to out of the supported range of dates") from None
    if lo >= hi:
        raise HTTPException(422, "from must be before to")
    if hi - lo > timedelta(days=MAX_WINDOW_DAYS):
        raise HTTPException(422, f"the window may span at most {MAX_WINDOW_DAYS} days")
    return lo, hi
