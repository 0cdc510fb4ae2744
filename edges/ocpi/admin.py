"""Partner onboarding and operations for operators: the admin API (`/ocpi/admin`, Bearer JWT with the admin or
operator role) and the `ocpi` command line (`cv ocpi ...`, see `main`).

Onboarding opens a connection, one of two ways:
- the partner will register with us: we issue a token A (shown once; only its hash goes on the log) and give it
  with our versions URL to the partner out of band;
- we will register with the partner: the operator records their versions URL and the token A they gave us (sealed
  before it goes on the log), then asks us to register (`POST /ocpi/admin/partners/{id}/register`).
A partner id is ours to choose (a slug like `hubject-prod`); onboarding an id that is not deleted is refused.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from edges.api.auth import require
from edges.ocpi.auth import ctx_of
from edges.ocpi.config import versions_url
from edges.ocpi.context import PARTNERS, OcpiContext
from edges.ocpi.credtokens import is_printable_token, new_token, token_hash
from edges.ocpi.events import onboarded, partner_key
from edges.ocpi.headers import new_id
from edges.ocpi.registration import RegistrationError, register_with, rotate_with, unregister_from
from edges.ocpi.store import Partner, partner, partners

router = APIRouter(prefix="/admin", tags=["admin: OCPI partners"])
OPERATORS = ("admin", "operator")
PARTNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class OnboardRequest(BaseModel):
    partner_id: str = Field(description="our id of the connection: letters, digits, _ . - (up to 64)")
    name: str
    versions_url: str | None = Field(None, description="theirs, when we register with them")
    token: str | None = Field(None, description="the token A they gave us, when we register with them")
    plain_token: bool = Field(False, description="they send and expect the credentials token un-encoded")


class OnboardError(ValueError):
    pass


def onboarding(ctx_platform: str, source: str, box_seal: Any, req: OnboardRequest) -> tuple[dict[str, Any], str | None]:
    """(OcpiPartnerOnboarded record, our token A or None).  Pure but for the randomness of the token."""
    if not PARTNER_ID.match(req.partner_id):
        raise OnboardError("partner_id: letters, digits, _ . - only, up to 64 characters")
    if (req.versions_url is None) != (req.token is None):
        raise OnboardError("give both versions_url and token (we register with them) or neither (they register "
                           "with us)")
    if req.token is not None and not is_printable_token(req.token):
        raise OnboardError("token: printable ASCII without spaces, up to 64 characters")
    token_a = None if req.token else new_token()
    rec = onboarded(platform_id=ctx_platform, partner_id=req.partner_id, name=req.name, source=source,
                    correlation_id=new_id(), token_a_hash=token_hash(token_a) if token_a else None,
                    their_versions_url=req.versions_url,
                    their_token_sealed=box_seal(req.token, req.partner_id) if req.token else None,
                    plain_token=req.plain_token)
    return rec, token_a


async def onboard(ctx: OcpiContext, req: OnboardRequest) -> str | None:
    existing = await partner(ctx.pool, req.partner_id)
    if existing is not None and existing.state != "DELETED":
        raise OnboardError(f"partner {req.partner_id} exists ({existing.state}); delete it first")
    rec, token_a = onboarding(ctx.settings.ocpi_platform_id, ctx.source, ctx.box.seal, req)
    await ctx.publish_and_wait(partner_key(req.partner_id), "OcpiPartnerOnboarded", rec, PARTNERS)
    return token_a


def describe(p: Partner) -> dict[str, Any]:
    """A partner as an operator sees it: never a token."""
    return {"partner_id": p.partner_id, "name": p.name, "state": p.state, "plain_token": p.plain_token,
            "versions_url": p.their_versions_url, "version": p.version, "roles": p.roles, "endpoints": p.endpoints}


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


@router.post("/partners", summary="Onboard a partner (issues token A, or records theirs)", status_code=201)
async def create_partner(req: OnboardRequest, request: Request,
                         _: dict = Depends(require(*OPERATORS))) -> Any:
    ctx = ctx_of(request)
    try:
        token_a = await onboard(ctx, req)
    except OnboardError as exc:
        return _problem(409 if "exists" in str(exc) else 422, str(exc))
    out: dict[str, Any] = {"partner_id": req.partner_id, "our_versions_url": versions_url(ctx.settings)}
    if token_a:
        out["token_a"] = token_a
        out["note"] = "token A is shown once: give it with our versions URL to the partner over a secure channel"
    return JSONResponse(out, status_code=201)


@router.get("/partners", summary="Every partner")
async def list_partners(request: Request, _: dict = Depends(require(*OPERATORS, "auditor"))) -> list[dict]:
    return [describe(p) for p in await partners(ctx_of(request).pool)]


@router.get("/partners/{partner_id}", summary="One partner")
async def get_partner(partner_id: str, request: Request, _: dict = Depends(require(*OPERATORS, "auditor"))) -> Any:
    p = await partner(ctx_of(request).pool, partner_id)
    return describe(p) if p else _problem(404, f"no partner {partner_id!r}")


async def _run(coro: Any) -> Any:
    try:
        p = await coro
    except RegistrationError as exc:
        return _problem(502 if "failed" in str(exc) else 409, str(exc))
    return describe(p) if p else {"deleted": True}


@router.post("/partners/{partner_id}/register", summary="Register with the partner (we are the sender)")
async def register(partner_id: str, request: Request, _: dict = Depends(require(*OPERATORS))) -> Any:
    return await _run(register_with(ctx_of(request), partner_id))


@router.post("/partners/{partner_id}/rotate", summary="Re-roll the credentials tokens with the partner")
async def rotate(partner_id: str, request: Request, _: dict = Depends(require(*OPERATORS))) -> Any:
    return await _run(rotate_with(ctx_of(request), partner_id))


@router.delete("/partners/{partner_id}", summary="Unregister from the partner and revoke its tokens")
async def delete(partner_id: str, request: Request, force: bool = False,
                 _: dict = Depends(require(*OPERATORS))) -> Any:
    return await _run(unregister_from(ctx_of(request), partner_id, force=force))


@router.post("/partners/{partner_id}/pull/{module}", summary="Pull a module from the partner's sender interface")
async def pull_module(partner_id: str, module: str, request: Request, date_from: str | None = None,
                      date_to: str | None = None, limit: int | None = None,
                      _: dict = Depends(require(*OPERATORS))) -> Any:
    from edges.ocpi.client import PartnerError
    from edges.ocpi.pull import KIND, pull
    from projections.postgres.ocpi_fold import parse_datetime

    ctx = ctx_of(request)
    if module not in KIND:
        return _problem(404, f"no module {module!r}; known: {', '.join(KIND)}")
    bounds = {}
    for name, raw in (("date_from", date_from), ("date_to", date_to)):
        if raw is not None:
            bounds[name] = parse_datetime(raw)
            if bounds[name] is None:
                return _problem(422, f"{name} must be an RFC 3339 DateTime")
    p = await partner(ctx.pool, partner_id)
    if p is None or not p.registered:
        return _problem(409, f"partner {partner_id!r} is not registered")
    try:
        stats = await pull(ctx, p, module, limit=limit, **bounds)
    except PartnerError as exc:
        return _problem(502, str(exc))
    return {"pages": stats.pages, "objects": stats.objects, "invalid": stats.invalid, "total": stats.total}


# ---- the command line ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`cv ocpi onboard|register|rotate|delete|list|pull ...`: talks to the running OCPI edge's admin API with a
    short-lived admin token (so the edge, which holds the projection pool and answers the partner's call-backs,
    does the work)."""
    import httpx

    from chargeverse.settings import get_settings
    from chargeverse.tokens import issue
    from edges.ocpi.config import root_url

    p = argparse.ArgumentParser(prog="cv ocpi", description=__doc__)
    p.add_argument("--url", help="the OCPI edge's /ocpi root (default: CV_OCPI_BASE_URL or host:port)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("onboard", help="open a connection; prints token A when the partner registers with us")
    sp.add_argument("partner_id")
    sp.add_argument("--name", required=True)
    sp.add_argument("--versions-url", help="their versions URL (we register with them)")
    sp.add_argument("--token", help="the token A they gave us (we register with them)")
    sp.add_argument("--plain-token", action="store_true", help="they use un-encoded tokens (OCPI 2.1.1 style)")
    for name in ("register", "rotate", "delete", "show"):
        sp = sub.add_parser(name)
        sp.add_argument("partner_id")
        if name == "delete":
            sp.add_argument("--force", action="store_true", help="delete here even if they cannot be reached")
    sub.add_parser("list")
    sp = sub.add_parser("pull", help="pull a module from a partner's sender interface into the log")
    sp.add_argument("partner_id")
    sp.add_argument("module", choices=("locations", "sessions", "cdrs", "tariffs", "tokens"))
    sp.add_argument("--date-from")
    a = p.parse_args(argv)
    root = (a.url or root_url(get_settings())).rstrip("/")
    headers = {"Authorization": "Bearer " + issue("cv-ocpi-cli", ["admin"], ttl_seconds=300)}
    with httpx.Client(base_url=f"{root}/admin", headers=headers, timeout=120) as http:
        if a.cmd == "onboard":
            r = http.post("/partners", json={"partner_id": a.partner_id, "name": a.name,
                                             "versions_url": a.versions_url, "token": a.token,
                                             "plain_token": a.plain_token})
        elif a.cmd == "list":
            r = http.get("/partners")
        elif a.cmd == "show":
            r = http.get(f"/partners/{a.partner_id}")
        elif a.cmd == "delete":
            r = http.delete(f"/partners/{a.partner_id}", params={"force": str(a.force).lower()})
        elif a.cmd == "pull":
            r = http.post(f"/partners/{a.partner_id}/pull/{a.module}",
                          params={"date_from": a.date_from} if a.date_from else None)
        else:
            r = http.post(f"/partners/{a.partner_id}/{a.cmd}")
    print(json.dumps(r.json(), indent=2))
    return 0 if r.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
