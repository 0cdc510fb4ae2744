"""Sender interfaces, CPO role: our own stations as OCPI Locations (`/ocpi/cpo/2.2.1/locations`).

Served from the `stations` and `connectors` tables of the stations projection (the OCPP side), mapped by
edges/ocpi/cpo_locations.py.  Paged: oldest update first, ties by station id, so the pages of one query are
stable while nothing changes; `limit` is capped at CV_OCPI_PAGE_LIMIT (X-Limit says so); X-Total-Count and the
Link to the next page repeat the filters.  One page is at most one SQL page: memory does not grow with the
number of stations.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, module_caller
from edges.ocpi.config import root_url
from edges.ocpi.context import OcpiContext
from edges.ocpi.cpo_locations import ConnectorRow, StationRow, location_doc
from edges.ocpi.paging import PageRequest, page_headers, parse_page
from edges.ocpi.status import OcpiError, Status, envelope_raw
from projections.postgres.ocpi_fold import extract

router = APIRouter(prefix=f"/cpo/{VERSION}", tags=["CPO sender interfaces"])

_STATION = ("s.station_id, s.name, s.operator, s.address, ST_Y(s.location::geometry), ST_X(s.location::geometry), "
            "s.online, s.updated_at")


async def _locations(ctx: OcpiContext, where: str, args: list[Any], order_limit: str = "") -> list[dict[str, Any]]:
    return (await _locations_page(ctx, where, args, order_limit))[0]


async def _locations_page(ctx: OcpiContext, where: str, args: list[Any], order_limit: str = ""
                          ) -> tuple[list[dict[str, Any]], tuple[Any, str] | None]:
    """The Location documents, and the (updated_at, station_id) of the last one (the next page's cursor)."""
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(f"SELECT {_STATION} FROM stations s WHERE s.own {where} {order_limit}", args)
        stations = [StationRow(*r) for r in await cur.fetchall()]
        if not stations:
            return [], None
        cur = await conn.execute(
            "SELECT station_id, connector_id, standard, max_power_kw, status, status_at FROM connectors "
            "WHERE station_id = ANY(%s)", ([s.station_id for s in stations],))
        conns: dict[str, list[ConnectorRow]] = {}
        for r in await cur.fetchall():
            conns.setdefault(r[0], []).append(ConnectorRow(*r[1:]))
    o = ctx.settings
    return [location_doc(s, conns.get(s.station_id, []), country_code=o.ocpi_country_code, party_id=o.ocpi_party_id,
                         country=o.ocpi_location_country, time_zone=o.ocpi_location_time_zone) for s in stations], \
        (stations[-1].updated_at, stations[-1].station_id)


def _filters(page: PageRequest) -> tuple[str, list[Any]]:
    where, args = "", []
    if page.date_from is not None:
        where += " AND s.updated_at >= %s"
        args.append(page.date_from)
    if page.date_to is not None:
        where += " AND s.updated_at < %s"
        args.append(page.date_to)
    return where, args


@router.get("/locations", summary="Our Locations, paged (date_from inclusive, date_to exclusive)")
async def list_locations(request: Request, _: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    page = parse_page(request.query_params, ctx.settings.ocpi_page_limit)
    where, args = _filters(page)
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM stations s WHERE s.own {where}", args)
        total = (await cur.fetchone())[0]  # type: ignore[index]
    if page.after is not None:  # our own next link: seek past the last location sent (edges/ocpi/paging.py)
        docs, last = await _locations_page(ctx, where + " AND (s.updated_at, s.station_id) > (%s, %s)",
                                           [*args, *page.after, page.limit],
                                           "ORDER BY s.updated_at, s.station_id LIMIT %s")
    else:
        docs, last = await _locations_page(ctx, where, [*args, page.limit, page.offset],
                                           "ORDER BY s.updated_at, s.station_id LIMIT %s OFFSET %s")
    body = envelope_raw("[" + ",".join(json.dumps(d, separators=(",", ":")) for d in docs) + "]")
    headers = page_headers(f"{root_url(ctx.settings)}/cpo/{VERSION}/locations", page, total, len(docs),
                           ctx.settings.ocpi_page_limit, last_key=last)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/locations/{location_id}")
@router.get("/locations/{location_id}/{evse_uid}")
@router.get("/locations/{location_id}/{evse_uid}/{connector_id}")
async def get_location(request: Request, location_id: str, evse_uid: str | None = None,
                       connector_id: str | None = None, _: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    docs = await _locations(ctx, "AND s.station_id = %s", [location_id])
    part = extract(docs[0], evse_uid, connector_id) if docs else None
    if part is None:
        raise OcpiError(Status.UNKNOWN_LOCATION, "no such location, EVSE or connector", 404)
    return Response(envelope_raw(json.dumps(part, separators=(",", ":"))), media_type="application/json")
