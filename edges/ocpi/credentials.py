"""Versions and credentials, the server side: a partner registers with us (POST), re-rolls (PUT), leaves (DELETE).

Registration (OCPI 2.2.1 credentials module): the partner calls with our token A and sends its token B; we fetch
its versions and endpoints *with B* (so a wrong B fails now, as 3001, not later), make token C, publish
OcpiPartnerRegistered (hash of C, B sealed), and answer with C only once the partners projection has applied the
event - the first request the partner makes with C is accepted (read-your-writes; if the projection is late we
answer 503 and the partner may retry the POST with token A during its grace period).

Re-roll (PUT, with its current token): the same with a new B and a new C; its old token stays valid for
CV_OCPI_TOKEN_GRACE_SECONDS after the exchange (projections/postgres/ocpi_partners.py), so its requests in flight
and a retry of a lost answer still work.  Token A cannot re-roll.  POST on a registered partner, PUT or DELETE on
an unregistered one: HTTP 405 (as the module requires).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request

from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, registration_caller
from edges.ocpi.client import PartnerError, fetch_endpoints
from edges.ocpi.config import parties, plays, root_url, versions_url
from edges.ocpi.context import PARTNERS, OcpiContext
from edges.ocpi.credtokens import new_token, token_hash
from edges.ocpi.events import deleted, exchanged, our_credentials, partner_key
from edges.ocpi.headers import CORRELATION_ID, new_id
from edges.ocpi.models import check
from edges.ocpi.status import OcpiError, Status, envelope, invalid, not_allowed
from projections.postgres.ocpi_fold import loads

log = logging.getLogger(__name__)
router = APIRouter(tags=["versions and credentials"])


def version_endpoints(ctx: OcpiContext) -> list[dict[str, str]]:
    """Our 2.2.1 endpoints: what our roles implement."""
    root = root_url(ctx.settings)
    eps = [{"identifier": "credentials", "role": "SENDER", "url": f"{root}/{VERSION}/credentials"}]
    if plays(ctx.settings, "EMSP"):
        for module in ("locations", "sessions", "cdrs", "tariffs"):
            eps.append({"identifier": module, "role": "RECEIVER", "url": f"{root}/emsp/{VERSION}/{module}"})
        eps.append({"identifier": "tokens", "role": "SENDER", "url": f"{root}/emsp/{VERSION}/tokens"})
        eps.append({"identifier": "commands", "role": "SENDER", "url": f"{root}/emsp/{VERSION}/commands"})
    if plays(ctx.settings, "CPO"):
        eps.append({"identifier": "locations", "role": "SENDER", "url": f"{root}/cpo/{VERSION}/locations"})
        eps.append({"identifier": "tokens", "role": "RECEIVER", "url": f"{root}/cpo/{VERSION}/tokens"})
        eps.append({"identifier": "commands", "role": "RECEIVER", "url": f"{root}/cpo/{VERSION}/commands"})
        for module in ("sessions", "cdrs", "tariffs"):
            eps.append({"identifier": module, "role": "SENDER", "url": f"{root}/cpo/{VERSION}/{module}"})
    # HubClientInfo is a configuration module: one URL, whatever roles we play (edges/ocpi/hubclientinfo.py)
    eps.append({"identifier": "hubclientinfo", "role": "RECEIVER", "url": f"{root}/{VERSION}/hubclientinfo"})
    eps.append({"identifier": "hubclientinfo", "role": "SENDER", "url": f"{root}/{VERSION}/hubclientinfo"})
    return eps


@router.get("/versions", summary="OCPI versions we speak")
async def versions(request: Request, _: Caller = Depends(registration_caller)) -> dict:
    ctx = ctx_of(request)
    return envelope([{"version": VERSION, "url": f"{root_url(ctx.settings)}/{VERSION}"}])


@router.get(f"/{VERSION}", summary="Our OCPI 2.2.1 endpoints")
async def version_details(request: Request, _: Caller = Depends(registration_caller)) -> dict:
    ctx = ctx_of(request)
    return envelope({"version": VERSION, "endpoints": version_endpoints(ctx)})


@router.get(f"/{VERSION}/credentials", summary="Our credentials for the calling partner")
async def get_credentials(request: Request, caller: Caller = Depends(registration_caller)) -> dict:
    ctx = ctx_of(request)
    s = ctx.settings
    return envelope(our_credentials(caller.token, versions_url(s), parties(s), s.ocpi_website))


async def _their_credentials(request: Request) -> dict:
    body = await request.body()
    try:
        creds = loads(body)
    except ValueError as exc:
        raise OcpiError(Status.INVALID_PARAMETERS, f"the body is not JSON: {exc}", 400) from None
    v = check("credentials", creds)
    if not v.ok:
        raise invalid(f"not a Credentials object: {v.message()}")
    return creds


async def _exchange(request: Request, caller: Caller, event_type: str) -> dict:
    ctx = ctx_of(request)
    creds = await _their_credentials(request)
    correlation = request.headers.get(CORRELATION_ID) or new_id()
    pid = caller.partner.partner_id
    try:
        version, endpoints = await fetch_endpoints(ctx.http, creds["url"], creds["token"],
                                                   plain=caller.partner.plain_token, correlation_id=correlation)
    except PartnerError as exc:
        log.warning("partner %s: cannot use their API during %s: %s", pid, event_type, exc)
        status = Status.UNSUPPORTED_VERSION if exc.status == 3002 else Status.UNABLE_TO_USE_CLIENT_API
        raise OcpiError(status, f"cannot use your API with the token you sent: {exc}") from None
    if not any(e["identifier"] != "credentials" for e in endpoints):
        raise OcpiError(Status.NO_MATCHING_ENDPOINTS, "you offer no module besides credentials")
    token_c = new_token()
    rec = exchanged(event_type, platform_id=ctx.settings.ocpi_platform_id, partner_id=pid, initiated_by="PARTNER",
                    our_token_hash=token_hash(token_c), their_token_sealed=ctx.box.seal(creds["token"], pid),
                    their_versions_url=creds["url"], version=version, endpoints=endpoints, credentials=creds,
                    grace_seconds=ctx.settings.ocpi_token_grace_seconds, source=ctx.source, correlation_id=correlation)
    await ctx.publish_and_wait(partner_key(pid), event_type, rec, PARTNERS)
    log.info("partner %s: %s (their roles: %s)", pid, event_type,
             ", ".join(f"{r['role']} {r['country_code']}/{r['party_id']}" for r in rec["roles"]))
    s = ctx.settings
    return envelope(our_credentials(token_c, versions_url(s), parties(s), s.ocpi_website))


@router.post(f"/{VERSION}/credentials", summary="Register: send us your credentials (with our token A)")
async def post_credentials(request: Request, caller: Caller = Depends(registration_caller)) -> dict:
    if caller.partner.registered and caller.token_kind != "A":
        raise not_allowed("already registered: use PUT to update the credentials")
    if caller.token_kind != "A":
        raise not_allowed("register with the token A you were given")
    return await _exchange(request, caller, "OcpiPartnerRegistered")


@router.put(f"/{VERSION}/credentials", summary="Update your credentials and re-roll the tokens")
async def put_credentials(request: Request, caller: Caller = Depends(registration_caller)) -> dict:
    if not caller.partner.registered or caller.token_kind == "A":
        raise not_allowed("not registered yet: use POST to register")
    return await _exchange(request, caller, "OcpiCredentialsRotated")


@router.delete(f"/{VERSION}/credentials", summary="Unregister: every token of the connection stops working")
async def delete_credentials(request: Request, caller: Caller = Depends(registration_caller)) -> dict:
    ctx = ctx_of(request)
    if not caller.partner.registered or caller.token_kind == "A":
        raise not_allowed("not registered")
    pid = caller.partner.partner_id
    rec = deleted(platform_id=ctx.settings.ocpi_platform_id, partner_id=pid, initiated_by="PARTNER",
                  reason="credentials DELETE by the partner", source=ctx.source,
                  correlation_id=request.headers.get(CORRELATION_ID) or new_id())
    await ctx.publish_and_wait(partner_key(pid), "OcpiPartnerDeleted", rec, PARTNERS)
    log.info("partner %s: unregistered by the partner", pid)
    return envelope(None)
