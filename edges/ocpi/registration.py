"""Credentials, our side: we register with a partner, re-roll our tokens with it, or leave it.

Register (the partner gave us its versions URL and a token A, recorded at onboarding): GET their versions and
2.2.1 details with token A; make token B and publish OcpiTokenIssued, waiting until B is usable - the partner
calls our versions endpoint with B *while* answering our POST; POST our credentials (B, our versions URL, our
roles); read their token C from the answer; publish OcpiPartnerRegistered (hash of B, C sealed) and wait for it.

Re-roll: the same with a PUT, authenticated with their current token C, a new B and their new C in the answer.
Our previous B stays valid for the grace period (the partner may still have requests in flight with it).

Leave: DELETE on their credentials endpoint with C, then OcpiPartnerDeleted.  `force` records the deletion even
when they cannot be reached (their side is then theirs to clean up).
"""

from __future__ import annotations

import logging

from edges.ocpi.client import PartnerError, call, endpoint_of, fetch_endpoints
from edges.ocpi.config import parties, versions_url
from edges.ocpi.context import PARTNERS, OcpiContext
from edges.ocpi.credtokens import new_token, token_hash
from edges.ocpi.events import deleted, exchanged, our_credentials, partner_key, token_issued
from edges.ocpi.headers import new_id
from edges.ocpi.models import check
from edges.ocpi.store import Partner, partner

log = logging.getLogger(__name__)


class RegistrationError(RuntimeError):
    pass


async def _load(ctx: OcpiContext, partner_id: str) -> Partner:
    p = await partner(ctx.pool, partner_id)
    if p is None:
        raise RegistrationError(f"no partner {partner_id!r}: onboard it first")
    return p


async def _issue_b(ctx: OcpiContext, p: Partner, correlation: str) -> str:
    token_b = new_token()
    rec = token_issued(platform_id=ctx.settings.ocpi_platform_id, partner_id=p.partner_id,
                       token_hash=token_hash(token_b), kind="B", source=ctx.source, correlation_id=correlation)
    await ctx.publish_and_wait(partner_key(p.partner_id), "OcpiTokenIssued", rec, PARTNERS)
    return token_b


async def _exchange(ctx: OcpiContext, p: Partner, method: str, their_token: str, correlation: str) -> Partner:
    event_type = "OcpiPartnerRegistered" if method == "POST" else "OcpiCredentialsRotated"
    their_url = p.their_versions_url
    if not their_url:
        raise RegistrationError(f"partner {p.partner_id} has no versions URL")
    try:
        version, endpoints = await fetch_endpoints(ctx.http, their_url, their_token, plain=p.plain_token,
                                                   correlation_id=correlation)
        url = endpoint_of(endpoints, "credentials")
        if url is None:
            raise RegistrationError(f"partner {p.partner_id} offers no credentials endpoint")
        token_b = await _issue_b(ctx, p, correlation)
        o = ctx.settings
        ours = our_credentials(token_b, versions_url(o), parties(o), o.ocpi_website)
        ans = await call(ctx.http, method, url, their_token, plain=p.plain_token, body=ours,
                         correlation_id=correlation, timeout=o.ocpi_http_timeout + o.ocpi_apply_timeout)
    except PartnerError as exc:
        raise RegistrationError(f"{method} credentials to {p.partner_id} failed: {exc}") from exc
    v = check("credentials", ans.data)
    if not v.ok:
        raise RegistrationError(f"{p.partner_id} answered unreadable credentials: {v.message()}")
    theirs = ans.data
    if theirs["url"] != their_url:  # they moved: their endpoints are those of the new versions URL
        try:
            version, endpoints = await fetch_endpoints(ctx.http, theirs["url"], theirs["token"],
                                                       plain=p.plain_token, correlation_id=correlation)
        except PartnerError as exc:
            raise RegistrationError(f"{p.partner_id}: their new versions URL fails: {exc}") from exc
    rec = exchanged(event_type, platform_id=ctx.settings.ocpi_platform_id, partner_id=p.partner_id, initiated_by="US",
                    our_token_hash=token_hash(token_b), their_token_sealed=ctx.box.seal(theirs["token"], p.partner_id),
                    their_versions_url=theirs["url"], version=version, endpoints=endpoints, credentials=theirs,
                    grace_seconds=ctx.settings.ocpi_token_grace_seconds, source=ctx.source, correlation_id=correlation)
    await ctx.publish_and_wait(partner_key(p.partner_id), event_type, rec, PARTNERS)
    log.info("partner %s: %s by us", p.partner_id, event_type)
    return await _load(ctx, p.partner_id)


async def register_with(ctx: OcpiContext, partner_id: str) -> Partner:
    p = await _load(ctx, partner_id)
    if p.registered:
        raise RegistrationError(f"partner {partner_id} is already registered: re-roll instead")
    if not p.their_token_sealed:
        raise RegistrationError(f"partner {partner_id} was onboarded to register with us, not we with them")
    return await _exchange(ctx, p, "POST", ctx.box.open(p.their_token_sealed, partner_id), new_id())


async def rotate_with(ctx: OcpiContext, partner_id: str) -> Partner:
    p = await _load(ctx, partner_id)
    if not p.registered or not p.their_token_sealed:
        raise RegistrationError(f"partner {partner_id} is not registered")
    return await _exchange(ctx, p, "PUT", ctx.box.open(p.their_token_sealed, partner_id), new_id())


async def unregister_from(ctx: OcpiContext, partner_id: str, *, force: bool = False,
                          reason: str | None = None) -> None:
    p = await _load(ctx, partner_id)
    if p.state == "DELETED":
        raise RegistrationError(f"partner {partner_id} is already deleted")
    correlation = new_id()
    url = p.endpoint("credentials")
    if p.registered and url and p.their_token_sealed:
        try:
            await call(ctx.http, "DELETE", url, ctx.box.open(p.their_token_sealed, partner_id),
                       plain=p.plain_token, correlation_id=correlation)
        except PartnerError as exc:
            if not force:
                raise RegistrationError(f"DELETE credentials at {partner_id} failed: {exc}") from exc
            log.warning("partner %s: DELETE failed (%s); deleting here anyway (force)", partner_id, exc)
    rec = deleted(platform_id=ctx.settings.ocpi_platform_id, partner_id=partner_id, initiated_by="US",
                  reason=reason or "unregistered by an operator", source=ctx.source, correlation_id=correlation)
    await ctx.publish_and_wait(partner_key(partner_id), "OcpiPartnerDeleted", rec, PARTNERS)
