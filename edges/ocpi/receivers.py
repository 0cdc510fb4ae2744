"""Receiver interfaces: what partners push to us, and GET of what we hold for them.

eMSP role (`/ocpi/emsp/2.2.1/...`): Locations (PUT/PATCH of Location, EVSE, Connector), Sessions (PUT/PATCH), CDRs
(POST), Tariffs (PUT/DELETE).  CPO role (`/ocpi/cpo/2.2.1/tokens`): eMSPs' driver Tokens (PUT/PATCH).

Every push addressed to a party of the connection is published verbatim as OcpiObjectReceived on `ocpi.inbound`
- valid or not, so the log holds everything a partner sent - and only valid ones change the projection.  The
answer waits until the objects projection has applied the push, so the partner's next request (a PATCH right
after its PUT, a GET to check) sees it.  The order of checks, each answering before anything is applied:
1. the party in the URL is one of the connection's (else HTTP 404, nothing published: not theirs to write);
2. the body is JSON (else HTTP 400 + 2001) and passes edges/ocpi/models.py (else 2001 with every error);
3. the ids in the body match the URL (else 2001);
4. the target of a PATCH, or the Location of an EVSE/Connector PUT, exists (else 2003 unknown location; 2004 for
   an unknown Token; HTTP 404).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, module_caller
from edges.ocpi.config import root_url
from edges.ocpi.context import OBJECTS, OcpiContext
from edges.ocpi.events import object_key, object_received
from edges.ocpi.headers import CORRELATION_ID, REQUEST_ID, new_id
from edges.ocpi.models import check
from edges.ocpi.status import OcpiError, Status, envelope_raw
from edges.ocpi.store import object_doc
from projections.postgres.ocpi_fold import ci, dumps, extract, find_evse, loads

log = logging.getLogger(__name__)

emsp = APIRouter(prefix=f"/emsp/{VERSION}", tags=["eMSP receiver interfaces"])
cpo = APIRouter(prefix=f"/cpo/{VERSION}", tags=["CPO receiver interfaces"])

#: the module -> the credentials roles whose objects it carries
OWNER_ROLES: dict[str, tuple[str, ...] | None] = {
    "locations": ("CPO",), "sessions": ("CPO",), "cdrs": ("CPO",), "tariffs": ("CPO",), "tokens": ("EMSP",),
    # HubClientInfo: a hub reports any party it relays; another connection only its own parties (any role)
    "hubclientinfo": None}
#: module -> the id field of its objects (None: the URL names only the party)
ID_FIELD: dict[str, str | None] = {"locations": "id", "sessions": "id", "cdrs": "id", "tariffs": "id",
                                   "tokens": "uid", "hubclientinfo": None}
KIND = {"sessions": "session", "cdrs": "cdr", "tariffs": "tariff", "tokens": "token",
        "hubclientinfo": "clientinfo"}


def ok(data_json: str | None = None, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(envelope_raw(data_json), status_code=status_code, media_type="application/json",
                    headers=headers)


def _owner_check(caller: Caller, module: str, cc: str, pid: str) -> None:
    if not caller.partner.speaks_for(cc, pid, OWNER_ROLES[module]):
        roles = OWNER_ROLES[module]
        raise OcpiError(Status.INVALID_PARAMETERS, f"{cc}/{pid} is not a {'/'.join(roles) if roles else ''} "
                        "party of this connection".replace("a  party", "a party"), 404)


def _key(caller: Caller, module: str, cc: str, pid: str, oid: str, token_type: str | None = None) -> tuple[str, ...]:
    k = (caller.partner.partner_id, ci(cc), ci(pid), ci(oid))
    return k + (ci(token_type or "RFID"),) if module == "tokens" else k


def _ids_mismatch(body: dict[str, Any], expect: dict[str, str]) -> list[str]:
    out = []
    for f, want in expect.items():
        got = body.get(f)
        if got is not None and (not isinstance(got, str) or got.upper() != want.upper()):
            out.append(f"{f}: {got!r} in the body, {want!r} in the URL")
    return out


async def _push(request: Request, caller: Caller, *, module: str, method: str, cc: str, pid: str, oid: str,
                evse_uid: str | None = None, connector_id: str | None = None,
                token_type: str | None = None) -> Response:
    ctx = ctx_of(request)
    _owner_check(caller, module, cc, pid)
    raw_bytes = await request.body() if method != "DELETE" else b""
    raw = raw_bytes.decode("utf-8", errors="replace")
    errors: list[str] = []
    warnings: list[str] = []
    http_status, status = 200, Status.INVALID_PARAMETERS
    body: Any = None
    if method != "DELETE":
        try:
            body = loads(raw_bytes)
        except ValueError as exc:
            errors.append(f"the body is not JSON: {exc}")
            http_status = 400
    if module == "tokens" and token_type is None:  # ?type= omitted: RFID, or a PUT's own type
        sent = body.get("type") if isinstance(body, dict) and method == "PUT" else None
        token_type = sent if isinstance(sent, str) and sent else "RFID"
    if body is not None:
        partial = method == "PATCH"
        kind = ("connector" if connector_id else "evse" if evse_uid else "location") if module == "locations" \
            else KIND[module]
        v = check(kind, body, partial=partial)
        errors += v.errors
        warnings += v.warnings
        if isinstance(body, dict):
            if kind == "evse":
                expect = {"uid": evse_uid or ""}
            elif kind == "connector":
                expect = {"id": connector_id or ""}
            else:
                expect = {"country_code": cc, "party_id": pid}
                if ID_FIELD[module]:
                    expect[ID_FIELD[module]] = oid  # type: ignore[index]
                if module == "tokens":
                    expect["type"] = token_type or "RFID"
            errors += _ids_mismatch(body, expect)
    key = _key(caller, module, cc, pid, oid, token_type)
    if not errors:
        problem = await _target_problem(ctx, module, method, key, evse_uid, connector_id)
        if problem:
            errors.append(problem[1])
            status, http_status = problem[0], 404
    rec = object_received(
        platform_id=ctx.settings.ocpi_platform_id, partner_id=caller.partner.partner_id, module=module, method=method,
        country_code=cc, party_id=pid, object_id=oid, raw=raw, valid=not errors, errors=errors, warnings=warnings,
        evse_uid=evse_uid, connector_id=connector_id, token_type=token_type.upper() if token_type else None,
        request_id=request.headers.get(REQUEST_ID), sender=caller.route.sender, source=ctx.source,
        correlation_id=request.headers.get(CORRELATION_ID) or new_id())
    delivered = await ctx.publish(object_key(caller.partner.partner_id, module, cc, pid, oid,
                                             rec["token_type"] if module == "tokens" else None),
                                  "OcpiObjectReceived", rec)
    if errors:
        log.info("partner %s: %s %s %s/%s/%s refused: %s", caller.partner.partner_id, method, module, cc, pid,
                 oid, "; ".join(errors))
        raise OcpiError(status, "; ".join(errors), http_status)
    if not await ctx.wait(OBJECTS, delivered):
        log.warning("%s %s %s: on the log but not yet applied by %s", method, module, key, OBJECTS)
    return ok()


async def _target_problem(ctx: OcpiContext, module: str, method: str, key: tuple[str, ...],
                          evse_uid: str | None, connector_id: str | None) -> tuple[Status, str] | None:
    """Why a PATCH (or an EVSE/Connector PUT) has nothing to apply to, or None."""
    needs_existing = method == "PATCH" or (module == "locations" and method == "PUT" and evse_uid is not None)
    if not needs_existing:
        return None
    doc = await object_doc(ctx.pool, module, key)
    if module == "locations":
        if doc is None:
            return Status.UNKNOWN_LOCATION, f"unknown location {key[3]}"
        loc = loads(doc)
        if method == "PUT":
            if connector_id is not None and find_evse(loc, evse_uid or "") is None:
                return Status.UNKNOWN_LOCATION, f"unknown EVSE {evse_uid} in location {key[3]}"
            return None
        if evse_uid is not None and extract(loc, evse_uid) is None:
            return Status.UNKNOWN_LOCATION, f"unknown EVSE {evse_uid} in location {key[3]}"
        if connector_id is not None and extract(loc, evse_uid, connector_id) is None:
            return Status.UNKNOWN_LOCATION, f"unknown connector {connector_id} of EVSE {evse_uid}"
        return None
    if doc is None:
        what = {"sessions": "session", "tokens": "token", "tariffs": "tariff", "cdrs": "CDR"}[module]
        return (Status.UNKNOWN_TOKEN if module == "tokens" else Status.INVALID_PARAMETERS), f"unknown {what} {key[3]}"
    return None


async def _get(request: Request, caller: Caller, module: str, cc: str, pid: str, oid: str,
               evse_uid: str | None = None, connector_id: str | None = None,
               token_type: str | None = None) -> Response:
    ctx = ctx_of(request)
    _owner_check(caller, module, cc, pid)
    doc = await object_doc(ctx.pool, module, _key(caller, module, cc, pid, oid, token_type))
    if doc is not None and evse_uid is not None:
        part = extract(loads(doc), evse_uid, connector_id)
        doc = dumps(part) if part is not None else None
    if doc is None:
        status = {"locations": Status.UNKNOWN_LOCATION, "tokens": Status.UNKNOWN_TOKEN}.get(
            module, Status.INVALID_PARAMETERS)
        raise OcpiError(status, f"no such {module[:-1]} here", 404)
    return ok(doc)


# ---- Locations (eMSP receiver) ---------------------------------------------------------------------------------


@emsp.get("/locations/{country_code}/{party_id}/{location_id}")
@emsp.get("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}")
@emsp.get("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}/{connector_id}")
async def get_location(request: Request, country_code: str, party_id: str, location_id: str,
                       evse_uid: str | None = None, connector_id: str | None = None,
                       caller: Caller = Depends(module_caller)) -> Response:
    return await _get(request, caller, "locations", country_code, party_id, location_id, evse_uid, connector_id)


@emsp.put("/locations/{country_code}/{party_id}/{location_id}")
@emsp.put("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}")
@emsp.put("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}/{connector_id}")
async def put_location(request: Request, country_code: str, party_id: str, location_id: str,
                       evse_uid: str | None = None, connector_id: str | None = None,
                       caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="locations", method="PUT", cc=country_code, pid=party_id,
                       oid=location_id, evse_uid=evse_uid, connector_id=connector_id)


@emsp.patch("/locations/{country_code}/{party_id}/{location_id}")
@emsp.patch("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}")
@emsp.patch("/locations/{country_code}/{party_id}/{location_id}/{evse_uid}/{connector_id}")
async def patch_location(request: Request, country_code: str, party_id: str, location_id: str,
                         evse_uid: str | None = None, connector_id: str | None = None,
                         caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="locations", method="PATCH", cc=country_code, pid=party_id,
                       oid=location_id, evse_uid=evse_uid, connector_id=connector_id)


# ---- Sessions (eMSP receiver) ----------------------------------------------------------------------------------


@emsp.get("/sessions/{country_code}/{party_id}/{session_id}")
async def get_session(request: Request, country_code: str, party_id: str, session_id: str,
                      caller: Caller = Depends(module_caller)) -> Response:
    return await _get(request, caller, "sessions", country_code, party_id, session_id)


@emsp.put("/sessions/{country_code}/{party_id}/{session_id}")
async def put_session(request: Request, country_code: str, party_id: str, session_id: str,
                      caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="sessions", method="PUT", cc=country_code, pid=party_id,
                       oid=session_id)


@emsp.patch("/sessions/{country_code}/{party_id}/{session_id}")
async def patch_session(request: Request, country_code: str, party_id: str, session_id: str,
                        caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="sessions", method="PATCH", cc=country_code, pid=party_id,
                       oid=session_id)


# ---- CDRs (eMSP receiver) --------------------------------------------------------------------------------------


@emsp.post("/cdrs")
async def post_cdr(request: Request, caller: Caller = Depends(module_caller)) -> Response:
    """A new CDR; its ids come from the body.  The answer's Location header is where to GET it back.  A CDR
    cannot be replaced: a second POST with the same id is accepted only when it is the same CDR (a retry)."""
    ctx = ctx_of(request)
    raw = await request.body()
    problem, http_status = None, 200
    try:
        body = loads(raw)
    except ValueError as exc:
        body, problem, http_status = None, f"the body is not JSON: {exc}", 400
    ids = [body.get(f) if isinstance(body, dict) else None for f in ("country_code", "party_id", "id")]
    if problem is None and not all(isinstance(x, str) and x for x in ids):
        problem = "a CDR needs country_code, party_id and id"
    if problem is not None:  # on the log all the same (no object to key it by: keyed by the connection)
        rec = object_received(
            platform_id=ctx.settings.ocpi_platform_id, partner_id=caller.partner.partner_id, module="cdrs",
            method="POST", country_code="", party_id="", object_id="", raw=raw.decode("utf-8", errors="replace"),
            valid=False,
            errors=[problem], request_id=request.headers.get(REQUEST_ID), sender=caller.route.sender,
            source=ctx.source, correlation_id=request.headers.get(CORRELATION_ID) or new_id())
        await ctx.publish(object_key(caller.partner.partner_id, "cdrs", "", "", ""), "OcpiObjectReceived", rec)
        raise OcpiError(Status.INVALID_PARAMETERS, problem, http_status)
    cc, pid, cdr_id = ids  # type: ignore[misc]
    _owner_check(caller, "cdrs", cc, pid)
    existing = await object_doc(ctx.pool, "cdrs", _key(caller, "cdrs", cc, pid, cdr_id))
    if existing is not None:
        if loads(existing) != body:
            raise OcpiError(Status.INVALID_PARAMETERS, f"CDR {cdr_id} exists with other content: CDRs cannot be "
                            "replaced (send a credit CDR with a new id)")
        return ok(headers={"Location": _cdr_url(ctx, cc, pid, cdr_id)})
    await _push(request, caller, module="cdrs", method="POST", cc=cc, pid=pid, oid=cdr_id)
    return ok(status_code=201, headers={"Location": _cdr_url(ctx, cc, pid, cdr_id)})


def _cdr_url(ctx: OcpiContext, cc: str, pid: str, cdr_id: str) -> str:
    return f"{root_url(ctx.settings)}/emsp/{VERSION}/cdrs/{cc}/{pid}/{cdr_id}"


@emsp.get("/cdrs/{country_code}/{party_id}/{cdr_id}")
async def get_cdr(request: Request, country_code: str, party_id: str, cdr_id: str,
                  caller: Caller = Depends(module_caller)) -> Response:
    return await _get(request, caller, "cdrs", country_code, party_id, cdr_id)


# ---- Tariffs (eMSP receiver) -----------------------------------------------------------------------------------


@emsp.get("/tariffs/{country_code}/{party_id}/{tariff_id}")
async def get_tariff(request: Request, country_code: str, party_id: str, tariff_id: str,
                     caller: Caller = Depends(module_caller)) -> Response:
    return await _get(request, caller, "tariffs", country_code, party_id, tariff_id)


@emsp.put("/tariffs/{country_code}/{party_id}/{tariff_id}")
async def put_tariff(request: Request, country_code: str, party_id: str, tariff_id: str,
                     caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="tariffs", method="PUT", cc=country_code, pid=party_id,
                       oid=tariff_id)


@emsp.delete("/tariffs/{country_code}/{party_id}/{tariff_id}")
async def delete_tariff(request: Request, country_code: str, party_id: str, tariff_id: str,
                        caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    _owner_check(caller, "tariffs", country_code, party_id)
    if await object_doc(ctx.pool, "tariffs", _key(caller, "tariffs", country_code, party_id, tariff_id)) is None:
        raise OcpiError(Status.INVALID_PARAMETERS, f"unknown tariff {tariff_id}", 404)
    return await _push(request, caller, module="tariffs", method="DELETE", cc=country_code, pid=party_id,
                       oid=tariff_id)


# ---- Tokens (CPO receiver) -------------------------------------------------------------------------------------


@cpo.get("/tokens/{country_code}/{party_id}/{token_uid}")
async def get_token(request: Request, country_code: str, party_id: str, token_uid: str,
                    type: str = Query("RFID"), caller: Caller = Depends(module_caller)) -> Response:  # noqa: A002
    return await _get(request, caller, "tokens", country_code, party_id, token_uid, token_type=type)


@cpo.put("/tokens/{country_code}/{party_id}/{token_uid}")
async def put_token(request: Request, country_code: str, party_id: str, token_uid: str,
                    type: str | None = Query(None, description="default: the body's type"),  # noqa: A002
                    caller: Caller = Depends(module_caller)) -> Response:
    return await _push(request, caller, module="tokens", method="PUT", cc=country_code, pid=party_id,
                       oid=token_uid, token_type=type)


@cpo.patch("/tokens/{country_code}/{party_id}/{token_uid}")
async def patch_token(request: Request, country_code: str, party_id: str, token_uid: str,
                      type: str = Query("RFID"), caller: Caller = Depends(module_caller)) -> Response:  # noqa: A002
    return await _push(request, caller, module="tokens", method="PATCH", cc=country_code, pid=party_id,
                       oid=token_uid, token_type=type)
