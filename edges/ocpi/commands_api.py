"""Commands over HTTP, both roles.

CPO receiver (`POST /ocpi/cpo/2.2.1/commands/{command}`): check the request (HTTP 400 not JSON, 2001 invalid),
resolve it against our projections (own station, session, where a reservation went, the charger's OCPP version)
and turn it into one OcppCommandRequested on `ocpp.commands` (edges/ocpi/commands.py).  The OcpiCommandReceived
event (verbatim body, response_url, our answer, the OCPP command id) is published *first*, so the commands worker
knows where the result goes before the result can exist.  Answer: CommandResponse ACCEPTED with our timeout, or
REJECTED / UNKNOWN_SESSION / NOT_SUPPORTED with the reason - HTTP 200 in every case (the request was understood).
Nothing reaches the charger unless both events are on the log.

eMSP receiver of results (`POST /ocpi/emsp/2.2.1/commands/{command}/{command_id}`, our response_url): the CPO's
async CommandResult, published as OcpiCommandOutcome RESULT; the commands worker matches it with the command (a
result for a command of another partner or none of ours is recorded but changes nothing).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from chargeverse.events import envelope as event_envelope, uuid7
from chargeverse.kafka import DeliveryError
from chargeverse.ocpp_commands import CommandInvalid, validate
from chargeverse.topics import OCPP_COMMANDS
from edges.ocpi import VERSION
from edges.ocpi.auth import Caller, ctx_of, module_caller
from edges.ocpi.commands import (ACCEPTED, COMMANDS, REJECTED, RESULT_TYPES, Refused, Session, check_request,
                                 reservation_number, to_ocpp)
from edges.ocpi.context import OcpiContext
from edges.ocpi.headers import CORRELATION_ID, REQUEST_ID, new_id
from edges.ocpi.status import OcpiError, Status, envelope
from projections.postgres.ocpi_fold import loads

log = logging.getLogger(__name__)
cpo = APIRouter(prefix=f"/cpo/{VERSION}", tags=["CPO receiver interfaces"])
emsp = APIRouter(prefix=f"/emsp/{VERSION}", tags=["eMSP sender interfaces"])


def command_key(partner_id: str, command_id: str) -> str:
    return f"{partner_id}|commands|{command_id}"


async def _lookups(ctx: OcpiContext, command: str, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"station_known": False, "version": None, "session": None, "reservation_station": None}
    async with ctx.pool.connection() as conn:
        if command == "STOP_SESSION":
            cur = await conn.execute("SELECT charge_point_id, transaction_id, ocpp_version, status FROM sessions "
                                     "WHERE session_id = %s", (body["session_id"],))
            r = await cur.fetchone()
            if r:
                out["session"] = Session(r[0], r[1], r[2], r[3] == "ACTIVE")
            return out
        if command == "CANCEL_RESERVATION":
            rid = reservation_number(body["reservation_id"])
            cur = await conn.execute(
                "SELECT charge_point_id, ocpp_version FROM ocpp_commands WHERE action = 'ReserveNow' AND "
                "(payload->>'reservationId' = %s OR payload->>'id' = %s) ORDER BY requested_at DESC LIMIT 1",
                (str(rid), str(rid)))
            r = await cur.fetchone()
            if r:
                out["reservation_station"], out["version"] = r[0], r[1]
            return out
        station = body["location_id"]
        cur = await conn.execute("SELECT station_id FROM stations WHERE own AND station_id = %s", (station,))
        out["station_known"] = await cur.fetchone() is not None
        # the version the charger speaks, as its sessions recorded it (NULL: unknown, 1.6 assumed)
        cur = await conn.execute("SELECT ocpp_version FROM sessions WHERE charge_point_id = %s AND ocpp_version "
                                 "IS NOT NULL ORDER BY started_at DESC NULLS LAST LIMIT 1", (station,))
        r = await cur.fetchone()
        out["version"] = r[0] if r else None
    return out


@cpo.post("/commands/{command}", summary="Receive a command for one of our chargers (CommandResponse answer)")
async def receive_command(request: Request, command: str, caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    raw = await request.body()
    try:
        body = loads(raw)
    except ValueError as exc:
        raise OcpiError(Status.INVALID_PARAMETERS, f"the body is not JSON: {exc}", 400) from None
    command = command.upper()
    correlation = request.headers.get(CORRELATION_ID) or new_id()
    sender = caller.route.sender
    rec = event_envelope(source=ctx.source, correlation_id=correlation)
    rec.update(platform_id=ctx.settings.ocpi_platform_id, partner_id=caller.partner.partner_id, command=command,
               raw=raw.decode("utf-8", errors="replace"),
               response_url=body.get("response_url") if isinstance(body, dict) and
               isinstance(body.get("response_url"), str) else None,
               result="INVALID", message=None, ocpp_command_id=None, charge_point_id=None, timeout_s=0,
               request_id=request.headers.get(REQUEST_ID), from_country_code=sender[0] if sender else None,
               from_party_id=sender[1] if sender else None)
    errors = check_request(command, body)
    if errors:
        rec["message"] = "; ".join(errors)
        await _publish(ctx, command_key(caller.partner.partner_id, rec["event_id"]), "OcpiCommandReceived", rec)
        status = Status.INVALID_PARAMETERS
        raise OcpiError(status, rec["message"], 404 if command not in COMMANDS else 200)
    ocpp_command_id = uuid7()
    try:
        call = to_ocpp(command, body, command_id=ocpp_command_id, **await _lookups(ctx, command, body))
        validate(call.action, call.payload, call.version)
    except Refused as exc:
        rec.update(result=exc.result, message=exc.message)
    except CommandInvalid as exc:
        rec.update(result=REJECTED, message=f"cannot be sent to the charger: {exc}")
    else:
        rec.update(result=ACCEPTED, ocpp_command_id=ocpp_command_id, charge_point_id=call.charge_point_id,
                   timeout_s=ctx.settings.ocpi_command_timeout_s)
    await _publish(ctx, command_key(caller.partner.partner_id, ocpp_command_id), "OcpiCommandReceived", rec)
    if rec["result"] == ACCEPTED:
        now = ctx.clock()
        ocpp = event_envelope(source=ctx.source, correlation_id=correlation, causation_id=rec["event_id"])
        ocpp.update(command_id=ocpp_command_id, charge_point_id=call.charge_point_id, action=call.action,
                    payload=json.dumps(call.payload), ocpp_version=call.version,
                    requested_by=f"ocpi:{ctx.settings.ocpi_platform_id}:{caller.partner.partner_id}",
                    expires_at=now + timedelta(seconds=ctx.settings.ocpi_command_timeout_s),
                    timeout_ms=ctx.settings.ocpi_command_ocpp_timeout_s * 1000)
        try:
            await ctx.producer.publish(OCPP_COMMANDS.name, call.charge_point_id, "OcppCommandRequested", ocpp)
        except DeliveryError:
            log.exception("command %s: not on ocpp.commands", ocpp_command_id)
            raise OcpiError(Status.SERVER_ERROR, "cannot queue the command now; retry", 503) from None
        log.info("partner %s: %s -> %s %s (%s)", caller.partner.partner_id, command, call.charge_point_id,
                 call.action, ocpp_command_id)
    answer: dict[str, Any] = {"result": rec["result"], "timeout": rec["timeout_s"]}
    if rec["message"]:
        answer["message"] = {"language": "en", "text": rec["message"]}
    return Response(json.dumps(envelope(answer)), media_type="application/json")


async def _publish(ctx: OcpiContext, key: str, event_type: str, rec: dict[str, Any]) -> None:
    try:
        await ctx.publish(key, event_type, rec)
    except DeliveryError:
        log.exception("%s not on the log", event_type)
        raise OcpiError(Status.SERVER_ERROR, "cannot record the request now; retry", 503) from None


@emsp.post("/commands/{command}/{command_id}", summary="The async CommandResult of a command we sent")
async def receive_result(request: Request, command: str, command_id: str,
                         caller: Caller = Depends(module_caller)) -> Response:
    ctx = ctx_of(request)
    raw = await request.body()
    try:
        body = loads(raw)
    except ValueError as exc:
        raise OcpiError(Status.INVALID_PARAMETERS, f"the body is not JSON: {exc}", 400) from None
    result = body.get("result") if isinstance(body, dict) else None
    if result not in RESULT_TYPES:
        raise OcpiError(Status.INVALID_PARAMETERS, f"result must be one of {', '.join(RESULT_TYPES)}")
    msg = body.get("message")
    text = msg.get("text") if isinstance(msg, dict) else None
    rec = event_envelope(source=ctx.source, correlation_id=request.headers.get(CORRELATION_ID) or new_id())
    rec.update(platform_id=ctx.settings.ocpi_platform_id, partner_id=caller.partner.partner_id, command_id=command_id,
               command=command.upper(), stage="RESULT", result=result, timeout_s=None,
               message=text if isinstance(text, str) else None, raw=raw.decode("utf-8", errors="replace"),
               http_status=None, attempts=0)
    await _publish(ctx, command_key(caller.partner.partner_id, command_id), "OcpiCommandOutcome", rec)
    log.info("partner %s: %s %s -> %s", caller.partner.partner_id, command, command_id, result)
    return Response(json.dumps(envelope(None)), media_type="application/json")
