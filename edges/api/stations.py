"""Station search and detail, answered from the Postgres projection (PostGIS) and Redis live status.

The price ceiling (`max_price` with `currency`) compares the highest energy price per kWh, VAT included, that the
station's tariff in effect now can charge (every ENERGY price component of every tariff element, whatever its
time/day/power restrictions: a ceiling the driver can rely on at any hour).  That number is computed once per tariff
when the projection stores it (`station_tariffs.max_energy_price_incl_vat`, migration 145_station_prices.sql), so a
search reads one indexed row per candidate station (the primary key (station_id, valid_from)) and does no per-row
work in Python.  Stations without a tariff of ours, in another currency, or whose tariff has no per-kWh price
(time, flat or parking fees only) never pass a price ceiling: their energy price cannot be shown to be under it.

A search page is written by Postgres, not Python (`search_query`): one row holding the page's stations as JSON,
sent as the response body.  At 100 concurrent clients the API's cost per request was Python's (validating and
serialising 20 `Station` objects with their connectors), not the query's; the route keeps `response_model` so
the OpenAPI document is unchanged, and FastAPI does not re-validate a `Response`.  Invariant: the SQL writes
exactly what `Station` serialised to before (fields, order, nulls, Python's isoformat for timestamps, the price
rounded half-even to 4 places); tests/integration/test_station_search.py and the schema fuzzer
(tests/integration/test_api_fuzz.py) check it.  Known difference: numbers are JSON numbers as Postgres writes them
(`22` where pydantic wrote `22.0`), the same values.

The app's everyday searches (nearest N, a map's box: `plain_search`) are read without FastAPI's per-parameter
dependency solving, which had become most of the API's CPU per search (`SearchRoute`); the declared route still
documents the endpoint and answers every other request.  Invariant: both paths answer a query alike, the JWT
checked on every request (tests/unit/test_station_plain_search.py, tests/integration/test_station_search_plain.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Coroutine
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from edges.api.auth import bearer, principal, require
from edges.api.community import Photo, RatingSummary, photos_of, summary
from edges.api.forecasts import StationForecast, forecast_of
from edges.api.tariffs import describe
from projections.postgres.station_tariffs import tariff_at_async

router = APIRouter(prefix="/api/stations", tags=["stations"])
READERS = ("driver", "fleet_manager", "operator", "admin")
#: the role check of the search and detail endpoints (one instance: the plain search path calls it too)
readers = require(*READERS)


class Connector(BaseModel):
    connector_id: int
    standard: str | None = None
    max_power_kw: float | None = None
    status: str = Field("Unknown", description="live OCPP status; Unknown until the charger reports")
    error_code: str | None = None
    status_at: str | None = None


class StationTariff(BaseModel):
    tariff_id: str
    currency: str
    description: str = Field(..., description="the tariff in words, e.g. '0.25 EUR/kWh, 2.00 EUR/h parking'")


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
    tariff: StationTariff | None = Field(None, description="the tariff in effect now (station detail only)")
    max_energy_price_incl_vat: str | None = Field(
        None, description="with `max_price` only: the highest energy price per kWh incl. VAT of the tariff in "
                          "effect now (decimal string, in `currency`)")
    ratings: "RatingSummary | None" = Field(None, description="visible ratings: average and count (detail only)")
    photos: "list[Photo] | None" = Field(None, description="newest visible photos (detail only, at most 10)")
    forecast: "StationForecast | None" = Field(
        None, description="expected occupied connectors per hour for the next 24 h (detail only; absent until "
                          "the forecasts processor has learned the station)")



Station.model_rebuild()


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


_CONNECTORS = ("(SELECT json_agg(json_build_array(c.connector_id, c.standard, c.max_power_kw, c.status, "
               "c.error_code, c.status_at) ORDER BY c.connector_id) FROM connectors c "
               "WHERE c.station_id = s.station_id AND c.connector_id > 0)")


def _iso(col: str) -> str:
    """SQL writing a timestamptz as Python's `isoformat()` does (microseconds only when there are some), so a
    page built by Postgres reads exactly as one built from Python objects; NULL stays NULL."""
    return (f"(to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {col})::bigint "
            f"%% 1000000 <> 0 THEN to_char({col}, '.US') ELSE '' END || to_char({col}, 'TZH:TZM'))")


#: the price as a decimal string with 4 places, rounded half to even like `Decimal.quantize` (Postgres' round()
#: rounds half away from zero); a negative price rounding to zero keeps its sign, as Decimal does
_HALF_EVEN_4 = ("(CASE WHEN (abs(tp.price) * 100000) %% 10 = 5 AND trunc(abs(tp.price) * 10000) %% 2 = 0 "
                "THEN trunc(tp.price, 4) ELSE round(tp.price, 4) END)")
_PRICE_TEXT = (f"(CASE WHEN tp.price < 0 AND {_HALF_EVEN_4} = 0 THEN '-0.0000' ELSE {_HALF_EVEN_4}::text END)")


def _item(point: str, price: str) -> str:
    """SQL building one search result as compact JSON: the fields, order and values of `Station` as the search
    returns it (connectors with their projected status, by connector id; detail-only fields null)."""
    return ("(SELECT row_to_json(x) FROM (SELECT s.station_id, s.name, s.operator, s.address, "
            "ST_Y(s.location::geometry) AS latitude, ST_X(s.location::geometry) AS longitude, "
            f"round(ST_Distance(s.location, {point})::numeric, 1) AS distance_m, s.online, s.vendor, s.model, "
            f"s.firmware_version, {_iso('s.last_heartbeat_at')} AS last_heartbeat_at, "
            "(SELECT coalesce('[' || string_agg(row_to_json(c2)::text, ',' ORDER BY c2.connector_id) || ']', "
            "'[]')::json FROM (SELECT c.connector_id, c.standard, c.max_power_kw, "
            "coalesce(nullif(c.status, ''), 'Unknown') AS status, c.error_code, c.status_at "
            "FROM connectors c WHERE c.station_id = s.station_id AND c.connector_id > 0) c2) "
            f"AS connectors, NULL AS tariff, {price} AS max_energy_price_incl_vat, NULL AS ratings, "
            "NULL AS photos, NULL AS forecast) x)")


async def _with_live(request: Request, rows: list[tuple[Any, ...]], distances: list[float | None]) -> list[Station]:
    """Stations from rows (whose last column is their connectors as JSON), with live status from Redis: the
    station detail.  Search pages take the status from Postgres (the same events project it), see `_item`."""
    if not rows:
        return []
    pipe = request.app.state.redis.pipeline(transaction=False)
    for r in rows:
        pipe.hgetall(f"cv:station:{r[0]}")
        pipe.hgetall(f"cv:connectors:{r[0]}")
    live = await pipe.execute()
    out = []
    for i, r in enumerate(rows):
        station_live, conn_live = live[2 * i], live[2 * i + 1]
        connectors = []
        for cid, standard, max_kw, st, err, st_at in r[11] or ():
            lv = json.loads(conn_live.get(str(cid), "null") or "null") or {}
            connectors.append(Connector(connector_id=cid, standard=standard, max_power_kw=max_kw,
                                        status=lv.get("status") or st or "Unknown",
                                        error_code=lv.get("error_code") or err,
                                        status_at=lv.get("status_at") or st_at))
        online = station_live.get("online", "1" if r[6] else "0") == "1"
        out.append(Station(station_id=r[0], name=r[1], operator=r[2], address=r[3], latitude=r[4], longitude=r[5],
                           distance_m=distances[i], online=online, vendor=r[7], model=r[8],
                           firmware_version=r[9],
                           last_heartbeat_at=station_live.get("last_heartbeat_at") or
                           (r[10].isoformat() if r[10] else None),
                           connectors=connectors))
    return out


def _parse_bbox(bbox: str) -> tuple[float, float, float, float]:
    try:
        a, b, c, d = (float(x) for x in bbox.split(","))
    except ValueError:
        raise HTTPException(422, "bbox must be 'min_lat,min_lon,max_lat,max_lon', e.g. bbox=52.3,4.8,52.4,5.0") \
            from None
    if not (-90 <= a <= c <= 90 and -180 <= b <= 180 and -180 <= d <= 180 and b <= d):
        raise HTTPException(422, "bbox out of range or inverted: need -90<=min_lat<=max_lat<=90 and "
                                 "-180<=min_lon<=max_lon<=180")
    return a, b, c, d


#: connector standards as OCPI 2.2.1 names them (ConnectorType); the search filter accepts exactly these
STANDARDS = ("CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E",
             "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L",
             "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16",
             "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1",
             "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C",
             "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30", "NEMA_14_50",
             "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S")


def search_query(*, near: str | None = None, radius: float | None = None, bbox: str | None = None,
                 connector: list[str] | None = None, min_power_kw: float | None = None, available: bool = False,
                 operator: str | None = None, online: bool | None = None, max_price: Decimal | None = None,
                 currency: str = "EUR", limit: int = 20, offset: int = 0) -> tuple[str, dict[str, Any]]:
    """The SQL (and its parameters) of one search page: one row, one text column holding the page's items as
    JSON objects joined by commas (NULL when there are none).  HTTPException 422 for a query that cannot be
    served.  bench/station_search.py sends this very SQL straight to PostGIS as the API's floor."""
    if near is None and bbox is None:
        raise HTTPException(422, "give near=lat,lon (with radius) or bbox=min_lat,min_lon,max_lat,max_lon")
    for c in connector or ():
        if c not in STANDARDS:
            raise HTTPException(422, f"unknown connector standard {c!r}; use OCPI ConnectorType names")
    where = ["s.location IS NOT NULL"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if near is not None:
        params["lat"], params["lon"] = _parse_near(near)
        if radius is not None:
            params["r"] = radius
            where.append("ST_DWithin(s.location, ST_MakePoint(%(lon)s, %(lat)s)::geography, %(r)s)")
    if bbox is not None:
        a, b, c_, d = _parse_bbox(bbox)
        params.update(min_lat=a, min_lon=b, max_lat=c_, max_lon=d)
        where.append("s.location && ST_MakeEnvelope(%(min_lon)s, %(min_lat)s, %(max_lon)s, %(max_lat)s, 4326)"
                     "::geography")
        if near is None:
            params["lat"], params["lon"] = (a + c_) / 2, (b + d) / 2
    conn_where = []
    if connector:
        params["standards"] = list(connector)
        conn_where.append("c.standard = ANY(%(standards)s)")
    if min_power_kw is not None:
        params["min_kw"] = min_power_kw
        conn_where.append("c.max_power_kw >= %(min_kw)s")
    if available:
        conn_where.append("c.status = 'Available'")
    if conn_where:
        where.append("EXISTS (SELECT 1 FROM connectors c WHERE c.station_id = s.station_id AND c.connector_id > 0 "
                     "AND " + " AND ".join(conn_where) + ")")
    if operator is not None:
        params["operator"] = operator
        where.append("s.operator = %(operator)s")
    if online is not None:
        params["online"] = online
        where.append("s.online = %(online)s")
    price_item, price_join = "NULL", ""
    if max_price is not None:
        params["max_price"], params["currency"] = max_price, currency
        # the tariff in effect now: one primary-key probe per candidate, the price precomputed on the row
        price_join = ("JOIN LATERAL (SELECT t.max_energy_price_incl_vat AS price, t.currency FROM station_tariffs t "
                      "WHERE t.station_id = s.station_id AND t.valid_from <= now() "
                      "ORDER BY t.valid_from DESC LIMIT 1) tp ON true ")
        where.append("tp.currency = %(currency)s AND tp.price <= %(max_price)s")
        price_item = _PRICE_TEXT
    point = "ST_MakePoint(%(lon)s, %(lat)s)::geography"
    query = (f"SELECT string_agg(q.j::text, ',' ORDER BY q.k) FROM (SELECT {_item(point, price_item)} "
             f"AS j, s.location <-> {point} AS k FROM stations s {price_join}WHERE {' AND '.join(where)} "
             # distance only: a second sort key would stop PostGIS walking the GiST index in distance order
             f"ORDER BY s.location <-> {point} LIMIT %(limit)s OFFSET %(offset)s) q")
    return query, params


#: the plain search's parameters: the app's own requests (nearest N, a map's box), read without FastAPI's
#: per-parameter machinery.  Values are taken only when they are unambiguous (digits, in range); anything else
#: (a filter, a repeated or empty parameter, `limit=1e3`) goes to the declared route, which validates as before.
_PLAIN = frozenset(("near", "bbox", "radius", "limit", "offset"))
_DIGITS = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


def plain_search(query_string: bytes) -> dict[str, Any] | None:
    """The search's arguments when the query string holds only `near`, `bbox`, `radius`, `limit` and `offset`,
    each once, non-empty, numbers as plain digits within the declared bounds; None for anything else.

    Invariant: for every query string it accepts, the arguments equal what FastAPI's validation of the declared
    parameters (`search` below) produces; tests/unit/test_station_plain_search.py checks this against FastAPI."""
    seen: dict[str, str] = {}
    # exactly as Starlette reads a query string (Request.query_params)
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key not in _PLAIN or key in seen or not value:
            return None
        seen[key] = value
    out: dict[str, Any] = {"near": seen.get("near"), "bbox": seen.get("bbox"), "radius": None, "limit": 20,
                           "offset": 0}
    for key in ("limit", "offset"):
        if key in seen:
            if not _DIGITS.fullmatch(seen[key]):
                return None
            out[key] = int(seen[key])
    if not (1 <= out["limit"] <= 200 and 0 <= out["offset"] <= 100_000):
        return None
    if "radius" in seen:
        if not _DECIMAL.fullmatch(seen["radius"]):
            return None
        out["radius"] = float(seen["radius"])
        if not 0 < out["radius"] <= 500_000:
            return None
    return out


class SearchRoute(APIRoute):
    """The search route: plain searches (`plain_search`) are answered without FastAPI's dependency solving,
    every other request by the route as declared.

    Why: at 100 concurrent clients the search's cost per request was FastAPI's, not the query's.  Resolving the
    thirteen declared query parameters and the auth dependencies one by one took about half of the API's CPU per
    search (a profile of 2,000 searches, bench/station_search.py).  The declaration stays the one source of the
    OpenAPI document and of every error answer; a plain search is authenticated by the same calls the declared
    dependencies make (`bearer`, `principal`, `readers`: the JWT is checked on every request) and answered by the
    same `search_page`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            args = plain_search(request.scope.get("query_string", b""))
            if args is None:
                return await declared(request)
            await readers(await principal(request, await bearer(request)))
            return await search_page(request, **args)

        return handler


async def search_page(request: Request, **filters: Any) -> Response:
    """One search page as the response: the SQL of `search_query`, the JSON Postgres wrote, sent as it came."""
    query, params = search_query(**filters)
    async with request.app.state.pg_read.connection() as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    items = row[0] if row is not None and row[0] is not None else ""
    # the page as Postgres wrote it: no Python object per station, no second validation pass (the items follow
    # `Station`, which the OpenAPI document still declares; tests/integration/test_api_fuzz.py checks the match)
    limit, offset = params["limit"], params["offset"]
    return Response(f'{{"items":[{items}],"limit":{limit},"offset":{offset}}}', media_type="application/json")


async def search(request: Request,
                 near: str | None = Query(None, description="lat,lon in decimal degrees (WGS84)",
                                          examples=["52.37,4.89"]),
                 radius: float | None = Query(None, gt=0, le=500_000,
                                              description="metres around `near`; default: no bound (the "
                                                          "nearest stations, however far)"),
                 bbox: str | None = Query(None, description="min_lat,min_lon,max_lat,max_lon",
                                          examples=["52.3,4.8,52.4,5.0"]),
                 connector: list[str] | None = Query(None, description="connector standard(s), OCPI names, "
                                                                        "e.g. IEC_62196_T2_COMBO"),
                 min_power_kw: float | None = Query(None, ge=0, le=2000),
                 available: bool = Query(False, description="only stations with a connector Available now"),
                 operator: str | None = Query(None, min_length=1, max_length=120,
                                              description="network / operator name (exact)"),
                 online: bool | None = Query(None, description="only online (true) or offline (false) stations"),
                 max_price: Decimal | None = Query(
                     None, ge=0, le=1000, max_digits=10, decimal_places=4,
                     description="price ceiling: only stations whose tariff in effect now never charges more than "
                                 "this per kWh of energy, VAT included (the highest ENERGY price component over "
                                 "all tariff elements, whatever their time/day/power restrictions). Stations "
                                 "without a tariff, in another currency, or with no per-kWh price are left out."),
                 currency: str = Query("EUR", pattern=r"^[A-Z]{3}$",
                                       description="ISO 4217 currency of `max_price` (tariffs in another currency "
                                                   "are left out)"),
                 limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=100_000),
                 _: dict = Depends(readers)) -> Response:
    return await search_page(request, near=near, radius=radius, bbox=bbox, connector=connector,
                             min_power_kw=min_power_kw, available=available, operator=operator, online=online,
                             max_price=max_price, currency=currency, limit=limit, offset=offset)


router.add_api_route(
    "", search, methods=["GET"], route_class_override=SearchRoute, response_model=StationPage,
    summary="Search stations near a point or in a bounding box, nearest first",
    description="Give `near` (optionally with `radius`) or `bbox` (or both). Filters combine with AND; connector "
                "filters (`connector`, `min_power_kw`, `available`) must hold for one and the same "
                "connector. Results are sorted by distance from `near` (or from the bbox centre), "
                "paginated with `limit`/`offset`. Without `radius`, `near` returns the nearest stations "
                "however far (an index walk in distance order: fast at any density).")


@router.get("/{station_id}", response_model=Station,
            summary="One station with connectors, live status, tariff in words, ratings, photos and forecast",
            responses={404: {"description": "no such station"}})
async def detail(station_id: str, request: Request, p: dict = Depends(readers)) -> Station:
    async with request.app.state.pg_read.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLUMNS}, {_CONNECTORS} FROM stations s WHERE s.station_id = %s",
                                 (station_id,))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, f"no station {station_id!r}")
        t = await tariff_at_async(conn, station_id, datetime.now(timezone.utc))
        forecast = await forecast_of(conn, station_id)
    station = (await _with_live(request, [row], [None]))[0]
    station.forecast = forecast
    if t is not None:
        tariff = t["tariff"] if isinstance(t["tariff"], dict) else json.loads(t["tariff"])
        station.tariff = StationTariff(tariff_id=t["tariff_id"], currency=t["currency"],
                                       description=describe(tariff))
    station.ratings = await summary(request, station_id)
    station.photos = await photos_of(request, station_id, str(p["sub"]), limit=10)
    return station
