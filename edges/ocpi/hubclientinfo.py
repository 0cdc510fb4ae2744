"""HubClientInfo (OCPI 2.2.1 §19), both interfaces, whatever roles we play.  A configuration module: no routing
headers (edges/ocpi/headers.py), one URL for the platform: `/ocpi/2.2.1/hubclientinfo`.

- Receiver: `PUT`/`GET /hubclientinfo/{country_code}/{party_id}` - a hub tells us which parties behind it can be
  reached (CONNECTED, OFFLINE, PLANNED, SUSPENDED).  Published verbatim as OcpiObjectReceived (module
  hubclientinfo) like every push (edges/ocpi/receivers.py: validation, nothing half-applied, 2001 on bad input),
  kept by the OCPI objects projection in `ocpi_hub_clients`.  A hub connection may report any party; any other
  connection only its own parties.
- Sender: `GET /hubclientinfo` - the parties connected to us, from our partner state: REGISTERED connections'
  parties are CONNECTED, onboarded ones PLANNED, deleted ones SUSPENDED.  Paged like every list.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, module_caller
from edges.ocpi.config import root_url
from edges.ocpi.paging import page_headers, parse_page
from edges.ocpi.receivers import _get, _push
from edges.ocpi.status import envelope_raw, ocpi_timestamp
from projections.postgres.ocpi_objects import CLIENT_INFO_ID

router = APIRouter(prefix=f"/{VERSION}/hubclientinfo", tags=["hubclientinfo"])

STATUS = {"REGISTERED": "CONNECTED", "ONBOARDED": "PLANNED", "DELETED": "SUSPENDED"}


@router.put("/{country_code}/{party_id}", summary="A hub reports a party's connection status")
async def put_client_info(request: Request, country_code: str, party_id: str,
                          caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="hubclientinfo", method="PUT", cc=country_code, pid=party_id,
                       oid=CLIENT_INFO_ID)


@router.get("/{country_code}/{party_id}", summary="The ClientInfo a connection reported for a party")
async def get_client_info(request: Request, country_code: str, party_id: str,
                          caller: Caller = Depends(module_caller)) -> Response:
    return await _get(request, caller, "hubclientinfo", country_code, party_id, CLIENT_INFO_ID)


@router.get("", summary="The parties connected to us, with their status (paged)")
async def list_client_info(request: Request, _: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    page = parse_page(request.query_params, ctx.settings.ocpi_page_limit)
    where, args = "", []
    if page.date_from is not None:
        where += " AND p.updated_at >= %s"
        args.append(page.date_from)
    if page.date_to is not None:
        where += " AND p.updated_at < %s"
        args.append(page.date_to)
    base = f"FROM ocpi_partner_roles r JOIN ocpi_partners p USING (partner_id) WHERE TRUE {where}"
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) {base}", args)
        total = (await cur.fetchone())[0]  # type: ignore[index]
        cur = await conn.execute(f"SELECT r.country_code, r.party_id, r.role, p.state, p.updated_at {base} "
                                 "ORDER BY p.updated_at, r.partner_id, r.role, r.country_code, r.party_id "
                                 "LIMIT %s OFFSET %s", [*args, page.limit, page.offset])
        rows = await cur.fetchall()
    docs: list[dict[str, Any]] = [{"party_id": pid, "country_code": cc, "role": role,
                                   "status": STATUS.get(state, "OFFLINE"), "last_updated": ocpi_timestamp(at)}
                                  for cc, pid, role, state, at in rows]
    body = envelope_raw(json.dumps(docs, separators=(",", ":")))
    headers = page_headers(f"{root_url(ctx.settings)}/{VERSION}/hubclientinfo", page, total, len(docs),
                           ctx.settings.ocpi_page_limit)
    return Response(body, media_type="application/json", headers=headers)
