"""The audit API (/api/audit): read-only views of the ledger for auditors.

Every endpoint needs a JWT with role `auditor` or `admin`, and every endpoint is a GET: there is no route that
writes, and the queries behind them run on read-only connections as the `cv_ledger_auditor` database role
(ledger/audit.py), so an auditor's credentials cannot change the ledger by any path.

Times in query parameters are ISO 8601; a time without an offset is taken as UTC.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from edges.api.auth import require
from ledger import accounts, money
from ledger.audit import AuditReader, NotFound, NotSealed

AUDITORS = ("auditor", "admin")
router = APIRouter(prefix="/api/audit", tags=["audit"], dependencies=[Depends(require(*AUDITORS))])
_lock = threading.Lock()


def reader(request: Request) -> AuditReader:
    """The app's AuditReader, opened on first use (override this dependency to point it elsewhere)."""
    r = getattr(request.app.state, "ledger_audit", None)
    if r is None:
        with _lock:
            r = getattr(request.app.state, "ledger_audit", None)
            if r is None:
                from chargeverse.settings import get_settings

                r = AuditReader(get_settings().postgres_dsn.get_secret_value())
                request.app.state.ledger_audit = r
    return r


def _utc(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t


def _account(account: str) -> str:
    try:
        accounts.parse(account)
    except accounts.InvalidAccount as exc:
        raise HTTPException(422, str(exc)) from None
    return account


def _currency(currency: str | None) -> str | None:
    if currency is not None:
        try:
            money.minor_units(currency)
        except money.UnknownCurrency as exc:
            raise HTTPException(422, str(exc)) from None
    return currency


@router.get("/accounts/{account}/balance", summary="Balance of an account, now or as of a time",
            responses={404: {"description": "no postings on the account (up to that time)"}})
def balance(account: str = Path(..., description="e.g. driver:u-42:wallet"),
            as_of: datetime | None = Query(None, description="business time (occurred_at); default: now"),
            currency: str | None = Query(None, description="ISO 4217; default: every currency of the account"),
            r: AuditReader = Depends(reader)) -> dict[str, Any]:
    try:
        rows = r.balance(_account(account), _utc(as_of), _currency(currency))
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return {"account": account, "balances": [b.to_json() for b in rows]}


@router.get("/accounts/{account}/statement", summary="Postings of an account over a time range, with running balance")
def statement(account: str, currency: str = Query(..., description="ISO 4217"),
              from_: datetime = Query(..., alias="from", description="inclusive"),
              to: datetime = Query(..., description="exclusive"),
              limit: int = Query(1000, ge=1, le=10_000),
              r: AuditReader = Depends(reader)) -> dict[str, Any]:
    since, until = from_ if from_.tzinfo else from_.replace(tzinfo=timezone.utc), \
        to if to.tzinfo else to.replace(tzinfo=timezone.utc)
    if until <= since:
        raise HTTPException(422, "`to` must be after `from`")
    _currency(currency)
    return r.statement(_account(account), currency, since, until, limit)


@router.get("/sessions/{session_id}/postings", summary="Every posting set of a session with its source events")
def session_postings(session_id: str, r: AuditReader = Depends(reader)) -> dict[str, Any]:
    try:
        return {"session_id": session_id, "posting_sets": r.session(session_id)}
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/postings/{ledger_partition}/{seq}/proof",
            summary="Inclusion proof of a posting against the latest seal covering it",
            responses={404: {"description": "no such posting"}, 409: {"description": "not sealed yet"}})
def proof(ledger_partition: str, seq: int = Path(..., ge=1), r: AuditReader = Depends(reader)) -> dict[str, Any]:
    try:
        return r.proof(ledger_partition, seq).to_json()
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except NotSealed as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/posting-sets/{ledger_key}/{source_event_id}/proof",
            summary="Inclusion proof of one entry of a posting set (by its source event)")
def set_proof(ledger_key: str, source_event_id: str, entry: int = Query(0, ge=0),
              r: AuditReader = Depends(reader)) -> dict[str, Any]:
    try:
        part, seq = r.locate(ledger_key, source_event_id, entry)
        return r.proof(part, seq).to_json()
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except NotSealed as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/seals", summary="The latest seals (Merkle roots), newest first")
def seals(limit: int = Query(20, ge=1, le=1000), r: AuditReader = Depends(reader)) -> dict[str, Any]:
    return {"seals": r.seals(limit)}


@router.get("/rejections", summary="Events the ledger refused, with the reason")
def rejections(limit: int = Query(100, ge=1, le=1000), r: AuditReader = Depends(reader)) -> dict[str, Any]:
    return {"rejections": list(r.rejections(limit))}
