"""Operator API for charger commands: send any CSMS-initiated OCPP call to any charger and read its result.

The API never talks to a charger.  It validates the call against the official schema (a bad call is a 422 with
the schema's reason, and nothing reaches the log), publishes an `OcppCommandRequested` event, and waits, bounded,
for the `pg.ocpp_commands` projection to show the command's outcome (recorded by the edge holding the socket).
If the outcome is not there in time the answer is 202 with the command's URL to poll.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from chargeverse.events import envelope, uuid7
from chargeverse.kafka import DeliveryError
from chargeverse.ocpp_commands import VERSIONS, CommandInvalid, validate
from chargeverse.topics import OCPP_COMMANDS
from edges.api.auth import require

router = APIRouter(prefix="/api/operator", tags=["operator: charger commands"])
OPERATORS = ("operator", "admin")


class CommandIn(BaseModel):
    action: str = Field(..., min_length=1, max_length=64, examples=["RemoteStartTransaction"],
                        description="a CSMS-initiated OCPP action of OCPP 1.6 (with the security extension) or "
                                    "2.0.1")
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"idTag": "DRIVER-1", "connectorId": 1}])
    ocpp_version: str | None = Field(None, description="ocpp1.6 or ocpp2.0.1; default: any version whose schema "
                                                       "accepts the payload")
    timeout_s: float = Field(30, gt=0, le=300, description="how long the edge waits for the charger's answer")
    wait_s: float = Field(10, ge=0, le=60, description="how long this request waits for the outcome before "
                                                       "answering 202")


class CommandOut(BaseModel):
    command_id: str
    charge_point_id: str
    action: str
    payload: dict[str, Any]
    ocpp_version: str | None
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    outcome: str | None = Field(None, description="RESULT, ERROR, TIMEOUT, OFFLINE, REFUSED, EXPIRED; "
                                                  "null while pending")
    result: Any = None
    error_code: str | None = None
    error_description: str | None = None
    resolved_at: datetime | None = None


_COLUMNS = ("command_id, charge_point_id, action, payload, ocpp_version, requested_by, requested_at, expires_at, "
            "outcome, result, error_code, error_description, resolved_at")


async def _fetch(request: Request, command_id: str) -> CommandOut | None:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM ocpp_commands WHERE command_id = %s", (command_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    return CommandOut(**dict(zip([c.strip() for c in _COLUMNS.split(",")], row)))


@router.post("/chargers/{charge_point_id}/commands", response_model=CommandOut,
             summary="Send an OCPP command to a charger",
             responses={202: {"description": "accepted; the outcome is not known yet: poll the Location"},
                        422: {"description": "unknown action or a payload its schema rejects"}})
async def send_command(charge_point_id: str, body: CommandIn, request: Request, response: Response,
                       who: dict[str, Any] = Depends(require(*OPERATORS))) -> CommandOut:
    if not 0 < len(charge_point_id) <= 48:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "charge point id must be 1-48 characters")
    if body.ocpp_version is not None and body.ocpp_version not in VERSIONS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"ocpp_version must be one of {', '.join(VERSIONS)}")
    try:
        validate(body.action, body.payload, body.ocpp_version)
    except CommandInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    command_id = uuid7()
    now = datetime.now(timezone.utc)
    rec = envelope(source="edges.api", correlation_id=command_id)
    rec.update(command_id=command_id, charge_point_id=charge_point_id, action=body.action,
               payload=json.dumps(body.payload), ocpp_version=body.ocpp_version, requested_by=str(who["sub"]),
               expires_at=now + timedelta(seconds=body.timeout_s + 60), timeout_ms=int(body.timeout_s * 1000))
    try:
        await request.app.state.producer.publish(OCPP_COMMANDS.name, charge_point_id, "OcppCommandRequested", rec)
    except DeliveryError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the event log is unavailable; retry") from exc
    deadline = time.monotonic() + body.wait_s
    while True:
        found = await _fetch(request, command_id)
        if found is not None and found.outcome is not None:
            return found
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/api/operator/commands/{command_id}"
    return found or CommandOut(command_id=command_id, charge_point_id=charge_point_id, action=body.action,
                               payload=body.payload, ocpp_version=body.ocpp_version,
                               requested_by=str(who["sub"]), requested_at=now, expires_at=rec["expires_at"])


@router.get("/commands/{command_id}", response_model=CommandOut, summary="A command and its outcome")
async def get_command(command_id: str, request: Request,
                      _: dict[str, Any] = Depends(require(*OPERATORS))) -> CommandOut:
    found = await _fetch(request, command_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such command (or not yet projected)")
    return found


@router.get("/chargers/{charge_point_id}/commands", response_model=list[CommandOut],
            summary="A charger's commands, newest first")
async def list_commands(charge_point_id: str, request: Request, limit: int = Query(50, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=100_000),
                        _: dict[str, Any] = Depends(require(*OPERATORS))) -> list[CommandOut]:
    async with request.app.state.pg.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM ocpp_commands WHERE charge_point_id = %s "
            "ORDER BY requested_at DESC, command_id DESC LIMIT %s OFFSET %s", (charge_point_id, limit, offset))
        rows = await cur.fetchall()
    names = [c.strip() for c in _COLUMNS.split(",")]
    return [CommandOut(**dict(zip(names, r))) for r in rows]
