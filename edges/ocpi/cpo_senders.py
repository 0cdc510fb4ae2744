"""Sender interfaces, CPO role, beyond Locations: our Sessions, CDRs and Tariffs (`/ocpi/cpo/2.2.1/...`), paged.

Served from the projections (never from the log): sessions from `sessions` (pg.sessions), CDRs from `cdrs`
(pg.billing, origin OWN), tariffs from `station_tariffs` (the latest version of each tariff id).  Mapped by
edges/ocpi/cpo_objects.py - the same mapping the push processor uses, so a pull and a push agree.

Who sees what: Tariffs are public to every registered eMSP.  A Session or CDR is the driver's eMSP's business
only: it is listed to a connection only when its driver token is one that connection gave us (its Tokens, kept by
the OCPI objects projection in `ocpi_tokens`).  A CDR whose `cdr_token` names a party (billing's CDRs of partner
sessions name the eMSP: streams/billing/partner.py) is listed only when that party's token is the caller's, so a
uid two eMSPs both use never shows one eMSP the other's CDR.

Paging as edges/ocpi/senders.py: `date_from` inclusive, `date_to` exclusive on the object's last update,
`offset`/`limit` with `limit` capped at CV_OCPI_PAGE_LIMIT, X-Total-Count, X-Limit, Link to the next page;
oldest first with a unique tie-breaker, so pages are stable while nothing changes.
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
from edges.ocpi.cpo_objects import session_doc, tariff_doc
from edges.ocpi.paging import PageRequest, page_headers, parse_page
from edges.ocpi.status import envelope_raw

router = APIRouter(prefix=f"/cpo/{VERSION}", tags=["CPO sender interfaces"])

#: the currency of our sessions (a Session needs one; CDRs carry the tariff's)
SESSION_CURRENCY = "EUR"


def _dates(column: str, page: PageRequest) -> tuple[str, list[Any]]:
    where, args = "", []
    if page.date_from is not None:
        where += f" AND {column} >= %s"
        args.append(page.date_from)
    if page.date_to is not None:
        where += f" AND {column} < %s"
        args.append(page.date_to)
    return where, args


async def _page(ctx: OcpiContext, request: Request, module: str, base: str, where: str, args: list[Any],
                select: str, order: str, to_doc: Any) -> Response:
    page = parse_page(request.query_params, ctx.settings.ocpi_page_limit)
    dwhere, dargs = _dates(order.split(",")[0], page)
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {base} WHERE {where} {dwhere}", [*args, *dargs])
        total = (await cur.fetchone())[0]  # type: ignore[index]
        cur = await conn.execute(f"SELECT {select} FROM {base} WHERE {where} {dwhere} ORDER BY {order} "
                                 "LIMIT %s OFFSET %s", [*args, *dargs, page.limit, page.offset])
        rows = await cur.fetchall()
    docs = [to_doc(r) for r in rows]
    body = envelope_raw("[" + ",".join(d if isinstance(d, str) else json.dumps(d, separators=(",", ":"))
                                       for d in docs) + "]")
    headers = page_headers(f"{root_url(ctx.settings)}/cpo/{VERSION}/{module}", page, total, len(docs),
                           ctx.settings.ocpi_page_limit)
    return Response(body, media_type="application/json", headers=headers)


#: the caller's tokens: a session or CDR is listed to the connection that gave us its driver's token
_CALLER_TOKEN = "EXISTS (SELECT 1 FROM ocpi_tokens t WHERE t.partner_id = %s AND t.id = upper({uid}))"


#: the caller's token, of the party the CDR's cdr_token names when it names one
_CALLER_CDR_TOKEN = (
    "EXISTS (SELECT 1 FROM ocpi_tokens t WHERE t.partner_id = %s AND t.id = upper(c.cdr -> 'cdr_token' ->> 'uid') "
    "AND (c.cdr -> 'cdr_token' ->> 'country_code' IS NULL "
    "OR t.country_code = upper(c.cdr -> 'cdr_token' ->> 'country_code')) "
    "AND (c.cdr -> 'cdr_token' ->> 'party_id' IS NULL OR t.party_id = upper(c.cdr -> 'cdr_token' ->> 'party_id')))")


@router.get("/sessions", summary="Our Sessions of the caller's drivers, paged (date_from incl., date_to excl.)")
async def list_sessions(request: Request, caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    o = ctx.settings
    party = caller.partner.first_party("EMSP") or ("", "")

    def doc(r: tuple[Any, ...]) -> dict[str, Any]:
        sid, cp, conn_id, evse_id, status, started, stopped, wh, uid, ttype, updated = r
        return session_doc(country_code=o.ocpi_country_code, party_id=o.ocpi_party_id, session_id=sid,
                           charge_point_id=cp,
                           connector_id=conn_id or evse_id, started_at=started or updated, stopped_at=stopped,
                           energy_wh=float(wh or 0), uid=uid, id_token_type=ttype, token_party=party,
                           currency=SESSION_CURRENCY, status="COMPLETED" if status == "STOPPED" else "ACTIVE",
                           last_updated=updated)

    return await _page(ctx, request, "sessions", "sessions s",
                       "s.session_id NOT LIKE 'roamed:%%' AND " + _CALLER_TOKEN.format(uid="s.id_token"),
                       [caller.partner.partner_id],
                       "s.session_id, s.charge_point_id, s.connector_id, s.evse_id, s.status, s.started_at, "
                       "s.stopped_at, s.energy_wh, s.id_token, s.id_token_type, s.updated_at",
                       "s.updated_at, s.session_id", doc)


@router.get("/cdrs", summary="Our CDRs of the caller's drivers, paged (date_from incl., date_to excl.)")
async def list_cdrs(request: Request, caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)

    def doc(r: tuple[Any, ...]) -> Any:
        cdr = r[0]
        return cdr if isinstance(cdr, dict) else json.loads(cdr)

    return await _page(ctx, request, "cdrs", "cdrs c", "c.origin = 'OWN' AND " + _CALLER_CDR_TOKEN,
                       [caller.partner.partner_id], "c.cdr", "c.priced_at, c.session_id", doc)


@router.get("/tariffs", summary="Our Tariffs (the latest version of each), paged (date_from incl., date_to excl.)")
async def list_tariffs(request: Request, _: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    o = ctx.settings

    def doc(r: tuple[Any, ...]) -> dict[str, Any]:
        tariff_id, tariff, valid_from = r
        t = tariff if isinstance(tariff, dict) else json.loads(tariff)
        return tariff_doc(t, country_code=o.ocpi_country_code, party_id=o.ocpi_party_id, tariff_id=tariff_id,
                          last_updated=valid_from)

    latest = ("(SELECT DISTINCT ON (tariff_id) tariff_id, tariff, valid_from FROM station_tariffs "
              "ORDER BY tariff_id, valid_from DESC) t")
    return await _page(ctx, request, "tariffs", latest, "TRUE", [], "t.tariff_id, t.tariff, t.valid_from",
                       "t.valid_from, t.tariff_id", doc)
