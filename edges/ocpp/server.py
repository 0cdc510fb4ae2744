"""The OCPP edge (CSMS side): `ws(s)://host/ocpp/{chargePointId}`, OCPP 1.6-J and 2.0.1 on one endpoint
(`cv run ocpp`).

Versions are negotiated by the WebSocket subprotocol (`ocpp2.0.1` preferred over `ocpp1.6` when a charger offers
both); any other subprotocol is refused at the handshake (HTTP 400).  Who may connect, and with which security
profile (0-3), is decided at the handshake too (edges/ocpp/credentials.py, edges/ocpp/tls.py): unknown, revoked
and downgrading chargers get HTTP 401.

What it does, in order, for every frame: parse and validate (never raising: a bad frame gets the protocol's
CALLERROR and the connection keeps serving), look up what the answer needs (id tokens, a transaction id) in the
Postgres projections, publish the frame verbatim to `ocpp.frames` and wait for the broker's acknowledgement, then
answer, then publish the answer (an OUT frame carrying the CALL it answers).  A charger is therefore never told
"Accepted" for a frame that is not on the log; if the log cannot take it, the charger gets InternalError and
retries.  It never writes a projection.

Bad input, each answered, recorded, and never fatal to the edge or to other chargers:
- malformed frames -> the version's framing CALLERROR; unknown actions -> NotImplemented; actions of the other
  direction -> NotSupported; schema violations -> the constraint-violation codes (or leniency, per model);
- floods -> a token bucket per connection; a CALL over the limit is answered CALLERROR GenericError with
  errorDetails {"reason": "RateLimitExceeded", "retryAfterSeconds": ...} (neither OCPP-J 1.6 nor 2.0.1 defines a
  rate-limit code; GenericError is the one both allow) and the socket keeps serving;
- retransmitted CALLs (same message id and content on the same connection) -> the identical answer again, not
  re-processed (not across reconnects: chargers that number their messages restart the count when they reboot);
- CALLRESULT/CALLERROR for an id we never sent -> recorded (valid=false) and ignored (`on_result`);
- frames over the size limit -> the socket is closed with 1009 (message too big).

Liveness: WebSocket pings every heartbeat/2 seconds with a heartbeat/2 timeout, so a dead charger's socket is
closed (and OcppConnection DISCONNECTED published) within 2 heartbeat intervals.

Hot path: no per-message reflection or regex; schemas are compiled once (jsonschema-rs); handlers are plain dict
functions; the two events of a frame are written by Avro writers compiled from their schemas (edges/ocpp/wire.py);
events nobody awaits (answers, connection changes) carry no future; websockets' per-connection INFO lines are
off; registration reads of concurrent handshakes share one statement (edges/ocpp/coalesce.py); cyclic-GC pauses
stay short by freezing survivors every second (chargeverse/gc_pacing.py, `run`); `cv run ocpp` serves on uvloop
(`main`, CV_OCPP_UVLOOP).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
import weakref
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chargeverse.gc_pacing import GcPacer
from chargeverse.events import envelope, utcnow, uuid7
from chargeverse.kafka import DeliveryError, EventProducer
from chargeverse.settings import Settings, get_settings
from chargeverse.topics import OCPP_FRAMES
from edges.ocpp import framing
from edges.ocpp.authorization import IdTokenStore
from edges.ocpp.context import Context
from edges.ocpp.dispatch import CallOutcome, CommandDispatcher, Held
from edges.ocpp.fastsend import send_text
from edges.ocpp.credentials import Admission, CredentialStore, cache_key_from
from edges.ocpp.leniency import Leniency, Repair, repair
from edges.ocpp.session import AnswerMemory, ChargerSession, PendingCall, Remembered, TokenBucket
from edges.ocpp.tls import TlsConfig, transport_of
from edges.ocpp.versions import SUBPROTOCOLS, VERSIONS
from edges.ocpp.wire import compile_encoder, frame_writer_factory

log = logging.getLogger("edges.ocpp")
#: websockets' own logger for our listeners: its INFO lines ("connection open", "connection closed") are two log
#: writes per charger connection -- in a reconnect storm, thousands of formatted lines and write system calls a
#: second on the event loop.  Connections are on the log as OcppConnection events; warnings still show.
WS_LOG = logging.getLogger("edges.ocpp.websockets")
WS_LOG.setLevel(logging.WARNING)
PATH_PREFIX = "/ocpp/"
MAX_CP_ID = 48
NOT_ACCEPTED = ("Pending", "Rejected")


@dataclass(frozen=True)
class EdgeLimits:
    """Per-connection limits.  Proposed settings: `ocpp_rate_per_second`, `ocpp_rate_burst`."""

    rate: float = 10.0  # sustained CALLs per second per connection
    burst: int = 60  # CALLs at once (a boot with many connectors, an offline queue being flushed)
    answer_memory: int = 16  # answers remembered per connection for retransmissions


def keepalive(heartbeat_interval: int) -> tuple[float, float, float]:
    """(ping interval, ping timeout, close timeout): a silent peer is dropped within 2 heartbeat intervals."""
    half = max(0.25, heartbeat_interval / 2)
    return half, half, min(10.0, half)


def _refused(code: str, why: str) -> dict[str, Any]:
    """IN-frame fields of a CALL we refused (processors never act on it)."""
    return {"valid": False, "error_code": code, "error_description": why}


def _refuse(mid: str, code: str, why: str) -> tuple[dict[str, Any], str, None]:
    return _refused(code, why), framing.call_error(mid, code, why), None


def _report_unrecorded(fut: asyncio.Future[Any], what: str) -> None:
    """Done-callback of a publish nobody awaits: a refusal is an error in the edge's log, never silent."""
    if not fut.cancelled() and fut.exception() is not None:
        log.error("%s not recorded on the log: %s", what, fut.exception())


