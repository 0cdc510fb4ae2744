"""Commands to chargers: from `ocpp.commands` to the edge instance holding the socket, and their results back.

Routing (DESIGN.md §7, charge-point affinity).  Every edge instance reads every partition of `ocpp.commands`
(commands are few; reading them all is cheaper than forwarding between instances), and acts on a command only
when it holds that charger's socket.  Exactly one outcome per command is recorded, whatever the number of
instances, because the instance that decides it first takes a claim in Redis (`SET NX cv:ocpp:cmd:<id>`):
- the holder claims, sends the CALL, and records RESULT / ERROR / TIMEOUT (or REFUSED when the charger's version
  or security profile forbids it, or EXPIRED when the command arrived after its deadline);
- a charger nobody holds (no route `cv:ocpp:route:<cp>` in Redis) is recorded OFFLINE at once by whichever
  instance claims first;
- a command routed to an instance that died before answering is recorded OFFLINE by any instance once the
  command's timeout has passed without a claim.

Routes are ephemeral routing state, not a projection of the log: each edge writes its own chargers' routes with
a time-to-live, refreshes them while it holds the sockets, and removes them on disconnect.  Beside each route it
writes the OCPP version the charger speaks on that socket (`cv:ocpp:route-version:<cp>`, same lifetime), so a
publisher that must choose between a 1.6 and a 2.0.1 call (the app's remote start: RemoteStartTransaction or
RequestStartTransaction) can choose right before publishing; the holder still refuses a wrong one (WrongVersion).
Route changes are batched (one Redis pipeline every ROUTE_FLUSH_S over a small connection pool), so a reconnect
storm of thousands of chargers costs a few round trips, never a Redis connection per charger.

Restart: an edge reads the last `RECENT_WINDOW` of the topic on start, keeps the commands that have no result
yet and have not expired, and serves them to chargers it holds, so a command issued during a short restart is
not lost.  Stale commands (past `expires_at`) are never sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition

from chargeverse import fetch_backoff
from chargeverse.avro import DecodeError, default_codec
from chargeverse.events import envelope
from chargeverse.kafka import DeliveryError, EventProducer
from chargeverse.ocpp_commands import CERTIFICATE_ACTIONS, CSMS_INITIATED, CommandInvalid, validate
from chargeverse.settings import get_settings
from chargeverse.topics import OCPP_COMMANDS

log = logging.getLogger("edges.ocpp.dispatch")

RECENT_WINDOW_S = 600
ROUTE_FLUSH_S = 0.2
#: a non-holder waits this long before declaring a charger without a route OFFLINE, so that the instance holding a
#: just-connected charger (route not flushed yet) claims the command first
OFFLINE_GRACE_S = 1.0
_DELETE_IF_MINE = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1], KEYS[2]) end "
                   "return 0")
ROUTE_PREFIX = "cv:ocpp:route:"
#: the version the routed charger speaks (written and removed with its route)
ROUTE_VERSION_PREFIX = "cv:ocpp:route-version:"
CLAIM_PREFIX = "cv:ocpp:cmd:"


@dataclass(frozen=True)
class CallOutcome:
    outcome: str  # RESULT | ERROR | TIMEOUT
    result: Any = None
    error_code: str | None = None
    error_description: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Held:
    """What the edge knows of a charger it holds: enough to decide whether a command may be sent."""

    ocpp_version: str
    security_profile: int


class PendingCalls:
    """Outstanding CALLs we sent, by (charger, message id): a CALLRESULT/CALLERROR resolves exactly one."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], asyncio.Future[CallOutcome]] = {}

    def open(self, cp_id: str) -> tuple[str, asyncio.Future[CallOutcome]]:
        message_id = str(uuid.uuid4())
        fut: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
        self._pending[(cp_id, message_id)] = fut
        return message_id, fut

    def resolve(self, cp_id: str, message_id: str, outcome: CallOutcome) -> bool:
        """Hand a charger's answer to the waiting call; False for an id we never sent (or already answered)."""
        fut = self._pending.pop((cp_id, message_id), None)
        if fut is None or fut.done():
            return False
        fut.set_result(outcome)
        return True

    def forget(self, cp_id: str, message_id: str) -> None:
        self._pending.pop((cp_id, message_id), None)

    def __len__(self) -> int:
        return len(self._pending)


