"""The Faust workers: the stations processor and the projection agents (`cv run worker --group G`).

One worker process per consumer group (streams/registry.py GROUPS): processors, projections, archive.  Each group
is its own Faust app and Kafka consumer group, so a slow sink (the frame archive) never stalls the others — in one
Faust app, a full agent buffer pauses delivery to every agent of that app.  Each group scales by partitions.

Delivery: at-least-once.  A processor awaits the broker's acknowledgement of everything it emitted for a batch
before the batch's source events are acked (take_events acks them after the loop body), so offsets are never
committed past an event whose outputs are not on the log; a crash re-processes rather than loses.  Two faust
habits would break that at a stop, and are switched off: take_events acks a batch whose body was cancelled
(`acked_only_when_done`), and a stream acks the events it drops while flow is suspended (chargeverse/faust_acks.py).  Derived event
ids are deterministic, and every projection skips offsets it has applied, so re-processing changes nothing.

Poison messages: an undecodable message, or one a projection keeps failing on (3 tries), goes to `deadletter` with
its bytes and the error; the agent carries on with the next.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import faust

from chargeverse import faust_acks, fetch_backoff
from chargeverse.avro import DecodeError, default_codec
from chargeverse.kafka import EventProducer, dead_letter_record, read_range, resume_offsets
from chargeverse.settings import get_settings
from chargeverse.topics import BY_NAME, DEADLETTER, OCPP_FRAMES, STATIONS
from projections.base import Projection, SourcedEvent, dead_lettered
from projections.registry import build
from projections.replay import check_offsets_within_log, replay
from streams.registry import CONSUMERS, GROUPS, PROJECTIONS, group_id
from streams.station_events import translate

log = logging.getLogger(__name__)
settings = get_settings()
codec = default_codec()

GROUP = settings.worker_group
if GROUP not in GROUPS:
    raise SystemExit(f"CV_WORKER_GROUP={GROUP!r}: choose one of {', '.join(GROUPS)}")

# an idle agent must not re-fetch in a tight loop against a broker that ignores the fetch max wait (noida-db)
fetch_backoff.install(settings.kafka_empty_fetch_backoff_ms)
# an event faust drops at a stop or rebalance must not be committed as if processed (at-least-once)
faust_acks.install()

# faust creates its data directory without parents: the stack's `faust/` must exist first
(settings.stack_dir / "faust").mkdir(parents=True, exist_ok=True)
app = faust.App(
    group_id(GROUP),
    broker=";".join(f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")),
    store="memory://",
    # Faust makes a data directory even with in-memory tables; keep it under the stack, not the caller's cwd
    datadir=str(settings.stack_dir / "faust" / "{conf.name}-data"),
    value_serializer="raw",
    key_serializer="raw",
    web_host=settings.worker_web_host,
    web_port=settings.worker_web_port,
    broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=0.2,
    broker_commit_every=1000,
    stream_publish_on_commit=False,  # the processor awaits its own sends per batch (see the docstring)
    # no waiting for in-flight events at rebalance or stop: with several agents on one topic faust 0.15.3 can wait
    # for ever on an event one agent never acks; every sink is idempotent by offset, so re-processing is safe
    stream_wait_empty=False,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    topic_disable_leader=True,
    table_standby_replicas=0,
    topic_replication_factor=settings.kafka_replication_factor,
    web_enabled=True,
)

frames_topic = app.topic(OCPP_FRAMES.name, partitions=OCPP_FRAMES.partitions, internal=False)
stations_topic = app.topic(STATIONS.name, partitions=STATIONS.partitions, internal=False)
_producer: EventProducer | None = None


def producer() -> EventProducer:
    global _producer
    if _producer is None:
        _producer = EventProducer()
    return _producer


async def dead_letter(consumer: str, event: Any, error: str) -> None:
    m = event.message
    rec = dead_letter_record(consumer=consumer, topic=m.topic, partition=m.partition, offset=m.offset,
                             key=m.key, value=m.value, error=error)
    log.warning("dead letter %s %s/%s/%s: %s", consumer, m.topic, m.partition, m.offset, error)
    await producer().publish(DEADLETTER.name, consumer, "DeadLetter", rec)


async def _translate_and_send(events: Sequence[Any]) -> list[Any]:
    """Translate frames (faust events or raw confluent messages) and send the outputs; return the send futures."""
    sent = []
    for event in events:
        try:
            etype, rec = codec.decode(event.value)
            outs = translate(etype, rec)
        except DecodeError as exc:
            await dead_letter("stations", event, str(exc))
            continue
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            await dead_letter("stations", event, f"{type(exc).__name__}: {exc}")
            continue
        for out_type, key, out in outs:
            sent.append(await stations_topic.send(key=key.encode(), value=codec.encode(out_type, out)))
    return sent


@contextmanager
def acked_only_when_done(batch: Sequence[Any]) -> Iterator[None]:
    """Keep a batch's offsets uncommitted unless the loop body finished it.

    faust's `take_events` acks the batch it yielded in a `finally`: when a stop (SIGTERM) cancels the body halfway
    -- a send not yet acknowledged, a gap still being read -- the batch would be acked and its offsets committed
    with its outputs missing, and a restarted worker would never see those events again.  Marking the messages as
    acked here, on the way out of a failed body, makes that later ack a no-op: the offsets stay behind, and the
    next worker re-processes the batch (every sink drops what it already has by event id or offset)."""
    try:
        yield
    except BaseException:
        for ev in batch:
            ev.message.acked = True
        raise


async def stations_processor(stream: Any) -> None:
    """OCPP frames -> `stations` events, in batches (the translation is stateless).

    Gap guard: faust-streaming 0.15.3 can skip records when a worker restarts with a backlog.  The processor
    knows where each partition must continue (the group's committed offset -- the log's start where it has none --
    then the last offset it saw) and
    reads any skipped range from the log before the batch, so no frame goes untranslated.  A false alarm only
    re-emits events with the same deterministic ids, which every sink drops.
    """
    expected: dict[tuple[str, int], int] = {}
    async for batch in stream.take_events(2000, within=0.02):
        with acked_only_when_done(batch):
            await _stations_batch(batch, expected)


async def _stations_batch(batch: Sequence[Any], expected: dict[tuple[str, int], int]) -> None:
    """Translate one batch, after reading from the log any range the consumer skipped before it."""
    loop = asyncio.get_running_loop()
    firsts: dict[tuple[str, int], int] = {}
    for ev in batch:
        firsts.setdefault((ev.message.topic, ev.message.partition), ev.message.offset)
    unknown = [tp for tp in firsts if tp not in expected]
    if unknown:
        expected.update(await loop.run_in_executor(None, resume_offsets, group_id(GROUP), unknown))
    gaps = {tp: (expected[tp], off) for tp, off in firsts.items() if tp in expected and off > expected[tp]}
    sent = []
    if gaps:
        log.warning("stations: consumer skipped %s; reading them from the log", gaps)
        missed = await loop.run_in_executor(None, read_range, gaps)
        sent += await _translate_and_send([_RawEvent(m) for m in missed])
    sent += await _translate_and_send(batch)
    for ev in batch:
        expected[(ev.message.topic, ev.message.partition)] = ev.message.offset + 1
    await asyncio.gather(*sent)  # on the log before the batch is acked


class _RawEvent:
    """A confluent-kafka message seen through the parts of a faust event the processor uses."""

    def __init__(self, m: Any) -> None:
        self.value = m.value()
        self.message = type("M", (), {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                                      "key": m.key(), "value": m.value()})()


def _projection_agent(consumer_name: str, proj_name: str, topic: Any) -> None:
    holder: dict[str, Projection] = {}

    def projection() -> Projection:
        if "p" not in holder:
            holder["p"] = build(proj_name)
        return holder["p"]

    async def run(events: Sequence[SourcedEvent]) -> None:
        """Apply, waiting out store outages: an unreachable store is never a reason to dead-letter an event."""
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                await loop.run_in_executor(None, projection().apply, events)
                return
            except TRANSIENT as exc:
                log.warning("%s: store unavailable (%s); retrying in %.1fs", consumer_name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def apply(events: Sequence[SourcedEvent]) -> None:
        try:
            await run(events)
            return
        except Exception as exc:  # noqa: BLE001 - find the poison event(s): one at a time, with retries
            log.warning("%s: batch failed (%s); applying one by one", consumer_name, exc)
        for e in events:
            for attempt in range(3):
                try:
                    await run([e])
                    break
                except Exception as exc:  # noqa: BLE001 - the store answers but refuses this event
                    if attempt == 2:
                        raise _Poison(e, exc) from exc
                    await asyncio.sleep(0.2 * (attempt + 1))

    async def fill_gaps(events: Sequence[SourcedEvent]) -> None:
        """Read from the log what the consumer skipped between the stored offsets and this batch.

        faust-streaming 0.15.3 can skip records when a worker restarts with a backlog (see
        tests/integration/test_broker_conformance.py); the projection's own offsets reveal the gap."""
        first: dict[tuple[str, int], int] = {}
        for e in events:
            first.setdefault((e.topic, e.partition), e.offset)
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(None, projection().offsets)
        gaps = {tp: (stored[tp], off) for tp, off in first.items() if tp in stored and off > stored[tp]}
        if gaps:
            log.warning("%s: consumer skipped %s; reading them from the log", consumer_name, gaps)
            await loop.run_in_executor(None, lambda: replay(projection(), ranges=gaps))

    async def agent(stream: Any) -> None:
        # refuse to run on a replaced log (stored offsets past its end): every new event would be skipped
        await asyncio.get_running_loop().run_in_executor(None, check_offsets_within_log, projection())
        async for batch in stream.take_events(2000, within=0.05):
            with acked_only_when_done(batch):
                await _apply_batch(batch)

    async def _apply_batch(batch: Sequence[Any]) -> None:
        """Decode, fill any gap the consumer skipped, apply; poison events go to the dead-letter topic."""
        events: list[SourcedEvent] = []
        raw_by_offset = {}
        for ev in batch:
            m = ev.message
            try:
                etype, rec = codec.decode(ev.value)
            except DecodeError as exc:
                await dead_letter(consumer_name, ev, str(exc))
                events.append(dead_lettered(m.topic, m.partition, m.offset))
                continue
            events.append(SourcedEvent(m.topic, m.partition, m.offset, etype, rec))
            raw_by_offset[(m.topic, m.partition, m.offset)] = ev
        if events:
            await fill_gaps(events)
        while events:
            try:
                await apply(events)
                break
            except _Poison as p:
                ev = raw_by_offset[(p.event.topic, p.event.partition, p.event.offset)]
                await dead_letter(consumer_name, ev, f"{type(p.cause).__name__}: {p.cause}")
                # applied ones are skipped by offset; the poison one is passed over by its placeholder
                events = [dead_lettered(e.topic, e.partition, e.offset) if e is p.event else e for e in events]

    agent.__name__ = consumer_name.replace(".", "_")
    app.agent(topic, name=consumer_name)(agent)


