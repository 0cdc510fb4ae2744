"""Who is calling: the credentials token of the Authorization header, checked against the partners projection.

Rules (OCPI 2.2.1 §4.1.3 and the credentials module; the token lifecycle is in projections/postgres/
ocpi_partners.py):
- no header, an unknown token, an expired one, or an un-encoded token from a partner not flagged `plain_token`:
  HTTP 401 with an OCPI 2001 body - and nothing about which of these it was;
- token A (registration) opens only the versions and credentials endpoints: elsewhere it is a 401;
- functional modules need a REGISTERED partner, and honour the routing headers: `OCPI-to-*` must be one of our
  parties (else 4001 unknown receiver), `OCPI-from-*` one of the connection's parties (else 2001) unless the
  connection is a hub.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from edges.ocpi.config import is_us
from edges.ocpi.context import OcpiContext
from edges.ocpi.credtokens import presented_tokens, token_hash
from edges.ocpi.headers import Route, parse_route
from edges.ocpi.status import OcpiError, Status, unauthorized
from edges.ocpi.store import Partner, valid_tokens


@dataclass(frozen=True)
class Caller:
    partner: Partner
    token: str  # as presented; held only for the length of the request
    token_kind: str
    route: Route


def ctx_of(request: Request) -> OcpiContext:
    return request.app.state.ocpi


async def authenticate(request: Request, *, registration: bool = False) -> Caller:
    ctx = ctx_of(request)
    candidates = presented_tokens(request.headers.get("authorization"))
    if not candidates:
        raise unauthorized()
    rows = await valid_tokens(ctx.pool, [token_hash(t) for t, _ in candidates], ctx.clock())
    for token, plain in candidates:
        row = rows.get(token_hash(token))
        if row is None or (plain and not row.partner.plain_token) or row.partner.state == "DELETED":
            continue
        if row.kind == "A" and not registration:
            raise unauthorized("a registration token opens only the versions and credentials endpoints")
        return Caller(row.partner, token, row.kind, parse_route(request.headers))
    raise unauthorized()


async def registration_caller(request: Request) -> Caller:
    """Versions and credentials: any valid token, token A included."""
    return await authenticate(request, registration=True)


async def module_caller(request: Request) -> Caller:
    """Functional modules: a registered partner, routing headers checked."""
    caller = await authenticate(request)
    if not caller.partner.registered:
        raise unauthorized("the connection is not registered")
    ctx = ctx_of(request)
    r = caller.route
    if r.receiver and not is_us(ctx.settings, *r.receiver):
        raise OcpiError(Status.UNKNOWN_RECEIVER, f"OCPI-to {r.receiver[0]}/{r.receiver[1]} is not a party of "
                        "this platform")
    if r.sender and not caller.partner.speaks_for(*r.sender):
        raise OcpiError(Status.INVALID_PARAMETERS, f"OCPI-from {r.sender[0]}/{r.sender[1]} is not one of this "
                        "connection's parties")
    return caller
