"""Operator API for billing: the review queue (what billing refused to post, with every reason, verbatim)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from decimal import Decimal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from chargeverse.events import envelope
from chargeverse.kafka import DeliveryError
from chargeverse.topics import BILLING

from edges.api.auth import require

router = APIRouter(prefix="/api/operator/billing", tags=["operator: billing"])


class Review(BaseModel):
    event_id: str
    subject: str
    session_id: str | None
    account_id: str | None
    reasons: list[dict[str, str]]
    payload_type: str
    payload: str
    source_event_id: str
    queued_at: datetime


@router.get("/reviews", response_model=list[Review], summary="The billing review queue, newest first")
async def reviews(request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=100_000),
                  session_id: str | None = Query(None, max_length=100),
                  _: dict[str, Any] = Depends(require("operator", "admin", "auditor"))) -> list[Review]:
    where, params = "", {"limit": limit, "offset": offset}
    if session_id is not None:
        where, params["sid"] = "WHERE session_id = %(sid)s", session_id
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT event_id, subject, session_id, account_id, reasons, payload_type, payload, source_event_id, "
            f"queued_at FROM billing_reviews {where} ORDER BY queued_at DESC, event_id LIMIT %(limit)s "
            "OFFSET %(offset)s", params)
        rows = await cur.fetchall()
    return [Review(event_id=r[0], subject=r[1], session_id=r[2], account_id=r[3],
                   reasons=r[4] if isinstance(r[4], list) else json.loads(r[4]), payload_type=r[5], payload=r[6],
                   source_event_id=r[7], queued_at=r[8]) for r in rows]


class RefundIn(BaseModel):
    amount: str = Field(..., pattern=r"^[0-9]{1,9}(\.[0-9]{1,4})?$", examples=["1.50"],
                        description="decimal string in the session's currency; at most what was charged")
    reason: str = Field(..., min_length=3, max_length=500)


class RefundOut(BaseModel):
    session_id: str
    account_id: str
    amount: str
    currency: str
    request_id: str = Field(..., description="the RefundRequested event; its outcome is a PaymentEvent REFUNDED "
                                             "(or a review entry) on the billing topic")


@router.post("/sessions/{session_id}/refund", response_model=RefundOut, status_code=202,
             summary="Refund (part of) a billed session through the provider that charged it",
             responses={404: {"description": "no priced CDR for this session"},
                        422: {"description": "amount not positive or above the CDR's total"}})
async def refund(session_id: str, body: RefundIn, request: Request,
                 who: dict[str, Any] = Depends(require("operator", "admin"))) -> RefundOut:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute("SELECT account_id, currency, COALESCE(total_cost_incl_vat, total_cost_excl_vat) "
                                 "FROM cdrs WHERE session_id = %s", (session_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no priced CDR for session {session_id!r}")
    amount = Decimal(body.amount)
    if amount <= 0 or amount > Decimal(str(row[2])):
        raise HTTPException(422, f"amount must be above 0 and at most the session's total {row[2]} {row[1]}")
    rec = envelope(source="edges.api", correlation_id=session_id)
    rec.update(session_id=session_id, account_id=row[0], amount=body.amount, currency=row[1], reason=body.reason,
               requested_by=str(who["sub"]))
    try:
        await request.app.state.producer.publish(BILLING.name, row[0], "RefundRequested", rec)
    except DeliveryError as exc:
        raise HTTPException(503, "the event log is unavailable; retry") from exc
    return RefundOut(session_id=session_id, account_id=row[0], amount=body.amount, currency=row[1],
                     request_id=rec["event_id"])
