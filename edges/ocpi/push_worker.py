"""The OCPI push worker (CPO role): performs the OcpiPushRequested on `ocpi.outbound` - PUTs of our Locations,
Sessions and Tariffs, POSTs of our CDRs - against each partner's receiver endpoints.

Invariants:
- **No update lost to an outage.**  The worker's committed offset on a partition never passes a push that has
  not either succeeded or been parked.  A partner that cannot be reached (transport errors, HTTP 429/5xx after
  the retries, or its circuit breaker open) is *blocked*: its pushes are no longer tried nor held in memory, and
  the partition's committed offset stays at its first unfinished push.  When its breaker lets a trial call
  through again, the worker seeks back to that push and re-sends from the log, in order.  A restart resumes
  from the committed offsets: at-least-once (a PUT is idempotent; a repeated CDR POST is answered as a retry by
  a conforming receiver).
- **One partner never slows another.**  Every partner has its own lane, retries and breaker
  (edges/ocpi/outbound.py); a blocked partner's pushes are skipped, not waited for, and pushes to others that
  were already delivered are not re-sent when the log is re-read for the blocked one (a per-partner high-water
  mark of finished offsets, kept in memory).
- **Order per partner.**  `ocpi.outbound` is keyed by partner (one partition); a lane sends one push at a time
  in log order, and once a partner is blocked none of its later pushes is sent before the blocked one.
- **Parked, not retried forever.**  A push the partner refuses for good (an OCPI or HTTP client error), or that
  has nowhere to go (partner unknown, deleted, no receiver endpoint for the module), is recorded as
  OcpiPushParked on `ocpi.inbound` and passed over.

One instance per platform (it assigns itself every partition of `ocpi.outbound`, like the commands worker).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from chargeverse.aiokafka_read import read_batches
from chargeverse.avro import DecodeError
from chargeverse.events import derive
from chargeverse.settings import Settings
from chargeverse.topics import OCPI_INBOUND, OCPI_OUTBOUND
from edges.ocpi.client import PartnerError, call
from edges.ocpi.outbound import Attempted, CircuitOpen, retryable
from edges.ocpi.store import partner as load_partner
from edges.ocpi.worker_base import OcpiWorker

log = logging.getLogger(__name__)

EVENT = "OcpiPushRequested"


class _Park(Exception):
    """The push has nowhere to go: park it."""


def target_url(endpoint: str, method: str, rec: dict[str, Any]) -> str:
    """Where a push goes: `{endpoint}/{country}/{party}/{id}` for a PUT, the endpoint itself for a CDR POST."""
    base = endpoint.rstrip("/")
    if method == "POST":
        return base
    return f"{base}/{rec['country_code']}/{rec['party_id']}/{rec['object_id']}"


@dataclass
class PushWorker(OcpiWorker):
    kind: ClassVar[str] = "push"
    settings: Settings
    bootstrap: str | None = None
    #: (partner, module, object id, offset) of every push delivered, for tests and `cv` diagnostics (bounded)
    sent: list[tuple[str, str, str, int]] = field(default_factory=list)
    parked: list[tuple[str, str, str, str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._setup()
        #: partner -> {(topic, partition): the first offset not delivered}
        self.blocked: dict[str, dict[tuple[str, int], int]] = {}
        #: partner -> the highest offset delivered or parked (pushes at or below it are not sent again)
        self.done_upto: dict[str, int] = {}
        self.generation: dict[str, int] = {}
        #: (topic, partition) -> offsets submitted and not finished
        self.inflight: dict[tuple[str, int], set[int]] = {}
        #: (topic, partition) -> the next offset the consumer will read
        self.position: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self._seek: dict[tuple[str, int], int] = {}
        self.retry_at: dict[str, float] = {}
        self.queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def source(self) -> str:
        return f"ocpi-push:{self.settings.ocpi_platform_id}"

    @property
    def group(self) -> str:
        return f"ocpi-push-{self.settings.ocpi_platform_id}"

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def _main(self) -> None:
        consumer = await self._open_io(self.group)
        try:
            await self._assign(consumer)
            self._ready.set()
            tick = time.monotonic()
            while not self._stop.is_set():
                if self._seek:
                    seeks, self._seek = self._seek, {}
                    self._do_seek(consumer, seeks)
                batches = await read_batches(consumer, "push worker", timeout_ms=50, max_records=500)
                for msgs in batches.values():
                    for m in msgs:
                        tp = (m.topic, m.partition)
                        self.position[tp] = m.offset + 1
                        try:
                            etype, rec = self.codec.decode(m.value)
                        except DecodeError:
                            continue  # the projections' dead-letter path records it; nothing to push
                        if etype == EVENT and rec.get("platform_id") == self.settings.ocpi_platform_id:
                            self._consider(tp, m.offset, rec)
                await asyncio.sleep(0)
                if time.monotonic() - tick >= 0.1:
                    tick = time.monotonic()
                    self._unblock_ready()
                    await self._commit(consumer)
            await self._commit(consumer)
        except Exception as exc:  # noqa: BLE001
            log.exception("push worker stopped")
            self.errors.append(exc)
            self._ready.set()
        finally:
            for t in self.tasks.values():
                t.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self._close_io(consumer)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        tps = [TopicPartition(OCPI_OUTBOUND.name, p)
               for p in sorted(consumer.partitions_for_topic(OCPI_OUTBOUND.name) or ())]
        consumer.assign(tps)
        lows = await consumer.beginning_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            start = committed if committed is not None and committed >= 0 else lows[tp]
            consumer.seek(tp, start)
            self.position[(tp.topic, tp.partition)] = start
            self.committed[(tp.topic, tp.partition)] = start

    def _do_seek(self, consumer: AIOKafkaConsumer, seeks: dict[tuple[str, int], int]) -> None:
        for (t, p), off in seeks.items():
            consumer.seek(TopicPartition(t, p), off)
            self.position[(t, p)] = off

    # ---- the commit rule ---------------------------------------------------------------------------------------

    def safe_offsets(self) -> dict[tuple[str, int], int]:
        """Per partition: the first push not finished (blocked or in flight), else the read position."""
        out = {}
        for tp, pos in self.position.items():
            floor = [pos, *self.inflight.get(tp, ())]
            floor += [b[tp] for b in self.blocked.values() if tp in b]
            out[tp] = min(floor)
        return out

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        safe = self.safe_offsets()
        changed = {TopicPartition(t, p): o for (t, p), o in safe.items() if self.committed.get((t, p)) != o}
        if changed:
            await consumer.commit(changed)
            for tp, o in changed.items():
                self.committed[(tp.topic, tp.partition)] = o

    # ---- pushes ------------------------------------------------------------------------------------------------

    def _consider(self, tp: tuple[str, int], offset: int, rec: dict[str, Any]) -> None:
        pid = rec["partner_id"]
        if offset <= self.done_upto.get(pid, -1):
            return  # delivered before the log was re-read for another partner
        if offset in self.inflight.get(tp, ()):
            return  # still on its way (the log was re-read for another partner meanwhile)
        if pid in self.blocked:
            b = self.blocked[pid]
            b[tp] = min(b.get(tp, offset), offset)
            return
        self.inflight.setdefault(tp, set()).add(offset)
        q = self.queues.get(pid)
        if q is None:
            q = self.queues[pid] = asyncio.Queue()
        task = self.tasks.get(pid)
        if task is None or task.done():
            self.tasks[pid] = asyncio.get_running_loop().create_task(self._partner_loop(pid, q),
                                                                     name=f"ocpi-push-{pid}")
        q.put_nowait((tp, offset, rec, self.generation.get(pid, 0)))

    async def _partner_loop(self, pid: str, q: "asyncio.Queue[tuple[Any, ...]]") -> None:
        """One partner's pushes, one at a time in log order: each is finished (delivered, parked or blocking)
        before the next is looked at."""
        breaker = self.lanes.breaker(pid)
        while True:
            tp, offset, rec, gen = await q.get()
            try:
                if gen != self.generation.get(pid, 0):
                    continue  # queued before the partner was blocked: re-read from the log after the block
                if pid in self.blocked:
                    b = self.blocked[pid]
                    b[tp] = min(b.get(tp, offset), offset)
                    continue
                got = await self.lanes.attempt(pid, breaker, lambda: self._send(rec))
                await self._finished(tp, offset, rec, got)
            except Exception as exc:  # noqa: BLE001 - a lane never dies of one push
                log.exception("push %s to %s failed", rec.get("event_id"), pid)
                self.errors.append(exc)
                self._block(pid, tp, offset, exc)
            finally:
                self.inflight.get(tp, set()).discard(offset)

    async def _send(self, rec: dict[str, Any]) -> Any:
        pid = rec["partner_id"]
        p = await load_partner(self.pool, pid)
        if p is None or p.state != "REGISTERED" or not p.their_token_sealed:
            raise _Park(f"partner {pid} is not registered")
        url = p.endpoint(rec["module"], "RECEIVER")
        if url is None:
            raise _Park(f"partner {pid} has no {rec['module']} receiver endpoint")
        token = self.box.open(p.their_token_sealed, p.partner_id)
        receiver = (rec["to_country_code"], rec["to_party_id"]) if rec.get("to_country_code") and \
            rec.get("to_party_id") else p.first_party("EMSP")
        return await call(self.http, rec["method"], target_url(url, rec["method"], rec), token, plain=p.plain_token,
                          body=rec["body"], correlation_id=rec.get("correlation_id"),
                          sender=(self.settings.ocpi_country_code, self.settings.ocpi_party_id), receiver=receiver)

    async def _finished(self, tp: tuple[str, int], offset: int, rec: dict[str, Any], got: Attempted) -> None:
        pid, err = rec["partner_id"], got.error
        if err is None:
            self._done(pid, offset)
            if len(self.sent) < 100_000:
                self.sent.append((pid, rec["module"], rec["object_id"], offset))
        elif isinstance(err, _Park) or (isinstance(err, PartnerError) and not retryable(err)
                                        and not isinstance(err, CircuitOpen)):
            await self._park(rec, got)
            self._done(pid, offset)
        else:  # unreachable now: re-sent from the log once its breaker lets a trial through
            self._block(pid, tp, offset, err)

    def _block(self, pid: str, tp: tuple[str, int], offset: int, err: BaseException) -> None:
        b = self.blocked.setdefault(pid, {})
        b[tp] = min(b.get(tp, offset), offset)
        self.generation[pid] = self.generation.get(pid, 0) + 1
        wait = max(self.lanes.breaker(pid).retry_in(), self.policy.reset_after)
        self.retry_at[pid] = time.monotonic() + wait
        log.warning("partner %s unreachable at %s@%s (%s): pushes held on the log, trying again in %.1fs", pid,
                    tp, offset, err, wait)

    def _done(self, pid: str, offset: int) -> None:
        if offset > self.done_upto.get(pid, -1):
            self.done_upto[pid] = offset

    async def _park(self, rec: dict[str, Any], got: Attempted) -> None:
        err = got.error
        out = derive(rec, tag="push-parked", source=self.source, platform_id=self.settings.ocpi_platform_id,
                     partner_id=rec["partner_id"], push_event_id=rec["event_id"], module=rec["module"],
                     method=rec["method"], object_id=rec["object_id"],
                     http_status=getattr(err, "http_status", None), ocpi_status=getattr(err, "status", None),
                     reason=str(err)[:1000], attempts=got.attempts)
        await self.producer.publish(OCPI_INBOUND.name, rec["partner_id"], "OcpiPushParked", out)
        self.parked.append((rec["partner_id"], rec["module"], rec["object_id"], str(err)))
        log.warning("push %s %s to %s parked: %s", rec["module"], rec["object_id"], rec["partner_id"], err)

    def _unblock_ready(self) -> None:
        """Blocked partners whose breaker would let a trial through: re-read their pushes from the log."""
        for pid in list(self.blocked):
            if time.monotonic() < self.retry_at.get(pid, 0.0) or self.lanes.breaker(pid).retry_in() > 0:
                continue
            floors = self.blocked.pop(pid)
            for tp, off in floors.items():
                cur = min(self._seek.get(tp, self.position.get(tp, off)), self.position.get(tp, off))
                if off < cur:
                    self._seek[tp] = off
            log.info("partner %s: trying again from %s", pid, floors)


def run() -> None:
    """The worker alone, until interrupted (`python -c 'from edges.ocpi.push_worker import run; run()'`); the
    usual form is inside the edge process (CV_OCPI_PUSH_WORKER=true)."""
    import signal

    from chargeverse.settings import get_settings
    logging.basicConfig(level=logging.INFO)
    w = PushWorker(get_settings()).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    w.stop()
