"""The OCPI commands worker: our outbound command calls, both roles, driven by the log.

eMSP role - consumes `ocpi.outbound`:
- OcpiCommandSend (ours) and OcpiCommandRequested (the app API's driver start/stop; it carries no platform id,
  so it is ours when its partner is one of our connections): POST the command to the CPO's commands endpoint with
  *our* response_url (`/ocpi/emsp/2.2.1/commands/{command}/{command_id}`), on the partner's lane
  (edges/ocpi/outbound.py: retries with backoff, circuit breaker, one partner never delays another).  What came of
  it is published on `ocpi.inbound` as OcpiCommandOutcome: RESPONSE (their CommandResponse), or UNDELIVERED
  (expired, no endpoint, retries exhausted, circuit open, an error answer).
- The async CommandResult arrives over HTTP (edges/ocpi/commands_api.py -> OcpiCommandOutcome RESULT); a command
  ACCEPTED whose RESULT has not appeared within the CPO's timeout plus CV_OCPI_COMMAND_RESULT_GRACE_S gets
  OcpiCommandOutcome TIMEOUT.

CPO role - consumes `ocpi.inbound` (OcpiCommandReceived ACCEPTED) and `ocpp.commands` (OcppCommandResult): when
the charger's outcome arrives, POST the CommandResult (edges/ocpi/commands.py `command_result`) to the eMSP's
response_url, and record RESULT_SENT or RESULT_UNDELIVERED.

State and restarts: the pending commands are held in memory and rebuilt at start by reading the last
CV_OCPI_COMMANDS_LOOKBACK_SECONDS of the three topics (commands live minutes).  Nothing is sent, and no timeout
is declared, until that read has caught up with the log's end as it was at start, so a restart neither re-sends
a command whose RESPONSE is on the log nor times out one whose RESULT is.  (A crash between a POST and the
publishing of its outcome re-sends that one command: at-least-once, like every sink here.)

Invariant: one instance per platform (its partitions are not split between instances: an OcppCommandResult is
keyed by charger, its OcpiCommandReceived by partner, so a consumer group would separate them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from chargeverse.aiokafka_read import read_batches
from chargeverse.avro import DecodeError
from chargeverse.events import envelope as event_envelope
from chargeverse.settings import Settings
from chargeverse.topics import OCPI_INBOUND, OCPI_OUTBOUND, OCPP_COMMANDS
from edges.ocpi import VERSION
from edges.ocpi.client import call
from edges.ocpi.commands import command_result
from edges.ocpi.commands_api import command_key
from edges.ocpi.config import root_url
from edges.ocpi.outbound import Attempted
from edges.ocpi.store import partner as load_partner
from edges.ocpi.worker_base import OcpiWorker

log = logging.getLogger(__name__)

TOPICS = (OCPI_OUTBOUND.name, OCPI_INBOUND.name, OCPP_COMMANDS.name)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def command_send(*, platform_id: str, partner_id: str, command_id: str, command: str, request: dict[str, Any],
                 requested_by: str, expires_in: timedelta = timedelta(minutes=5), source: str,
                 to_party: tuple[str, str] | None = None, correlation_id: str | None = None) -> dict[str, Any]:
    """An OcpiCommandSend record (publish on `ocpi.outbound` keyed by partner id)."""
    rec = event_envelope(source=source, correlation_id=correlation_id or command_id)
    body = {k: v for k, v in request.items() if k != "response_url"}
    rec.update(platform_id=platform_id, partner_id=partner_id, command_id=command_id, command=command,
               request=json.dumps(body), to_country_code=to_party[0] if to_party else None,
               to_party_id=to_party[1] if to_party else None, requested_by=requested_by,
               expires_at=rec["occurred_at"] + expires_in)
    return rec


@dataclass
class _Out:
    """One command we send (eMSP)."""

    partner_id: str
    command: str
    request: dict[str, Any]
    expires_at: datetime | None
    to_party: tuple[str, str] | None
    cause: dict[str, Any]
    stage: str = "QUEUED"  # QUEUED -> SUBMITTED -> SENT (waiting for RESULT) -> DONE
    deadline: datetime | None = None


@dataclass
class _In:
    """One command we received (CPO)."""

    partner_id: str
    command: str
    response_url: str
    cause: dict[str, Any]
    result: dict[str, Any] | None = None
    done: bool = False


@dataclass
class CommandsWorker(OcpiWorker):
    kind: ClassVar[str] = "commands"
    settings: Settings
    clock: Callable[[], datetime] = _utcnow
    bootstrap: str | None = None
    outs: dict[str, _Out] = field(default_factory=dict)
    ins: dict[str, _In] = field(default_factory=dict)
    early: dict[str, dict[str, Any]] = field(default_factory=dict)  # OcppCommandResult before its command
    caught_up: bool = False
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._setup()

    @property
    def source(self) -> str:
        return f"ocpi-commands:{self.settings.ocpi_platform_id}"

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def _main(self) -> None:
        consumer = await self._open_io(f"ocpi-commands-{self.settings.ocpi_platform_id}")
        try:
            ends = await self._assign(consumer)
            self._ready.set()
            pending = dict(ends)
            if not pending:
                await self._caught_up()
            tick = time.monotonic()
            while not self._stop.is_set():
                batches = await read_batches(consumer, "commands worker", timeout_ms=50, max_records=500)
                for msgs in batches.values():
                    for m in msgs:
                        tp = (m.topic, m.partition)
                        try:
                            etype, rec = self.codec.decode(m.value)
                        except DecodeError:
                            etype, rec = None, None
                        if rec is not None:
                            try:
                                await self._on(etype, rec)
                            except Exception as exc:  # noqa: BLE001 - one bad event never stops the worker
                                log.exception("commands worker: %s failed", etype)
                                self.errors.append(exc)
                        if tp in pending and m.offset + 1 >= pending[tp]:
                            del pending[tp]
                            if not pending:
                                await self._caught_up()
                if self.caught_up and time.monotonic() - tick >= 0.2:
                    tick = time.monotonic()
                    await self._sweep()
        except Exception as exc:  # noqa: BLE001
            log.exception("commands worker stopped")
            self.errors.append(exc)
            self._ready.set()
        finally:
            await self._close_io(consumer)

    async def _assign(self, consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
        """Assign every partition from `lookback` ago; return the partitions' ends as of now (non-empty ranges)."""
        tps = [TopicPartition(t, p) for t in TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        since = int((time.time() - self.settings.ocpi_commands_lookback_seconds) * 1000)
        try:
            found = await consumer.offsets_for_times({tp: since for tp in tps})
        except Exception:  # noqa: BLE001 - a broker without time lookups: start at the end
            log.warning("offsets_for_times failed; the commands worker starts at the log's end")
            found = {}
        lows, highs = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        ends = {}
        for tp in tps:
            hit = found.get(tp)
            lo, hi = lows[tp], highs[tp]
            start = hi if hit is None else max(lo, hit.offset)
            consumer.seek(tp, start)
            if start < hi:
                ends[(tp.topic, tp.partition)] = hi
        return ends

    async def _caught_up(self) -> None:
        self.caught_up = True
        log.info("commands worker %s caught up: %d to send, %d results pending", self.settings.ocpi_platform_id,
                 sum(o.stage == "QUEUED" for o in self.outs.values()), len(self.ins))
        for cid, o in list(self.outs.items()):
            if o.stage == "QUEUED":
                self._submit_send(cid, o)
        for cid, i in list(self.ins.items()):
            if i.result is not None and not i.done:
                self._submit_result(cid, i)

    # ---- events ------------------------------------------------------------------------------------------------

    async def _on(self, etype: str | None, r: dict[str, Any]) -> None:
        mine = r.get("platform_id") == self.settings.ocpi_platform_id
        if etype == "OcpiCommandSend" and mine:
            self._queue(r["command_id"], _Out(r["partner_id"], r["command"], json.loads(r["request"]),
                                              r["expires_at"], (r["to_country_code"], r["to_party_id"])
                                              if r.get("to_country_code") and r.get("to_party_id") else None, r))
        elif etype == "OcpiCommandRequested":  # the app API's: no platform id; ours if the partner is
            if await load_partner(self.pool, r["partner_id"]) is None:
                return
            request = json.loads(r["payload"]) if r.get("payload") else {}
            self._queue(r["command_id"], _Out(r["partner_id"], str(r["command"]), request, None, None, r))
        elif etype == "OcpiCommandOutcome" and mine:
            self._outcome(r)
        elif etype == "OcpiCommandReceived" and mine and r["result"] == "ACCEPTED" and r.get("ocpp_command_id") \
                and r.get("response_url"):
            cid = r["ocpp_command_id"]
            if cid not in self.ins:
                self.ins[cid] = _In(r["partner_id"], r["command"], r["response_url"], r)
                early = self.early.pop(cid, None)
                if early is not None:
                    self._ocpp_result(early)
        elif etype == "OcppCommandResult":
            self._ocpp_result(r)

    def _queue(self, cid: str, out: _Out) -> None:
        if cid in self.outs:
            return  # a duplicate of the request on the log
        self.outs[cid] = out
        if self.caught_up:
            self._submit_send(cid, out)

    def _outcome(self, r: dict[str, Any]) -> None:
        cid, stage = r["command_id"], r["stage"]
        if stage in ("RESULT_SENT", "RESULT_UNDELIVERED"):
            i = self.ins.get(cid)
            if i is not None:
                i.done = True
            return
        o = self.outs.get(cid)
        if o is None or o.partner_id != r["partner_id"]:
            return  # a result for a command that is not ours (or not from that partner): recorded, ignored
        if stage == "RESPONSE" and o.stage != "DONE":
            if r.get("result") == "ACCEPTED":
                o.stage = "SENT"
                o.deadline = r["occurred_at"] + timedelta(seconds=(r.get("timeout_s") or 0) +
                                                          self.settings.ocpi_command_result_grace_s)
            else:
                o.stage = "DONE"
        elif stage in ("RESULT", "TIMEOUT", "UNDELIVERED"):
            o.stage = "DONE"

    def _ocpp_result(self, r: dict[str, Any]) -> None:
        cid = r["command_id"]
        i = self.ins.get(cid)
        if i is None:
            if len(self.early) > 10_000:
                self.early.pop(next(iter(self.early)))
            self.early[cid] = r
            return
        if i.result is None:
            i.result = r  # the first outcome of a command wins (as in the ocpp_commands projection)
        if self.caught_up and not i.done:
            self._submit_result(cid, i)

    # ---- calls -------------------------------------------------------------------------------------------------

    def _outcome_event(self, partner_id: str, command_id: str, command: str | None, stage: str, cause: dict,
                       **fields: Any) -> dict[str, Any]:
        rec = event_envelope(source=self.source, correlation_id=cause.get("correlation_id") or command_id,
                             causation_id=cause.get("event_id"))
        rec.update(platform_id=self.settings.ocpi_platform_id, partner_id=partner_id, command_id=command_id,
                   command=command, stage=stage, result=None, timeout_s=None, message=None, raw=None,
                   http_status=None, attempts=0)
        rec.update(fields)
        return rec

    async def _publish_outcome(self, rec: dict[str, Any]) -> None:
        await self.producer.publish(OCPI_INBOUND.name, command_key(rec["partner_id"], rec["command_id"]),
                                    "OcpiCommandOutcome", rec)
        self._outcome(rec)

    def _submit_send(self, cid: str, o: _Out) -> None:
        o.stage = "SUBMITTED"
        asyncio.get_running_loop().create_task(self._send(cid, o))

    async def _send(self, cid: str, o: _Out) -> None:
        def undelivered(message: str, got: Attempted | None = None) -> dict[str, Any]:
            err = got.error if got else None
            return self._outcome_event(o.partner_id, cid, o.command, "UNDELIVERED", o.cause, message=message,
                                       http_status=getattr(err, "http_status", None),
                                       attempts=got.attempts if got else 0)

        if o.expires_at is not None and o.expires_at <= self.clock():
            await self._publish_outcome(undelivered("expired before it could be sent"))
            return
        p = await load_partner(self.pool, o.partner_id)
        url = p.endpoint("commands", "RECEIVER") if p is not None and p.registered else None
        if p is None or url is None or not p.their_token_sealed:
            await self._publish_outcome(undelivered(f"partner {o.partner_id} has no commands receiver endpoint"))
            return
        token = self.box.open(p.their_token_sealed, p.partner_id)
        body = dict(o.request, response_url=f"{root_url(self.settings)}/emsp/{VERSION}/commands/{o.command}/{cid}")
        target = f"{url.rstrip('/')}/{o.command}"
        receiver = o.to_party or p.first_party("CPO")
        us = (self.settings.ocpi_country_code, self.settings.ocpi_party_id)

        async def job() -> Any:
            return await call(self.http, "POST", target, token, plain=p.plain_token, body=body,
                              correlation_id=o.cause.get("correlation_id"), sender=us, receiver=receiver)

        got = await self.lanes.submit(o.partner_id, job)
        if got.error is not None:
            await self._publish_outcome(undelivered(str(got.error), got))
            return
        data = got.value.data if isinstance(got.value.data, dict) else {}
        msg = data.get("message")
        text = msg.get("text") if isinstance(msg, dict) else None
        timeout = data.get("timeout")
        await self._publish_outcome(self._outcome_event(
            o.partner_id, cid, o.command, "RESPONSE", o.cause, result=str(data.get("result")),
            timeout_s=int(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None,
            message=text if isinstance(text, str) else None, raw=got.value.response.text,
            http_status=got.value.response.status_code, attempts=got.attempts))

    def _submit_result(self, cid: str, i: _In) -> None:
        i.done = True  # claimed: a duplicate result event must not post twice
        asyncio.get_running_loop().create_task(self._post_result(cid, i))

    async def _post_result(self, cid: str, i: _In) -> None:
        assert i.result is not None
        result, message = command_result(i.result["action"], str(i.result["outcome"]), i.result.get("result"))
        body: dict[str, Any] = {"result": result}
        if message:
            body["message"] = {"language": "en", "text": message}
        p = await load_partner(self.pool, i.partner_id)
        if p is None or not p.their_token_sealed:
            await self._publish_outcome(self._outcome_event(i.partner_id, cid, i.command, "RESULT_UNDELIVERED",
                                                            i.cause, result=result, message="partner unknown"))
            return
        token = self.box.open(p.their_token_sealed, p.partner_id)
        sender = (i.cause.get("from_country_code"), i.cause.get("from_party_id"))
        us = (self.settings.ocpi_country_code, self.settings.ocpi_party_id)

        async def job() -> Any:
            return await call(self.http, "POST", i.response_url, token, plain=p.plain_token, body=body,
                              correlation_id=i.cause.get("correlation_id"), sender=us,
                              receiver=sender if all(sender) else p.first_party("EMSP"))

        got = await self.lanes.submit(i.partner_id, job)
        err = got.error
        await self._publish_outcome(self._outcome_event(
            i.partner_id, cid, i.command, "RESULT_SENT" if err is None else "RESULT_UNDELIVERED", i.cause,
            result=result, message=message if err is None else str(err),
            http_status=got.value.response.status_code if err is None else getattr(err, "http_status", None),
            attempts=got.attempts))

    async def _sweep(self) -> None:
        now = self.clock()
        for cid, o in list(self.outs.items()):
            if o.stage == "SENT" and o.deadline is not None and o.deadline <= now:
                o.stage = "DONE"
                await self._publish_outcome(self._outcome_event(
                    o.partner_id, cid, o.command, "TIMEOUT", o.cause, result="TIMEOUT",
                    message="no CommandResult within the partner's timeout"))
            elif o.stage == "DONE" and o.deadline is not None and o.deadline < now - timedelta(hours=1):
                del self.outs[cid]


def run() -> None:
    """`cv run ocpi-commands`: the worker alone, until interrupted."""
    import signal

    from chargeverse.settings import get_settings
    logging.basicConfig(level=logging.INFO)
    w = CommandsWorker(get_settings()).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    w.stop()