def close_code(ws: ServerConnection) -> int:
    """The code that ended the connection: ours when we closed it (e.g. 1009 for an oversized frame, 1011 for a
    keepalive timeout), the charger's when it did, 1006 when the socket just died."""
    p = ws.protocol
    ours, theirs = p.close_sent, p.close_rcvd
    if ours is not None and (theirs is None or not p.close_rcvd_then_sent):
        return int(ours.code)
    if theirs is not None:
        return int(theirs.code)
    return 1006


class OcppEdge:
    def __init__(self, settings: Settings | None = None, producer: EventProducer | None = None, *,
                 tls: TlsConfig | None = None, plain: bool | None = None, limits: EdgeLimits | None = None,
                 leniency: Leniency | None = None, data_transfer: Mapping[str, Iterable[str]] | None = None,
                 can_sign: bool = False, token_cache_seconds: float = 30.0, commands: bool = True) -> None:
        """`tls`: also (or only) serve wss:// (profiles 2 and 3).  `plain`: serve ws:// on `ocpp_port` (default:
        yes, unless the TLS listener takes that port).  `data_transfer`: vendorId -> accepted messageIds (empty:
        all).  `can_sign`: a certificate signer is wired (until Plug & Charge / PKI is, SignCertificate is
        Rejected)."""
        self.settings = settings or get_settings()
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{self.settings.ocpp_port}"
        self.source = f"edges.ocpp/{self.instance}"
        # linger 5 ms: frames arriving together go to the broker in one request and the producer's I/O thread is
        # woken once per batch, not per frame (the wake-ups cost more than the frames on a sandboxed kernel)
        self.producer = producer or EventProducer(linger_ms=5)
        self.tls = tls
        self.plain = plain if plain is not None else (tls is None or tls.port is not None)
        self.limits = limits or EdgeLimits()
        self.leniency = leniency or Leniency()
        self.data_transfer = {k: frozenset(v) for k, v in (data_transfer or {}).items()}
        self.can_sign = can_sign
        # read-only lookups, one statement each: autocommit spares every lookup its COMMIT round trip
        self.pool = AsyncConnectionPool(self.settings.postgres_dsn.get_secret_value(), min_size=2, max_size=8,
                                        kwargs={"autocommit": True}, open=False)
        self.redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            self.settings.redis_url.get_secret_value(), max_connections=16, timeout=5))
        self.credentials = CredentialStore(pool=self.pool, redis=self.redis,
                                           cache_key=cache_key_from(self.settings.jwt_secret.get_secret_value()))
        self.tokens = IdTokenStore(self.pool, ttl=token_cache_seconds,
                                   ocpi_schema=self.settings.ocpi_schema_name)
        self.connections: dict[str, ServerConnection] = {}
        self.sessions: dict[str, ChargerSession] = {}
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, Admission] = weakref.WeakKeyDictionary()
        self.servers: list[Any] = []
        self.server: Any = None  # the first listener (kept for callers that predate TLS)
        #: commands from `ocpp.commands` to the chargers this instance holds (edges/ocpp/dispatch.py)
        self.commands = commands
        self.dispatcher: CommandDispatcher | None = None
        # the two events every frame and connection costs, encoded by writers compiled from their schemas (same
        # bytes as the codec; None with a schema registry: then the codec encodes)
        codec = getattr(self.producer, "codec", None)
        self._encoders = {} if codec is None else {
            t: e for t in ("OcppFrame", "OcppConnection") if (e := compile_encoder(codec, t)) is not None}
        #: per-connection OcppFrame writers with the connection's constant fields encoded once (None: the codec)
        self._frame_writer = None if codec is None else frame_writer_factory(codec)

    # ---- publishing ----------------------------------------------------------------------------------------------
    async def _publish(self, key: str, event_type: str, rec: dict[str, Any]) -> Any:
        """Write one event to `ocpp.frames` and wait for the broker's acknowledgement (DeliveryError if refused)."""
        encode = self._encoders.get(event_type)
        if encode is None:
            return await self.producer.publish(OCPP_FRAMES.name, key, event_type, rec)
        return await self.producer.publish_raw(OCPP_FRAMES.name, key, encode(rec))

    def _frame_value(self, s: ChargerSession, direction: str, event_id: str, raw: str, fields: dict[str, Any],
                     causation_id: str | None) -> bytes:
        """One OcppFrame event of `s`, encoded: by the connection's FrameWriter, else (a schema registry, or a schema
        the writer does not know) from a record.  `fields`: the frame fields other than raw (absent: defaults)."""
        if s.writer is not None:
            return s.writer.write(direction, event_id, time.time_ns() // 1000, causation_id, raw, fields)
        rec = self._frame_record(s, direction, raw, event_id=event_id, causation_id=causation_id, **fields)
        encode = self._encoders.get("OcppFrame")
        return encode(rec) if encode is not None else self.producer.codec.encode("OcppFrame", rec)

    async def _publish_frame(self, s: ChargerSession, direction: str, raw: str, fields: dict[str, Any],
                             causation_id: str | None = None, event_id: str | None = None) -> str:
        """Write one OcppFrame event of `s` and wait for the broker's acknowledgement (DeliveryError if refused);
        returns its event id."""
        event_id = event_id or uuid7()
        await self.producer.publish_raw(OCPP_FRAMES.name, s.charge_point_id,
                                        self._frame_value(s, direction, event_id, raw, fields, causation_id))
        return event_id

    def _publish_frame_nowait(self, s: ChargerSession, direction: str, raw: str, fields: dict[str, Any],
                              causation_id: str | None, what: str) -> str:
        """As `_publish_frame`, acknowledged in the background (log order kept; a refusal is logged)."""
        event_id = uuid7()
        self.producer.publish_raw_unawaited(
            OCPP_FRAMES.name, s.charge_point_id, self._frame_value(s, direction, event_id, raw, fields, causation_id),
            lambda why: log.error("%s not recorded on the log: %s", what, why))
        return event_id

    def _publish_nowait(self, key: str, event_type: str, rec: dict[str, Any], what: str) -> None:
        """Hand one event to the producer now (log order kept), acknowledged in the background; a refusal is
        logged as an error."""
        encode = self._encoders.get(event_type)
        if encode is None:
            self.producer.publish_nowait(OCPP_FRAMES.name, key, event_type, rec
                                         ).add_done_callback(lambda f: _report_unrecorded(f, what))
        else:  # no future: the refusal is reported from the producer's delivery thread
            self.producer.publish_raw_unawaited(OCPP_FRAMES.name, key, encode(rec),
                                                lambda why: log.error("%s not recorded on the log: %s", what, why))

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
        if "/" in cp_id or ":" in cp_id or len(cp_id) > MAX_CP_ID:
            return connection.respond(HTTPStatus.NOT_FOUND, "bad charge point id\n")
        offered = {p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")}
        if not offered.intersection(SUBPROTOCOLS):
            return connection.respond(HTTPStatus.BAD_REQUEST,
                                      f"unsupported OCPP subprotocol; supported: {', '.join(SUBPROTOCOLS)}\n")
        try:
            admission = await self.credentials.admit(cp_id, request.headers.get("Authorization"),
                                                     transport_of(connection))
        except Exception as exc:  # noqa: BLE001 - the store is down: the charger retries later
            log.error("could not check %s at handshake: %s", cp_id, exc)
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try again later\n")
        if not admission.ok:
            log.info("refused %s at handshake: %s", cp_id, admission.reason)  # never the secret
            resp = connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
            resp.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return resp
        self._admitted[connection] = admission
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
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"postgres: {type(exc).__name__}")
        return problems

    # ---- connection --------------------------------------------------------------------------------------------
    def _session(self, ws: ServerConnection, cp_id: str) -> ChargerSession:
        admission = self._admitted.pop(ws, None)
        reg = admission.registration if admission else None
        s = ChargerSession(
            charge_point_id=cp_id, connection_id=uuid7(), version=VERSIONS[ws.subprotocol or SUBPROTOCOLS[-1]],
            security_profile=admission.profile if admission and admission.profile is not None else 1,
            bucket=TokenBucket(self.limits.rate, self.limits.burst, asyncio.get_running_loop().time()),
            memory=AnswerMemory(self.limits.answer_memory),
            registration_status=reg.registration_status if reg else "Accepted",
            vendor=reg.vendor if reg else None, model=reg.model if reg else None)
        s.rules = self.leniency.rules_for(s.vendor, s.model)
        if self._frame_writer is not None:
            s.writer = self._frame_writer(self.source, cp_id, s.version.subprotocol, s.connection_id)
        return s

    async def handler(self, ws: ServerConnection) -> None:
        cp_id = unquote(ws.request.path.split("?", 1)[0][len(PATH_PREFIX):])  # type: ignore[union-attr]
        s = self._session(ws, cp_id)
        previous = self.connections.get(cp_id)
        self.connections[cp_id] = ws
        self.sessions[cp_id] = s
        if previous is not None:  # a charger reconnected: the newest socket wins
            await previous.close(1000, "replaced by a new connection")
        self._connection_event(s, "CONNECTED", ws)
        await self._route(cp_id, up=True)
        try:
            async for message in ws:
                await self.on_frame(ws, s, message)
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(cp_id) is ws:
                del self.connections[cp_id]
                del self.sessions[cp_id]
                await self._route(cp_id, up=False)
            for pending in s.pending.values():  # CALLs of ours that will never be answered on this socket
                if pending.future is not None and not pending.future.done():
                    pending.future.set_exception(ConnectionError("charger disconnected"))
            self._connection_event(s, "DISCONNECTED", ws)

    async def _route(self, cp_id: str, *, up: bool) -> None:
        """Tell the other edge instances (through Redis) which one holds this charger, for command routing."""
        if self.dispatcher is None:
            return
        try:
            await (self.dispatcher.route_up(cp_id) if up else self.dispatcher.route_down(cp_id))
        except Exception as exc:  # noqa: BLE001 - routing is best effort; serving the charger is not
            log.warning("command route of %s not updated: %s", cp_id, exc)

    # ---- commands: CALLs from us to a charger ------------------------------------------------------------------
    def held(self, cp_id: str) -> Held | None:
        s = self.sessions.get(cp_id)
        return None if s is None else Held(s.version.subprotocol, s.security_profile)

    async def send_call(self, cp_id: str, action: str, payload: dict[str, Any], timeout: float) -> CallOutcome:
        """Send one CALL to a charger we hold and wait for its answer.  The CALL is on the log before it is
        sent; the answer is recorded by on_frame like every frame."""
        ws, s = self.connections.get(cp_id), self.sessions.get(cp_id)
        if ws is None or s is None:
            return CallOutcome("OFFLINE", error_description="the charger disconnected")
        message_id = uuid7()
        raw = framing.call(message_id, action, payload)
        event_id = uuid7()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        s.pending[message_id] = PendingCall(action, raw, event_id, fut)
        try:
            await self._publish_frame(s, "OUT", raw, {"message_type_id": framing.CALL, "message_id": message_id,
                                                      "action": action}, event_id=event_id)
            await ws.send(raw)
            frame = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return CallOutcome("TIMEOUT", error_description=f"no answer within {timeout:g}s", message_id=message_id)
        except (ConnectionError, ConnectionClosed) as exc:
            return CallOutcome("OFFLINE", error_description=str(exc) or "the charger disconnected",
                               message_id=message_id)
        except DeliveryError as exc:
            return CallOutcome("REFUSED", error_code="LogUnavailable", error_description=str(exc),
                               message_id=message_id)
        finally:
            s.pending.pop(message_id, None)
        if frame.type_id == framing.CALLRESULT:
            return CallOutcome("RESULT", result=frame.payload, message_id=message_id)
        return CallOutcome("ERROR", error_code=frame.error_code, error_description=frame.error_description,
                           message_id=message_id)

    def _connection_event(self, s: ChargerSession, state: str, ws: ServerConnection) -> None:
        rec = envelope(source=self.source, correlation_id=s.connection_id)
        rec.update(charge_point_id=s.charge_point_id, connection_id=s.connection_id, state=state,
                   ocpp_version=s.version.subprotocol, edge_instance=self.instance,
                   remote_address=str(ws.remote_address[0]) if ws.remote_address else None,
                   close_code=close_code(ws) if state == "DISCONNECTED" else None,
                   security_profile=s.security_profile)
        # handed to the producer now (so it precedes every frame of this connection on the log), acknowledged in
        # the background: the charger's first frame need not wait a broker round trip for it
        self._publish_nowait(s.charge_point_id, "OcppConnection", rec, f"{state} of {s.charge_point_id}")

    # ---- answers -----------------------------------------------------------------------------------------------
    async def answer_call(self, s: ChargerSession, frame: framing.Frame) -> tuple[dict[str, Any], str,
                                                                                  Repair | None]:
        """(extra fields of the IN frame event, reply text, the leniency repair if any) for one CALL."""
        v, action, mid = s.version, frame.action or "", frame.message_id
        if action not in v.cp_initiated:
            if action in v.cs_initiated:
                return _refuse(mid, "NotSupported", f"{action} is sent by a CSMS, not to it")
            return _refuse(mid, "NotImplemented", f"unknown action {action!r}")
        if s.boot_status in NOT_ACCEPTED and action != "BootNotification" and action not in s.triggered:
            return _refuse(mid, "SecurityError",
                           f"not accepted: the last BootNotification was answered {s.boot_status}")
        if action in v.certificate_operations and s.security_profile < 2:
            return _refuse(mid, "SecurityError", f"{action} needs a TLS connection (security profile 2 or 3)")
        payload: dict[str, Any] = frame.payload
        if action == "BootNotification":  # the model is known from here on (leniency may apply to the boot)
            vendor, model = v.identify(payload)
            if vendor is not None and model is not None:
                s.vendor, s.model = vendor, model
                s.rules = self.leniency.rules_for(vendor, model)
        repaired: Repair | None = None
        bad = v.schemas.check(action, payload)
        if bad is not None:
            repaired = repair(v.schemas, action, payload, s.rules) if s.rules else None
            if repaired is None:
                return _refuse(mid, *bad)
            payload = repaired.payload
        handler = v.handlers.get(action)
        if handler is None:
            return _refuse(mid, "NotSupported", f"{action} is not supported by this CSMS yet")
        tokens: dict[str, Any] = {}
        transaction_id: int | None = None
        need = v.needs.get(action)
        if need is not None:
            n = need(payload)
            try:
                if n.tokens:
                    tokens = await self.tokens.lookup(n.tokens, station_id=s.charge_point_id)
                if n.transaction_id:
                    transaction_id = await self.tokens.next_transaction_id()
            except Exception as exc:  # noqa: BLE001 - a store outage is the charger's InternalError, not ours
                log.error("lookup for %s of %s failed: %s", action, s.charge_point_id, exc)
                return _refuse(mid, "InternalError", "could not look up the data for this answer; retry later")
        if action == "BootNotification":  # the operator's decision as of now: a Pending station re-boots on the
            try:                          # same socket after the interval and must see it accepted (B02)
                reg = await self.credentials.lookup(s.charge_point_id)
            except Exception as exc:  # noqa: BLE001 - keep what the handshake read
                log.warning("registration of %s not re-read at boot: %s", s.charge_point_id, exc)
            else:
                s.registration_status = "Rejected" if reg is None or reg.revoked else reg.registration_status
        ctx = Context(s.charge_point_id, utcnow(), self.settings.ocpp_heartbeat_interval,
                      registration_status=s.registration_status, security_profile=s.security_profile,
                      can_sign=self.can_sign, data_transfer=self.data_transfer, tokens=tokens,
                      transaction_id=transaction_id)
        result = handler(ctx, payload)
        if action == "BootNotification":
            s.boot_status = result["status"]
        fields = {"valid": True, "error_code": None, "error_description": None}
        if repaired is not None:
            fields["normalized"] = json.dumps(payload, separators=(",", ":"))
        return fields, framing.call_result(mid, result), repaired

    def on_result(self, s: ChargerSession, frame: framing.Frame) -> dict[str, Any]:
        """A CALLRESULT/CALLERROR from the charger: the answer to one of our CALLs, or (unknown id) recorded and
        ignored.  The outbound commands path registers its CALLs in `s.pending`; this resolves them."""
        pending = s.pending.pop(frame.message_id, None)
        if pending is None:
            return {"valid": False, "error_description": "no CALL of ours is pending with this message id; ignored"}
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(frame)
        return {"action": pending.action, "answers": pending.raw}

    # ---- frames ------------------------------------------------------------------------------------------------
    def _frame_record(self, s: ChargerSession, direction: str, raw: str, **fields: Any) -> dict[str, Any]:
        rec = envelope(source=self.source, correlation_id=s.connection_id)
        rec.update(charge_point_id=s.charge_point_id, direction=direction, ocpp_version=s.version.subprotocol,
                   connection_id=s.connection_id, raw=raw, message_type_id=None, message_id=None, action=None,
                   valid=True, error_code=None, error_description=None, answers=None, normalized=None,
                   retransmission_of=None)
        rec.update(fields)
        return rec

    async def on_frame(self, ws: ServerConnection, s: ChargerSession, text: str | bytes) -> None:
        raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
        parsed = framing.parse(text, s.version.dialect)
        repaired: Repair | None = None
        remembered: Remembered | None = None
        reply: str | None = None
        if isinstance(parsed, framing.FrameError):
            fields: dict[str, Any] = {"message_type_id": parsed.type_id, "message_id": parsed.message_id,
                                      "action": parsed.action, **_refused(parsed.code, parsed.description)}
            reply = framing.call_error(parsed.message_id, parsed.code, parsed.description)
        else:
            fields = {"message_type_id": parsed.type_id, "message_id": parsed.message_id, "action": parsed.action}
            if parsed.type_id != framing.CALL:
                fields.update(self.on_result(s, parsed))
            elif not s.bucket.take(asyncio.get_running_loop().time()):
                retry = round(s.bucket.retry_after(), 3)
                why = (f"rate limit exceeded: at most {self.limits.rate:g} messages/s "
                       f"(burst {self.limits.burst}); retry in {retry}s")
                fields.update(_refused("GenericError", why))
                reply = framing.call_error(parsed.message_id, "GenericError", why,
                                           {"reason": "RateLimitExceeded", "retryAfterSeconds": retry})
            elif (remembered := s.memory.recall(parsed.message_id, parsed.action, parsed.payload)) is not None:
                fields["retransmission_of"] = remembered.in_event_id
                reply = remembered.reply
            else:
                try:
                    extra, reply, repaired = await self.answer_call(s, parsed)
                except Exception:  # noqa: BLE001 - a bug in one answer must not take the socket down
                    log.exception("answering %s from %s failed", parsed.action, s.charge_point_id)
                    extra = _refused("InternalError", "the CSMS failed to answer this message")
                    reply = framing.call_error(parsed.message_id, "InternalError",
                                               "the CSMS failed to answer this message")
                fields.update(extra)
        try:
            in_id = await self._publish_frame(s, "IN", raw, fields)
        except DeliveryError as exc:
            log.error("log unavailable, frame from %s not accepted: %s", s.charge_point_id, exc)
            if fields["message_type_id"] == framing.CALL:
                await ws.send(framing.call_error(fields["message_id"], "InternalError",
                                                 "could not record the message; retry later"))
            return
        if reply is None:
            return
        await send_text(ws, reply)
        is_result = reply.startswith("[3")
        # the answer is already with the charger: record it (and any leniency repair) in log order, but read the
        # charger's next frame without waiting for the broker's acknowledgement
        what = f"answer to {s.charge_point_id}"
        out_id = self._publish_frame_nowait(
            s, "OUT", reply, {"message_type_id": 3 if is_result else 4, "message_id": fields["message_id"],
                              "action": fields["action"],
                              "answers": raw if fields["message_type_id"] == framing.CALL else None,
                              "retransmission_of": remembered.out_event_id if remembered else None}, in_id, what)
        if is_result and remembered is None and isinstance(parsed, framing.Frame):
            s.memory.remember(parsed.message_id, Remembered(parsed.action or "", parsed.payload, reply, in_id, out_id))
        if repaired is not None and isinstance(parsed, framing.Frame):
            self._publish_nowait(s.charge_point_id, "OcppDeviation",
                                 self._deviation_record(s, parsed, in_id, repaired), what)

    def _deviation_record(self, s: ChargerSession, frame: framing.Frame, in_id: str,
                          repaired: Repair) -> dict[str, Any]:
        rec = envelope(source=self.source, correlation_id=s.connection_id, causation_id=in_id)
        rec.update(charge_point_id=s.charge_point_id, connection_id=s.connection_id,
                   ocpp_version=s.version.subprotocol, vendor=s.vendor or "", model=s.model or "",
                   message_id=frame.message_id, action=frame.action or "",
                   deviations=[d.as_record() for d in repaired.deviations])
        return rec

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.credentials.open()
        ping_interval, ping_timeout, close_timeout = keepalive(self.settings.ocpp_heartbeat_interval)
        common = dict(subprotocols=list(SUBPROTOCOLS), process_request=self.process_request,
                      max_size=self.settings.ocpp_max_frame_bytes, ping_interval=ping_interval,
                      ping_timeout=ping_timeout, close_timeout=close_timeout, logger=WS_LOG,
                      # permessage-deflate (RFC 7692) when a charger offers it: OCPP 2.0.1 (part 4) has a CSMS
                      # support it.  websockets' defaults keep its memory small (12-bit windows, memLevel 5);
                      # chargers that do not offer it pay nothing.  bench/ocpp_edge.py --deflate measures it.
                      compression="deflate",
                      # a reconnect storm arrives faster than one loop accepts: a deep accept queue keeps the
                      # kernel from refusing chargers while the loop catches up (asyncio's default is 100)
                      backlog=4096)
        if self.plain:
            self.servers.append(await serve(self.handler, self.settings.ocpp_host, self.settings.ocpp_port,
                                            **common))  # type: ignore[arg-type]
        if self.tls is not None:
            self.servers.append(await serve(
                self.handler, self.tls.host or self.settings.ocpp_host,
                self.tls.port if self.tls.port is not None else self.settings.ocpp_port,
                ssl=self.tls.server_context(), **common))  # type: ignore[arg-type]
        self.server = self.servers[0]
        if self.commands:
            self.dispatcher = CommandDispatcher(
                instance=self.instance, producer=self.producer, redis_url=self.settings.redis_url.get_secret_value(),
                held=self.held, send_call=self.send_call, bootstrap=self.settings.kafka_bootstrap,
                route_ttl_s=max(3 * self.settings.ocpp_heartbeat_interval, 60))
            await self.dispatcher.start(held_ids=lambda: list(self.sessions))

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()
        log.info("registration reads: %s", self.credentials.batching())
        await self.credentials.close()
        await self.redis.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.producer.flush)

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])

    @property
    def tls_port(self) -> int | None:
        if self.tls is None:
            return None
        return int(self.servers[-1].sockets[0].getsockname()[1])


