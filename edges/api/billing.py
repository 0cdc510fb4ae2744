"""Operator API for billing: the review queue (what billing refused to post, with every reason, verbatim)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

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
