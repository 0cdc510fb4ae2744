"""The OCPP edge: `ws(s)://host/ocpp/{chargePointId}`, OCPP 1.6-J (`cv run ocpp`).

What it does, in order, for every frame: parse and validate (never raising: a bad frame gets the protocol's
CALLERROR and the connection keeps serving), publish the frame verbatim to `ocpp.frames` and wait for the broker's
acknowledgement, then answer, then publish the answer.  A charger is therefore never told "Accepted" for a frame
that is not on the log; if the log cannot take it, the charger gets InternalError and retries.

It never writes a projection: it reads charger credentials from Postgres at the handshake, and the decisions
it answers are published as OUT frames for the processors.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chargeverse.events import envelope, uuid7, utcnow
from chargeverse.kafka import DeliveryError, EventProducer
from chargeverse.settings import Settings, get_settings
from chargeverse.topics import OCPP_FRAMES
from edges.ocpp import framing
from edges.ocpp.credentials import CredentialStore
from edges.ocpp.v16 import FORMATION, SUBPROTOCOL
from edges.ocpp.v16.handlers import HANDLERS, Context
from edges.ocpp.v16.validation import CP_INITIATED, check

log = logging.getLogger("edges.ocpp")
PATH_PREFIX = "/ocpp/"


class OcppEdge:
    def __init__(self, settings: Settings | None = None, producer: EventProducer | None = None) -> None:
        self.settings = settings or get_settings()
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{self.settings.ocpp_port}"
        self.source = f"edges.ocpp/{self.instance}"
        self.producer = producer or EventProducer()
        self.credentials = CredentialStore(self.settings.postgres_dsn.get_secret_value())
        self.connections: dict[str, ServerConnection] = {}
        self.server: Any = None

    # ---- handshake ---------------------------------------------------------------------------------------------
    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "alive\n")
        if path == "/readyz":
            problems = await self.readiness()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK,
                                      ("not ready: " + "; ".join(problems) if problems else "ready") + "\n")
        if not path.startswith(PATH_PREFIX) or len(path) <= len(PATH_PREFIX):
            return connection.respond(HTTPStatus.NOT_FOUND, "use /ocpp/{chargePointId}\n")
        cp_id = unquote(path[len(PATH_PREFIX):])
        if "/" in cp_id or len(cp_id) > 48:
            return connection.respond(HTTPStatus.NOT_FOUND, "bad charge point id\n")
        offered = {p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")}
        if SUBPROTOCOL not in offered:
            return connection.respond(HTTPStatus.BAD_REQUEST,
                                      f"unsupported OCPP subprotocol; supported: {SUBPROTOCOL}\n")
        ok, reason = await self.credentials.check(cp_id, request.headers.get("Authorization"))
        if not ok:
            log.info("refused %s at handshake: %s", cp_id, reason)  # never the secret
            resp = connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
            resp.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return resp
        return None

    async def readiness(self) -> list[str]:
        """What stops this edge from serving: the log or the credentials store unreachable."""
        problems = []
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: self.producer.list_topics(timeout=2))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            problems.append(f"kafka: {type(exc).__name__}")
        try:
            async with self.credentials.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"postgres: {type(exc).__name__}")
        return problems

    # ---- connection --------------------------------------------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        cp_id = unquote(ws.request.path.split("?", 1)[0][len(PATH_PREFIX):])  # type: ignore[union-attr]
        conn_id = uuid7()
        previous = self.connections.get(cp_id)
        self.connections[cp_id] = ws
        if previous is not None:  # a charger reconnected: the newest socket wins
            await previous.close(1000, "replaced by a new connection")
        await self._connection_event(cp_id, conn_id, "CONNECTED", ws)
        try:
            async for message in ws:
                await self.on_frame(ws, cp_id, conn_id, message)
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(cp_id) is ws:
                del self.connections[cp_id]
            await self._connection_event(cp_id, conn_id, "DISCONNECTED", ws)

    async def _connection_event(self, cp_id: str, conn_id: str, state: str, ws: ServerConnection) -> None:
        rec = envelope(source=self.source, correlation_id=conn_id)
        rec.update(charge_point_id=cp_id, connection_id=conn_id, state=state, ocpp_version=SUBPROTOCOL,
                   edge_instance=self.instance,
                   remote_address=str(ws.remote_address[0]) if ws.remote_address else None,
                   close_code=ws.close_code if state == "DISCONNECTED" else None, security_profile=1)
        try:
            await self.producer.publish(OCPP_FRAMES.name, cp_id, "OcppConnection", rec)
        except DeliveryError as exc:
            log.error("could not record %s of %s: %s", state, cp_id, exc)

    # ---- frames ------------------------------------------------------------------------------------------------
    def answer(self, cp_id: str, text: str | bytes) -> tuple[dict[str, Any], str | None]:
        """(fields of the IN frame event, reply text or None).  Pure apart from the clock."""
        parsed = framing.parse(text, FORMATION)
        if isinstance(parsed, framing.FrameError):
            return ({"message_type_id": parsed.type_id, "message_id": parsed.message_id, "action": parsed.action,
                     "valid": False, "error_code": parsed.code, "error_description": parsed.description},
                    framing.call_error(parsed.message_id, parsed.code, parsed.description))
        fields = {"message_type_id": parsed.type_id, "message_id": parsed.message_id, "action": parsed.action,
                  "valid": True, "error_code": None, "error_description": None}
        if parsed.type_id != framing.CALL:
            return fields, None  # results of our CALLs: recorded; commands come with the OCPP issue
        action = parsed.action or ""
        if action not in CP_INITIATED:
            code, why = "NotImplemented", f"unknown action {action!r}"
        elif (bad := check(action, parsed.payload)) is not None:
            code, why = bad
        elif action not in HANDLERS:
            code, why = "NotSupported", f"{action} is not supported by this central system yet"
        else:
            ctx = Context(cp_id, utcnow(), self.settings.ocpp_heartbeat_interval)
            return fields, framing.call_result(parsed.message_id, HANDLERS[action](ctx, parsed.payload))
        fields.update(valid=code in ("NotSupported",), error_code=code, error_description=why)
        return fields, framing.call_error(parsed.message_id, code, why)

    def _frame_record(self, cp_id: str, conn_id: str, direction: str, raw: str, **fields: Any) -> dict[str, Any]:
        rec = envelope(source=self.source, correlation_id=conn_id)
        rec.update(charge_point_id=cp_id, direction=direction, ocpp_version=SUBPROTOCOL, connection_id=conn_id,
                   raw=raw, message_type_id=None, message_id=None, action=None, valid=True, error_code=None,
                   error_description=None, answers=None)
        rec.update(fields)
        return rec

    async def on_frame(self, ws: ServerConnection, cp_id: str, conn_id: str, text: str | bytes) -> None:
        fields, reply = self.answer(cp_id, text)
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        in_rec = self._frame_record(cp_id, conn_id, "IN", raw, **fields)
        try:
            await self.producer.publish(OCPP_FRAMES.name, cp_id, "OcppFrame", in_rec)
        except DeliveryError as exc:
            log.error("log unavailable, frame from %s not accepted: %s", cp_id, exc)
            if fields["message_type_id"] == framing.CALL:
                await ws.send(framing.call_error(fields["message_id"], "InternalError",
                                                 "could not record the message; retry later"))
            return
        if reply is None:
            return
        await ws.send(reply)
        out_rec = self._frame_record(
            cp_id, conn_id, "OUT", reply, message_type_id=4 if reply.startswith("[4") else 3,
            message_id=fields["message_id"], action=fields["action"],
            answers=raw if fields["message_type_id"] == framing.CALL else None)
        out_rec["causation_id"] = in_rec["event_id"]
        try:
            await self.producer.publish(OCPP_FRAMES.name, cp_id, "OcppFrame", out_rec)
        except DeliveryError as exc:
            log.error("answer to %s sent but not recorded: %s", cp_id, exc)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.credentials.open()
        self.server = await serve(
            self.handler, self.settings.ocpp_host, self.settings.ocpp_port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self.process_request,
            max_size=self.settings.ocpp_max_frame_bytes,
            ping_interval=30, ping_timeout=30, compression=None,
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.credentials.close()
        await asyncio.get_running_loop().run_in_executor(None, self.producer.flush)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])


async def run(settings: Settings | None = None) -> None:
    edge = OcppEdge(settings)
    await edge.start()
    # Cyclic-GC pauses, not CPU, dominate tail latency with thousands of sockets (DESIGN.md §5): keep start-up
    # objects out of every collection and collect young objects less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    log.info("OCPP edge on ws://%s:%s/ocpp/{id}", edge.settings.ocpp_host, edge.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await edge.stop()
    edge.producer.close()