def edge_from_settings(settings: Settings, producer: EventProducer | None = None) -> OcppEdge:
    """The edge `cv run ocpp` serves, configured from settings.  The TLS, limit, leniency and DataTransfer fields
    are proposed additions to chargeverse/settings.py; until they exist the defaults apply (ws:// only, strict,
    no DataTransfer vendor, default limits)."""
    def opt(name: str, default: Any = None) -> Any:
        return getattr(settings, name, default)

    tls = None
    if opt("ocpp_tls_cert_file"):
        from pathlib import Path

        ca = opt("ocpp_tls_charger_ca_file")
        tls = TlsConfig(Path(opt("ocpp_tls_cert_file")), Path(opt("ocpp_tls_key_file")),
                        Path(ca) if ca else None, port=opt("ocpp_tls_port"))
    leniency = opt("ocpp_leniency")
    if isinstance(leniency, str) and leniency and not leniency.lstrip().startswith("{"):
        from pathlib import Path

        leniency = Path(leniency).read_text()  # a file holding the JSON
    vendors = opt("ocpp_data_transfer_vendors")
    return OcppEdge(settings, producer, tls=tls, leniency=Leniency.from_config(leniency or None),
                    limits=EdgeLimits(rate=opt("ocpp_rate_per_second", EdgeLimits.rate),
                                      burst=opt("ocpp_rate_burst", EdgeLimits.burst)),
                    data_transfer=json.loads(vendors) if isinstance(vendors, str) and vendors else vendors)