def _transient_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    import pymongo.errors
    import redis.exceptions

    return (psycopg.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            pymongo.errors.ConnectionFailure, pymongo.errors.ServerSelectionTimeoutError)


TRANSIENT = _transient_errors()


class _Poison(Exception):
    def __init__(self, event: SourcedEvent, cause: Exception) -> None:
        super().__init__(str(cause))
        self.event, self.cause = event, cause


_topics = {OCPP_FRAMES.name: frames_topic, STATIONS.name: stations_topic}


def _topic(*names: str) -> Any:
    """The Faust topic of one catalogue topic (one object per topic, so agents on it share its channel), or of
    several topics read by one agent (a processor joining streams by a key both carry, state in Postgres)."""
    key = names[0] if len(names) == 1 else ",".join(names)
    if key not in _topics:
        if len(names) == 1:
            t = BY_NAME[names[0]]
            _topics[key] = app.topic(t.name, partitions=t.partitions, internal=False)
        else:
            _topics[key] = app.topic(*(BY_NAME[n].name for n in names), internal=False)
    return _topics[key]


for c in CONSUMERS:
    if c.group != GROUP:
        continue
    if c.name in PROJECTIONS:  # projections, and stateful processors built on the same machinery
        _projection_agent(c.name, PROJECTIONS[c.name], _topic(*c.consumes))
    elif c.name == "stations":
        app.agent(frames_topic, name="stations")(stations_processor)


if GROUP == "projections" and settings.ledger_seal_interval_seconds > 0:

    @app.timer(interval=float(settings.ledger_seal_interval_seconds), on_leader=True)
    async def seal_ledger() -> None:
        """Seal the ledger's chain heads in a Merkle root (a LedgerSealed event) at a fixed interval: the proof
        auditors check inclusion against.  One worker (the leader) seals; a seal of unchanged heads is harmless."""
        from ledger.cli import publish_seal

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: publish_seal(settings.postgres_dsn.get_secret_value(),
                                                                  "public", producer()))
        except Exception as exc:  # noqa: BLE001 - a failed seal is retried at the next tick, loudly
            log.warning("ledger seal failed: %s", exc)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    return web.json({"status": "alive"})


@app.page("/readyz")
async def readyz(web: Any, request: Any) -> Any:
    ready = bool(app.consumer.assignment()) if app.consumer else False
    return web.json({"ready": ready}, status=200 if ready else 503)


@app.page("/lag")
async def lag(web: Any, request: Any) -> Any:
    from chargeverse.lag import projection_lag

    loop = asyncio.get_running_loop()
    return web.json(await loop.run_in_executor(None, projection_lag))


def main() -> None:
    app.main()

