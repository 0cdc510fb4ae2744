"""The signed-in driver's notifications (`GET /api/me/notifications`), read from the notifications projection
(projections/postgres/notifications.py), newest first.  What decides them is streams/notifications/ (session
finished, charger fault during a session); what sends them is the sender worker this API process runs when
`CV_NOTIFICATIONS_WORKER=true` (streams/notifications/worker.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from edges.api.auth import require
from edges.api.runtime import GuardedRoute

router = APIRouter(prefix="/api/me", tags=["me"], route_class=GuardedRoute)


class NotificationOut(BaseModel):
    notification_id: str
    kind: str = Field(..., description="session_finished | charger_fault")
    station_id: str
    session_id: str | None
    connector_id: int | None
    data: dict[str, Any] = Field(..., description="facts of the notification, e.g. energy_kwh, error_code")
    requested_at: datetime
    status: str = Field(..., description="pending | sent | failed")
    channel: str | None
    outcome_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    limit: int
    offset: int


@router.get("/notifications", response_model=NotificationPage, summary="My notifications, newest first")
async def my_notifications(request: Request, limit: int = Query(20, ge=1, le=100),
                           offset: int = Query(0, ge=0, le=100_000),
                           p: dict = Depends(require("driver", "fleet_manager", "admin"))) -> NotificationPage:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT notification_id, kind, station_id, session_id, connector_id, data, requested_at, status, "
            "channel, outcome_at FROM notifications WHERE account_id = %s "
            "ORDER BY requested_at DESC, notification_id LIMIT %s OFFSET %s", (str(p["sub"]), limit, offset))
        rows = await cur.fetchall()
    items = [NotificationOut(notification_id=r[0], kind=r[1], station_id=r[2], session_id=r[3], connector_id=r[4],
                             data=r[5] if isinstance(r[5], dict) else {}, requested_at=r[6], status=r[7],
                             channel=r[8], outcome_at=r[9]) for r in rows]
    return NotificationPage(items=items, limit=limit, offset=offset)
