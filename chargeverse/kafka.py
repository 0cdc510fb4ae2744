"""Kafka plumbing: explicit topic creation, an acks=all idempotent producer that reports delivery, dead letters.

The producer is the only way anything in the platform writes to the log.  `publish()` returns only once the broker
has acknowledged the event on all in-sync replicas (acks=all), so an edge that awaits it before answering a peer
never tells a charger "accepted" for an event that is not on the log.  A delivery failure raises in the caller.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from chargeverse.avro import Codec, default_codec
from chargeverse.events import envelope
from chargeverse.settings import get_settings
from chargeverse.topics import CATALOGUE, DEADLETTER, Topic

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """The broker did not take the event; it is NOT on the log."""


def base_config(bootstrap: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap or get_settings().kafka_bootstrap,
        # noida-db 0.2.3 ignores fetch size limits and can answer with a partition's whole backlog; librdkafka
        # would refuse a response over its 100 MB default and retry forever (bench/RESULTS.md).  Harmless on
        # real Kafka, which honours fetch.max.bytes.
        "receive.message.max.bytes": 1_000_000_000,
        # noida-db also ignores fetch.wait.max.ms: an idle librdkafka consumer re-fetches thousands of times a
        # second.  No librdkafka setting paces an empty, error-free answer (fetch.error.backoff.ms is for errors,
        # fetch.queue.backoff.ms for a full local queue; partition EOF is explicitly never backed off; measured:
        # no change).  App-level pause()/resume() is not a fix either: pausing a partition before its first fetch
        # left it never fetched again (2 of 4 runs).  aiokafka (Faust) consumers are paced: fetch_backoff.py.
    }


def producer_safety() -> dict[str, Any]:
    """What keeps a producer's writes in order and whole across retries (acks=all is set by every producer).

    Idempotent where the broker handles it well (Kafka); otherwise one request in flight per connection, so a
    retried batch can never overtake a later one.  Settings.kafka_idempotent_producer says why the embedded stack
    turns idempotence off."""
    if get_settings().kafka_idempotent_producer:
        return {"enable.idempotence": True}
    return {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
            "retries": 2_147_483_647}


def ensure_topics(topics: Iterable[Topic] = CATALOGUE, bootstrap: str | None = None,
                  timeout: float = 30.0) -> list[str]:
    """Create every missing catalogue topic with its partitions and config; return the names created.

    Idempotent.  An existing topic with fewer partitions than the catalogue says is an error, not silently used:
    co-partitioned processors would disagree about where a key lives.
    """
    admin = AdminClient(base_config(bootstrap))
    existing = admin.list_topics(timeout=timeout).topics
    wanted = list(topics)
    for t in wanted:
        if t.name in existing and len(existing[t.name].partitions) != t.partitions:
            raise RuntimeError(f"topic {t.name} has {len(existing[t.name].partitions)} partitions, "
                               f"the catalogue says {t.partitions}")
    new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=-1, config=t.config())
           for t in wanted if t.name not in existing]
    if not new:
        return []
    for name, fut in admin.create_topics(new, request_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return [t.topic for t in new]


class ReadStalled(DeliveryError):
    """The broker stopped delivering before a read reached the end of its ranges."""


def iter_range(ranges: dict[tuple[str, int], tuple[int, int | None]], bootstrap: str | None = None,
               batch: int = 5000, stall_seconds: float = 60.0) -> Iterator[list[Message]]:
    """Batches of the messages at offsets [start, end) of each (topic, partition), in offset order per partition;
    `end=None` means the high watermark when the read starts.  Raises ReadStalled after `stall_seconds` without a
    message while ranges are unfinished.  Used by replays, gap fills and the analysts' tools."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    cfg = base_config(bootstrap)
    cfg.update({"group.id": f"range-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                "fetch.max.bytes": 52428800, "queued.max.messages.kbytes": 262144})
    consumer = Consumer(cfg)
    try:
        ends: dict[tuple[str, int], int] = {}
        starts = []
        for (t, p), (first, last) in ranges.items():
            lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
            start, end = max(first, lo), min(hi, last if last is not None else hi)
            if start < end:
                starts.append(TopicPartition(t, p, start))
                ends[(t, p)] = end
        if not starts:
            return
        consumer.assign(starts)
        last_progress = time.monotonic()
        while ends:
            msgs = consumer.consume(batch, timeout=1.0)
            if msgs:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_seconds:
                raise ReadStalled(f"no message for {stall_seconds:.0f}s with {sorted(ends)} short of their end")
            out = []
            for m in msgs:
                key = (m.topic(), m.partition())
                if m.error() or key not in ends or m.offset() >= ends[key]:
                    continue
                out.append(m)
                if m.offset() + 1 >= ends[key]:
                    del ends[key]
            if out:
                yield out
    finally:
        consumer.close()


def read_range(ranges: dict[tuple[str, int], tuple[int, int]], bootstrap: str | None = None) -> list[Message]:
    """All messages of `ranges` (small ranges: a gap to fill)."""
    return [m for batch in iter_range(ranges, bootstrap) for m in batch]


def committed_offsets(group: str, tps: Iterable[tuple[str, int]], bootstrap: str | None = None) -> dict[tuple[str, int], int]:
    """A consumer group's committed offsets (the next offset it will read); absent when it has none."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**base_config(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=10)
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}
    finally:
        consumer.close()


def resume_offsets(group: str, tps: Iterable[tuple[str, int]], bootstrap: str | None = None
                   ) -> dict[tuple[str, int], int]:
    """Where a consumer group (reset to earliest) resumes each partition: its committed offset, or the start of the
    log where it has none -- so a consumer that skips the first records of a never-committed partition is caught
    as surely as one that skips records after a commit."""
    from confluent_kafka import Consumer, TopicPartition

    tps = list(tps)
    out = committed_offsets(group, tps, bootstrap)
    missing = [tp for tp in tps if tp not in out]
    if missing:
        consumer = Consumer({**base_config(bootstrap), "group.id": group, "enable.auto.commit": False})
        try:
            for t, p in missing:
                out[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[0]
        finally:
            consumer.close()
    return out


def describe_topic_config(name: str, bootstrap: str | None = None) -> dict[str, str]:
    admin = AdminClient(base_config(bootstrap))
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    cfg = admin.describe_configs([res])[res].result(timeout=10)
    return {k: v.value for k, v in cfg.items()}


class Delivered(NamedTuple):
    """Where the broker put an event.  A tuple, not a frozen dataclass: one is made per event on the delivery
    thread while it holds the GIL, and a frozen dataclass costs several times as much to build."""

    topic: str
    partition: int
    offset: int


class EventProducer:
    """acks=all producer of Avro events, in order across retries (`producer_safety`).

    One background thread serves delivery callbacks; `publish()` awaits the broker's acknowledgement.  The
    acknowledgements of one poll are handed to each event loop in ONE wake-up, not one per event: a loop wake-up
    is a pipe write and an epoll return, and on a sandboxed kernel those system calls cost more than everything
    else an OCPP frame needs (measured: the edge spent its CPU in the kernel until this was batched).
    """

    def __init__(self, bootstrap: str | None = None, codec: Codec | None = None, linger_ms: int = 2,
                 extra: dict[str, Any] | None = None) -> None:
        cfg = base_config(bootstrap)
        cfg.update(producer_safety())
        cfg.update({
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            # Kafka's (and aiokafka's, hence Faust's) murmur2 key hashing, not librdkafka's CRC32 default: every
            # writer of a topic must put a key on the same partition, or one aggregate's events lose their order
            "partitioner": "murmur2_random",
            "message.timeout.ms": 30000,
        })
        cfg.update(extra or {})
        self._p = Producer(cfg)
        self.codec = codec or default_codec()
        self._stop = threading.Event()
        #: acknowledgements waiting to be handed to their event loops: (loop, future, Delivered | DeliveryError)
        self._acks: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any]] = []
        self._acks_lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._p.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Resolve the futures acknowledged since the last call: one call_soon_threadsafe per event loop."""
        with self._acks_lock:
            if not self._acks:
                return
            acks, self._acks = self._acks, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for loop, fut, outcome in acks:
            by_loop.setdefault(loop, []).append((fut, outcome))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _ack_callback(self, topic: str, fut: asyncio.Future[Any]) -> Any:
        loop = fut.get_loop()

        def done(err: KafkaError | None, msg: Message) -> None:
            outcome: Any = (DeliveryError(f"{topic}: {err.str()}") if err is not None else
                            Delivered(msg.topic(), msg.partition(), msg.offset()))
            with self._acks_lock:
                self._acks.append((loop, fut, outcome))
        return done

    def _produce(self, topic: str, key: str | bytes, value: bytes, cb: Any) -> None:
        k = key.encode() if isinstance(key, str) else key
        while True:
            try:
                self._p.produce(topic, value=value, key=k, on_delivery=cb)
                return
            except BufferError:  # local queue full: back-pressure instead of dropping
                self._p.poll(0.05)

    async def publish(self, topic: str, key: str | bytes, event_type: str, record: dict[str, Any]) -> Delivered:
        """Encode and write one event; returns once acknowledged (acks=all), raises DeliveryError otherwise."""
        return await self.publish_raw(topic, key, self.codec.encode(event_type, record))

    async def publish_raw(self, topic: str, key: str | bytes, value: bytes) -> Delivered:
        fut: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        self._produce(topic, key, value, self._ack_callback(topic, fut))
        return await fut

    def publish_nowait(self, topic: str, key: str | bytes, event_type: str, record: dict[str, Any]
                       ) -> asyncio.Future[Delivered]:
        """Encode and hand one event to the producer now; the returned future resolves on acknowledgement.

        For records whose place in the log matters but whose acknowledgement nobody waits for (an answer already
        sent, a connection change): the producer keeps per-partition order, so an event handed over now lands
        before any event of the same key handed over later, without holding the caller up for a broker round
        trip.  The caller must still look at the future (add_done_callback) so a refusal is reported."""
        fut: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        self._produce(topic, key, self.codec.encode(event_type, record), self._ack_callback(topic, fut))
        return fut

    def publish_raw_unawaited(self, topic: str, key: str | bytes, value: bytes,
                              on_error: Callable[[str], None]) -> None:
        """Hand one encoded event to the producer now (per-partition order kept, as `publish_nowait`) for an event
        nobody waits for: no future, no hand-over to the event loop; only a refusal calls `on_error(reason)`, on
        the delivery thread (so `on_error` must be thread-safe, e.g. a log call)."""
        def done(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                on_error(f"{topic}: {err.str()}")
        self._produce(topic, key, value, done)

    def publish_sync(self, topic: str, key: str | bytes, event_type: str, record: dict[str, Any],
                     timeout: float = 30.0) -> Delivered:
        """Blocking variant for CLIs and batch jobs."""
        result: list[Any] = []
        ev = threading.Event()

        def done(err: KafkaError | None, msg: Message) -> None:
            result.append(DeliveryError(f"{topic}: {err.str()}") if err else
                          Delivered(msg.topic(), msg.partition(), msg.offset()))
            ev.set()

        self._produce(topic, key, self.codec.encode(event_type, record), done)
        if not ev.wait(timeout):
            raise DeliveryError(f"{topic}: no acknowledgement within {timeout}s")
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]

    def publish_many_sync(self, events: Sequence[tuple[str, str | bytes, str, dict[str, Any]]],
                          timeout: float = 60.0) -> list[Delivered]:
        """Write (topic, key, event type, record) events and block until every one is acknowledged.

        For processors: all of a batch's outputs are on the log before the batch's inputs count as done.  Raises
        DeliveryError if any is refused (some may then be on the log: outputs carry deterministic ids)."""
        if not events:
            return []
        results: list[Any] = [None] * len(events)
        remaining = [len(events)]
        lock = threading.Lock()
        ev = threading.Event()

        def cb(i: int, topic: str) -> Any:
            def done(err: KafkaError | None, msg: Message) -> None:
                results[i] = (DeliveryError(f"{topic}: {err.str()}") if err else
                              Delivered(msg.topic(), msg.partition(), msg.offset()))
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        ev.set()
            return done

        for i, (topic, key, event_type, record) in enumerate(events):
            self._produce(topic, key, self.codec.encode(event_type, record), cb(i, topic))
        if not ev.wait(timeout):
            raise DeliveryError(f"{remaining[0]} of {len(events)} events unacknowledged after {timeout}s")
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def list_topics(self, timeout: float = 5.0) -> Any:
        """Broker metadata (raises when the broker is unreachable): a readiness probe."""
        return self._p.list_topics(timeout=timeout)

    def flush(self, timeout: float = 30.0) -> int:
        left = self._p.flush(timeout)
        self._hand_over()  # acknowledgements flush() served in this thread
        return left

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._thread.join(timeout=2)


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, outcome in items:
        if fut.done():
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


def dead_letter_record(*, consumer: str, topic: str, partition: int, offset: int, key: bytes | None,
                       value: bytes | None, error: str) -> dict[str, Any]:
    """A DeadLetter event keeping the original bytes and the reason."""
    rec = envelope(source=consumer, correlation_id=f"{topic}/{partition}/{offset}")
    rec.update(consumer=consumer, topic=topic, partition=partition, offset=offset, key=key, value=value or b"",
               error=error)
    return rec


def send_dead_letter(producer: EventProducer, **kw: Any) -> Delivered:
    """Write a poison message to the dead-letter topic (blocking: a dead letter must not be lost)."""
    rec = dead_letter_record(**kw)
    log.warning("dead letter from %s at %s/%s/%s: %s", kw["consumer"], kw["topic"], kw["partition"],
                kw["offset"], kw["error"])
    return producer.publish_sync(DEADLETTER.name, kw["consumer"], "DeadLetter", rec)