def _micros_to_dt(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(int(v) / 1e6, tz=timezone.utc)


class CommandDispatcher:
    """Reads `ocpp.commands`, sends the commands for chargers this edge holds, publishes their results."""

    def __init__(self, *, instance: str, producer: EventProducer, redis_url: str,
                 held: Callable[[str], Held | None],
                 send_call: Callable[[str, str, dict[str, Any], float], Awaitable[CallOutcome]],
                 bootstrap: str | None = None, route_ttl_s: int = 900) -> None:
        self.instance = instance
        self.source = f"edges.ocpp/{instance}"
        self.producer = producer
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, max_connections=16)
        self.held = held
        self.send_call = send_call
        self.bootstrap = bootstrap
        self.route_ttl_s = route_ttl_s
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self._stop = threading.Event()
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        self._routes: dict[str, bool] = {}  # charger -> up (True) / down (False), not yet written to Redis
        self._held_ids: Callable[[], list[str]] | None = None

    # ---- routes ------------------------------------------------------------------------------------------------
    async def route_up(self, cp_id: str) -> None:
        self._routes[cp_id] = True

    async def route_down(self, cp_id: str) -> None:
        self._routes[cp_id] = False

    async def _flush_routes(self) -> None:
        """Write pending route changes in one pipeline; every ttl/3, re-write every route this instance holds."""
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(ROUTE_FLUSH_S)
            changes, self._routes = self._routes, {}
            refresh = time.monotonic() - last_refresh > self.route_ttl_s / 3 and self._held_ids is not None
            if refresh:
                last_refresh = time.monotonic()
                for cp in self._held_ids():  # type: ignore[misc]
                    changes.setdefault(cp, True)
            if not changes:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for cp, up in changes.items():
                    held = self.held(cp) if up else None
                    if up:
                        pipe.set(ROUTE_PREFIX + cp, self.instance, ex=self.route_ttl_s)
                        if held is not None:
                            pipe.set(ROUTE_VERSION_PREFIX + cp, held.ocpp_version, ex=self.route_ttl_s)
                    else:  # only our own route: a charger that already reconnected elsewhere keeps its new one
                        pipe.eval(_DELETE_IF_MINE, 2, ROUTE_PREFIX + cp, ROUTE_VERSION_PREFIX + cp, self.instance)
                await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - retried with the next flush; the sockets keep serving
                log.warning("could not write %d command routes: %s", len(changes), exc)
                for cp, up in changes.items():
                    self._routes.setdefault(cp, up)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self, held_ids: Callable[[], list[str]] | None = None) -> None:
        """Start reading commands and writing routes; `held_ids` lists the chargers whose routes to refresh."""
        self._held_ids = held_ids
        self._spawn(self._flush_routes())
        self._consumer = asyncio.create_task(self._consume())
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._consumer, 10)
            except asyncio.TimeoutError:
                pass  # wait_for cancelled it
        if self._runner is not None:
            self._runner.cancel()
        for t in list(self._tasks):
            t.cancel()
        await self.redis.aclose()

    async def wait_caught_up(self, timeout: float = 30) -> bool:
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _consume(self) -> None:
        """Assign every partition at (now - window), read for ever, queue decoded events for `_run`.

        aiokafka in the edge's own loop, not a librdkafka thread: the embedded broker answers an empty fetch at
        once, and a librdkafka consumer then re-fetched thousands of times a second (about a third of a core taken
        from the chargers' loop, idle or not); aiokafka's empty fetches are paced by chargeverse/fetch_backoff.py."""
        settings = get_settings()
        fetch_backoff.install(settings.kafka_empty_fetch_backoff_ms)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap or settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        codec = default_codec()
        put = self._queue.put_nowait
        try:
            await consumer.start()
            await consumer.topics()  # fills the metadata partitions_for_topic reads
            tps = [AioTopicPartition(OCPP_COMMANDS.name, p)
                   for p in sorted(consumer.partitions_for_topic(OCPP_COMMANDS.name) or ())]
            consumer.assign(tps)
            since = int((time.time() - RECENT_WINDOW_S) * 1000)
            starts = await consumer.offsets_for_times({tp: since for tp in tps})
            lows, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
            behind: set[int] = set()
            for tp in tps:
                found = starts.get(tp)
                start = max(found.offset if found is not None else ends[tp], lows[tp])
                consumer.seek(tp, start)
                if start < ends[tp]:
                    behind.add(tp.partition)
            if not behind:
                put(("_caught_up", {}))
            while not self._stop.is_set():
                for tp, msgs in (await consumer.getmany(timeout_ms=200, max_records=200)).items():
                    for m in msgs:
                        try:
                            event_type, record = codec.decode(m.value)
                        except DecodeError as exc:
                            log.error("undecodable command at %s/%s: %s", m.partition, m.offset, exc)
                        else:
                            put((event_type, record))
                        # caught up counts every message read, decodable or not: a poison message at the end of a
                        # partition must not hold every later command in the catch-up backlog for ever
                        if m.partition in behind and m.offset + 1 >= ends[tp]:
                            behind.discard(m.partition)
                            if not behind:
                                put(("_caught_up", {}))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the edge keeps serving chargers without commands, loudly
            log.exception("command consumer stopped")
        finally:
            await consumer.stop()

    # ---- decisions ---------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        backlog: dict[str, dict[str, Any]] = {}  # commands read during catch-up, until we know their fate
        while True:
            item = await self._queue.get()
            if item is None:
                return
            event_type, record = item
            if event_type == "_caught_up":
                self._caught_up.set()
                for rec in backlog.values():
                    self._spawn(self.handle(rec))
                backlog.clear()
                continue
            if event_type == "OcppCommandResult":
                backlog.pop(record["command_id"], None)
                continue
            if event_type != "OcppCommandRequested":
                continue
            if not self._caught_up.is_set():
                backlog[record["command_id"]] = record
            else:
                self._spawn(self.handle(record))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, command_id: str, ttl_s: int) -> bool:
        return bool(await self.redis.set(CLAIM_PREFIX + command_id, self.instance, nx=True, ex=max(ttl_s, 60)))

    async def handle(self, cmd: dict[str, Any]) -> None:
        cp_id, command_id = cmd["charge_point_id"], cmd["command_id"]
        timeout_s = max(int(cmd.get("timeout_ms") or 30000), 1) / 1000
        expires_at = _micros_to_dt(cmd["expires_at"])
        held = self.held(cp_id)
        if held is None:
            route = await self.redis.get(ROUTE_PREFIX + cp_id)
            if route is None:
                await asyncio.sleep(OFFLINE_GRACE_S)  # a charger that just connected somewhere: its holder claims
                held = self.held(cp_id)
                route = await self.redis.get(ROUTE_PREFIX + cp_id) if held is None else self.instance
        if held is None:
            if route is None:
                if await self._claim(command_id, int(timeout_s) + 60):
                    await self._publish(cmd, "OFFLINE", error_description="the charger is not connected")
                return
            # routed to another instance: it answers; if it died, the command must still end
            await asyncio.sleep(timeout_s + 5)
            if await self._claim(command_id, 60):
                await self._publish(cmd, "OFFLINE",
                                    error_description=f"the edge holding the charger ({route}) did not answer")
            return
        if not await self._claim(command_id, int(timeout_s) + 60):
            return  # another instance decided it
        if datetime.now(timezone.utc) > expires_at:
            await self._publish(cmd, "EXPIRED", error_description="the command reached the edge after expires_at")
            return
        action = cmd["action"]
        try:
            payload = json.loads(cmd["payload"])
        except ValueError:
            await self._publish(cmd, "REFUSED", error_code="InvalidPayload", error_description="payload is not JSON")
            return
        if action not in CSMS_INITIATED.get(held.ocpp_version, ()):
            await self._publish(cmd, "REFUSED", error_code="WrongVersion",
                                error_description=f"{action} is not a {held.ocpp_version} call")
            return
        try:
            validate(action, payload, held.ocpp_version)
        except CommandInvalid as exc:
            await self._publish(cmd, "REFUSED", error_code="InvalidPayload", error_description=str(exc))
            return
        if action in CERTIFICATE_ACTIONS and held.security_profile < 2:
            await self._publish(cmd, "REFUSED", error_code="SecurityProfile",
                                error_description="certificate operations need security profile 2 or 3 (TLS)")
            return
        outcome = await self.send_call(cp_id, action, payload, timeout_s)
        await self._publish(cmd, outcome.outcome,
                            result=None if outcome.result is None else json.dumps(outcome.result),
                            error_code=outcome.error_code, error_description=outcome.error_description,
                            message_id=outcome.message_id)

    async def _publish(self, cmd: dict[str, Any], outcome: str, *, result: str | None = None,
                       error_code: str | None = None, error_description: str | None = None,
                       message_id: str | None = None) -> None:
        rec = envelope(source=self.source, correlation_id=cmd.get("correlation_id") or cmd["command_id"],
                       causation_id=cmd.get("event_id"))
        rec.update(command_id=cmd["command_id"], charge_point_id=cmd["charge_point_id"], action=cmd["action"],
                   outcome=outcome, result=result, error_code=error_code, error_description=error_description,
                   message_id=message_id, edge_instance=self.instance)
        try:
            await self.producer.publish(OCPP_COMMANDS.name, cmd["charge_point_id"], "OcppCommandResult", rec)
        except DeliveryError as exc:
            log.error("result of command %s not recorded: %s", cmd["command_id"], exc)