async def run(settings: Settings | None = None) -> None:
    edge = edge_from_settings(settings or get_settings())
    await edge.start()
    # Cyclic-GC pauses, not CPU, set the tail latency with thousands of sockets: the collector re-walks every
    # socket's objects.  The pacer freezes survivors each second and reclaims old cycles in one sweep a period.
    pacer = GcPacer(tick=edge.settings.gc_tick_seconds, sweep=edge.settings.gc_sweep_seconds)
    pacer.start()
    log.info("OCPP edge on %s (%s)", ", ".join(
        f"{'wss' if i == len(edge.servers) - 1 and edge.tls else 'ws'}://{edge.settings.ocpp_host}:"
        f"{int(srv.sockets[0].getsockname()[1])}/ocpp/{{id}}" for i, srv in enumerate(edge.servers)),
        ", ".join(SUBPROTOCOLS))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await pacer.stop()
    await edge.stop()
    edge.producer.close()


def main(settings: Settings | None = None) -> None:
    """`cv run ocpp`: serve until SIGTERM/SIGINT, on uvloop unless `ocpp_uvloop` is off (CV_OCPP_UVLOOP=false).

    Why uvloop: the edge's time goes to socket system calls and the Python around each socket event, and libuv's
    loop does both with less (bench/ocpp_edge.py measures the two loops side by side).  websockets' asyncio server
    runs unchanged on it; if uvloop is missing the stock loop serves, with a warning."""
    s = settings or get_settings()
    with asyncio.Runner(loop_factory=loop_factory(s)) as runner:
        runner.run(run(s))


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when `ocpp_uvloop` is on and uvloop is installed, else None (asyncio's own)."""
    if not settings.ocpp_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: serving on asyncio's own event loop")
        return None
    return uvloop.new_event_loop
