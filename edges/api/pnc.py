"""Plug & Charge over HTTP: the OCSP responder (RFC 6960), the CRL and the CA certificates -- public, as PKI
endpoints are (their answers are signed, that is what authenticates them) -- and the operator's admin operations
(enrol a car, revoke a contract, trust a root, look contracts up), which need the admin or operator role.

Endpoints are plain (synchronous) functions: FastAPI runs them in its thread pool, and edges/pnc/service.py is
synchronous (it is shared with the OCPP edge and the CLI).  Bad input is a 422 with the reason (and a
PncRequestRejected event); the OCSP endpoints never fail on bad input: they answer an OCSP `malformedRequest`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from chargeverse.pnc.errors import PncRejection
from chargeverse.pnc.revocation import MAX_OCSP_REQUEST_BYTES
from edges.api.auth import public, require
from edges.pnc.service import CAUSES, shared

def _enabled() -> None:
    from chargeverse.settings import get_settings

    if not get_settings().pnc_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Plug & Charge is not enabled at this platform")


router = APIRouter(prefix="/pnc", tags=["plug & charge"], dependencies=[Depends(_enabled)],
                   responses={404: {"description": "Plug & Charge is not enabled here, or nothing matches"}})
_DER = {"description": "DER, as RFC 6960 / RFC 5280 define it"}
OCSP_PUBLIC = public("OCSP answers are signed by the issuing CA (RFC 6960); relying parties need no account")
ADMINS = ("admin", "operator")


def _ocsp_response(body: bytes) -> Response:
    return Response(body, media_type="application/ocsp-response", headers={"Cache-Control": "max-age=60"})


@router.post("/ocsp", summary="OCSP responder (RFC 6960, POST application/ocsp-request)",
             dependencies=[Depends(OCSP_PUBLIC)], response_class=Response,
             responses={200: {**_DER, "content": {"application/ocsp-response": {}}}})
async def ocsp_post(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_OCSP_REQUEST_BYTES:
        body = b""  # the responder answers malformedRequest
    from starlette.concurrency import run_in_threadpool

    return _ocsp_response(await run_in_threadpool(shared().ocsp, body))


@router.get("/ocsp/{encoded:path}", summary="OCSP responder, GET form (base64 DER request in the path)",
            dependencies=[Depends(OCSP_PUBLIC)], response_class=Response,
            responses={200: {**_DER, "content": {"application/ocsp-response": {}}}})
def ocsp_get(encoded: str) -> Response:
    from urllib.parse import unquote

    text = unquote(encoded)
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True) if len(text) <= 2 * MAX_OCSP_REQUEST_BYTES else b""
    except (binascii.Error, ValueError):
        der = b""
    return _ocsp_response(shared().ocsp(der))


@router.get("/crl.der", summary="The CRL of MO sub-CA 2 (issuer of every contract certificate)",
            dependencies=[Depends(public("a CRL is signed by its CA; anyone may fetch it"))], response_class=Response,
            responses={200: {**_DER, "content": {"application/pkix-crl": {}}}})
def crl() -> Response:
    return Response(shared().crl(), media_type="application/pkix-crl", headers={"Cache-Control": "max-age=60"})


@router.get("/ca-issuers.p7c", summary="The MO chain (sub-CA 2, sub-CA 1, root) as certs-only PKCS#7",
            dependencies=[Depends(public("CA certificates are public"))], response_class=Response,
            responses={200: {**_DER, "content": {"application/pkcs7-mime": {}}}})
def ca_issuers() -> Response:
    return Response(shared().ca_issuers(), media_type="application/pkcs7-mime")


class EnrolIn(BaseModel):
    account_id: str = Field(min_length=1, max_length=64)
    pcid: str = Field(min_length=1, max_length=64, description="CN of the car's OEM provisioning certificate")


class RevokeIn(BaseModel):
    cause: str = Field(description="account_closed, vehicle_sold, key_compromise, superseded or ca_compromise")
    emaid: str | None = Field(default=None, max_length=64)
    serial_number: str | None = Field(default=None, max_length=40, pattern="^[0-9a-fA-F]+$")
    comment: str | None = Field(default=None, max_length=500)


class RootIn(BaseModel):
    kind: str = Field(description="OEM, V2G or MO (a trusted root), or OEM_SUB (an OEM provisioning sub-CA "
                                  "for the pool)")
    certificate_pem: str = Field(max_length=8000)


def _refused(exc: PncRejection) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{exc.reason.value}: {exc.detail}")


@router.post("/enrolments", summary="Enrol a car (PCID) for Plug & Charge under an account's eMAID")
def enrol(body: EnrolIn, who: dict[str, Any] = Depends(require(*ADMINS))) -> dict[str, Any]:
    try:
        return shared().enrol(body.account_id, body.pcid, str(who["sub"]))
    except PncRejection as exc:
        shared().reject("Enrol", exc, raw=body.model_dump())
        raise _refused(exc) from exc


@router.post("/revocations", summary="Revoke a contract (one serial, or every good contract of an eMAID)")
def revoke(body: RevokeIn, who: dict[str, Any] = Depends(require(*ADMINS))) -> dict[str, Any]:
    if body.cause not in CAUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"cause must be one of {', '.join(CAUSES)}")
    if (body.emaid is None) == (body.serial_number is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "give exactly one of emaid and serial_number")
    try:
        revoked = shared().revoke(cause=body.cause, requested_by=str(who["sub"]), emaid=body.emaid,
                                  serial=body.serial_number, comment=body.comment)
    except PncRejection as exc:
        shared().reject("Revoke", exc, emaid=body.emaid, raw=body.model_dump())
        raise _refused(exc) from exc
    if not revoked:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no good contract certificate matches")
    return {"revoked": revoked}


@router.post("/trusted-roots", summary="Trust a root for Plug & Charge (OEM roots verify cars' provisioning "
                                       "certificates)")
def add_root(body: RootIn, who: dict[str, Any] = Depends(require(*ADMINS))) -> dict[str, Any]:
    try:
        return shared().add_trusted_root(body.certificate_pem, body.kind, str(who["sub"]))
    except PncRejection as exc:
        shared().reject("TrustRoot", exc, raw=body.kind)
        raise _refused(exc) from exc


@router.get("/contracts", summary="Contract certificates by eMAID, serial number or account, with status")
def contracts(emaid: str | None = None, serial_number: str | None = None, account_id: str | None = None,
              who: dict[str, Any] = Depends(require(*ADMINS))) -> list[dict[str, Any]]:
    try:
        return shared().certificates(emaid=emaid, serial=serial_number, account_id=account_id)
    except PncRejection as exc:
        raise _refused(exc) from exc
