"""Tokens sender interface, eMSP role (`/ocpi/emsp/2.2.1/tokens`): our drivers' tokens, and real-time
authorization.

GET (paged like every list: edges/ocpi/paging.py): every row of `id_tokens` (written by the identity projection)
as an OCPI Token (edges/ocpi/our_tokens.py), oldest `last_updated` first, ties by uid - stable pages while nothing
changes; one page is one SQL page.

POST `{uid}/authorize[?type=RFID]` with an optional LocationReferences body: decided here, synchronously, from
`id_tokens` (DESIGN.md §1) and answered HTTP 200 with AuthorizationInfo whatever the decision; an unknown uid (or
one of another type) is HTTP 404 + 2004.  Every decision - unknown tokens included - is published as
OcpiTokenAuthorized on `ocpi.inbound` *before* the answer leaves, so the log holds exactly what each CPO was told;
if the log cannot take it the CPO gets 3000 (HTTP 503) and nothing was decided.  A malformed body is HTTP 400
(not JSON) or 2001, with no decision.

Plug & Charge: a uid that is one of our contracts' eMAIDs (any spelling edges/pnc/roaming.py accepts) is looked up
in its normal form and decided by edges/pnc/roaming.py - certificate status, the account's token, fleet rules
(budget: NO_CREDIT; stations/networks: NOT_ALLOWED at the CPO's location) - the rules OCPP 2.0.1 Authorize with
certificate hash data applies at our own chargers.  Contract tokens answer to type OTHER (and 2.3.0's EMAID);
when the fleet rules need a location and none was given: 2002, with no decision.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from chargeverse.events import envelope as event_envelope
from chargeverse.kafka import DeliveryError
from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, module_caller
from edges.ocpi.config import root_url
from edges.ocpi.context import OcpiContext
from edges.ocpi.events import object_key
from edges.ocpi.headers import CORRELATION_ID, REQUEST_ID, new_id
from edges.ocpi.our_tokens import (ALLOWED, LAST_UPDATED_SQL, UNKNOWN_TOKEN, BadLocationReferences, IdTokenRow,
                                   authorization_info, decide, location_references, token_doc, type_matches)
from edges.ocpi.paging import page_headers, parse_page
from edges.ocpi.status import OcpiError, Status, envelope_raw
from edges.ocpp.context import TokenRecord
from edges.pnc import roaming
from projections.postgres.ocpi_fold import loads

log = logging.getLogger(__name__)
router = APIRouter(prefix=f"/emsp/{VERSION}", tags=["eMSP sender interfaces"])

_COLS = ("t.uid, t.type, t.contract_id, t.account_id, t.status, t.valid_until, t.group_id, t.updated_at, "
         "EXISTS (SELECT 1 FROM pnc_enrolments e WHERE e.emaid = t.uid)")


def _doc(ctx: OcpiContext, row: IdTokenRow, now: datetime) -> dict:
    return token_doc(row, country_code=ctx.settings.ocpi_country_code, party_id=ctx.settings.ocpi_party_id,
                     issuer=ctx.settings.ocpi_business_name, now=now)


def _json(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


@router.get("/tokens", summary="Our drivers' tokens, paged (date_from inclusive, date_to exclusive)")
async def list_tokens(request: Request, _: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    page = parse_page(request.query_params, ctx.settings.ocpi_page_limit)
    now = ctx.clock()
    args: dict[str, object] = {"now": now, "limit": page.limit, "offset": page.offset}
    where = ""
    if page.date_from is not None:
        where += f" AND {LAST_UPDATED_SQL} >= %(date_from)s"
        args["date_from"] = page.date_from
    if page.date_to is not None:
        where += f" AND {LAST_UPDATED_SQL} < %(date_to)s"
        args["date_to"] = page.date_to
    async with ctx.pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM id_tokens t WHERE true {where}", args)
        total = (await cur.fetchone())[0]  # type: ignore[index]
        cur = await conn.execute(f"SELECT {_COLS} FROM id_tokens t WHERE true {where} "
                                 f"ORDER BY {LAST_UPDATED_SQL}, t.uid LIMIT %(limit)s OFFSET %(offset)s", args)
        rows = [IdTokenRow(*r) for r in await cur.fetchall()]
    body = envelope_raw("[" + ",".join(_json(_doc(ctx, r, now)) for r in rows) + "]")
    headers = page_headers(f"{root_url(ctx.settings)}/emsp/{VERSION}/tokens", page, total, len(rows),
                           ctx.settings.ocpi_page_limit)
    return Response(body, media_type="application/json", headers=headers)


@router.post("/tokens/{token_uid}/authorize", summary="Real-time authorization of one of our tokens")
async def authorize(request: Request, token_uid: str,
                    type: str = Query("RFID", description="the token type"),  # noqa: A002
                    caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    raw = await request.body()
    body = None
    if raw.strip():
        try:
            body = loads(raw)
        except ValueError as exc:
            raise OcpiError(Status.INVALID_PARAMETERS, f"the body is not JSON: {exc}", 400) from None
    try:
        location = location_references(body)
    except BadLocationReferences as exc:
        raise OcpiError(Status.INVALID_PARAMETERS, f"not LocationReferences: {exc}") from None
    token_type = type.upper()
    now = ctx.clock()
    verdict = None
    async with ctx.pool.connection() as conn:
        uid = await roaming.contract_uid(conn, token_uid, ctx.settings.pnc_check_digit_policy) or token_uid
        cur = await conn.execute(f"SELECT {_COLS} FROM id_tokens t WHERE t.uid = %s", (uid,))
        found = await cur.fetchone()
        row = IdTokenRow(*found) if found else None
        if row is not None and not type_matches(row, token_type):
            row = None
        if row is not None and row.pnc:
            cpo = caller.route.sender or caller.partner.first_party("CPO")
            try:
                verdict = await roaming.contract_verdict(
                    conn, emaid=row.uid, token=TokenRecord(row.uid, row.type, row.status, row.valid_until,
                                                           row.group_id, row.contract_id, row.account_id),
                    cpo=cpo, location_id=location[0] if location else None, now=now)
            except roaming.NeedLocation as exc:
                raise OcpiError(Status.NOT_ENOUGH_INFORMATION, str(exc)) from None
    reference, reason, answer = None, None, None
    if row is None:
        allowed, reason = UNKNOWN_TOKEN, f"no {token_type} token {token_uid} of ours"
    else:
        allowed, reason = (verdict.allowed, verdict.reason) if verdict is not None else decide(row, now)
        reference = uuid.uuid4().hex if allowed == ALLOWED else None
        answer = authorization_info(allowed, _doc(ctx, row, now), reference=reference, location=location,
                                    reason=reason)
    rec = event_envelope(source=ctx.source, correlation_id=request.headers.get(CORRELATION_ID) or new_id())
    sender = caller.route.sender
    rec.update(platform_id=ctx.settings.ocpi_platform_id, partner_id=caller.partner.partner_id, token_uid=token_uid,
               token_type=token_type, allowed=allowed, authorization_reference=reference,
               location_id=location[0] if location else None, evse_uids=location[1] if location else [],
               account_id=row.account_id if row else None, reason=reason,
               request=raw.decode("utf-8", errors="replace"), answer=_json(answer) if answer else None,
               request_id=request.headers.get(REQUEST_ID), from_country_code=sender[0] if sender else None,
               from_party_id=sender[1] if sender else None)
    key = object_key(caller.partner.partner_id, "tokens", ctx.settings.ocpi_country_code, ctx.settings.ocpi_party_id,
                     token_uid, token_type)
    try:
        await ctx.publish(key, "OcpiTokenAuthorized", rec)
    except DeliveryError:
        log.exception("authorize %s for %s: the decision is not on the log", token_uid, caller.partner.partner_id)
        raise OcpiError(Status.SERVER_ERROR, "cannot record the decision now; retry", 503) from None
    log.info("partner %s: authorize %s %s -> %s", caller.partner.partner_id, token_type, token_uid, allowed)
    if answer is None:
        raise OcpiError(Status.UNKNOWN_TOKEN, reason or "unknown token", 404)
    return Response(envelope_raw(rec["answer"]), media_type="application/json")
