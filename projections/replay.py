"""Rebuild a projection from the log: read its topics from offset 0 (or its stored offsets) up to the high
watermarks seen at start, decode, and apply in batches.

This is the same `apply()` the live Faust agents call, so a replay cannot drift from live processing.  Undecodable
messages go to the dead-letter topic with their bytes and the reason, and the replay continues.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from chargeverse.avro import Codec, DecodeError, default_codec
from chargeverse.kafka import EventProducer, ReadStalled, base_config, iter_range, send_dead_letter
from projections.base import Projection, SourcedEvent, dead_lettered


@dataclass
class ReplayStats:
    events: int = 0
    applied: int = 0
    dead_letters: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class LogReplaced(RuntimeError):
    """A projection has applied offsets beyond the end of the log: the log was replaced or truncated, and
    continuing would silently skip every new event below the stored offsets."""


def check_offsets_within_log(projection: Projection, bootstrap: str | None = None) -> None:
    """Raise LogReplaced when any stored offset is past its partition's high watermark."""
    cfg = base_config(bootstrap)
    cfg.update({"group.id": f"check-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    consumer = Consumer(cfg)
    try:
        for (topic, p), stored in sorted(projection.offsets().items()):
            hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            if stored > hi:
                raise LogReplaced(
                    f"{projection.name} has applied {topic}[{p}] up to offset {stored}, but the log ends at {hi}: "
                    f"the log was replaced. Rebuild it: cv replay <projection> --yes")
    finally:
        consumer.close()


#: the broker stopped delivering before the replay reached the end of the log
ReplayStalled = ReadStalled


def replay(projection: Projection, *, from_start: bool = True, batch: int = 5000, codec: Codec | None = None,
           producer: EventProducer | None = None, bootstrap: str | None = None,
           stall_seconds: float = 60.0,
           ranges: dict[tuple[str, int], tuple[int, int]] | None = None) -> ReplayStats:
    """Apply the projection's topics up to their high watermarks (or only `ranges`: (topic, partition) ->
    [start, end) offsets, which is how a live agent fills a gap its consumer skipped)."""
    codec = codec or default_codec()
    stats = ReplayStats()
    t0 = time.perf_counter()
    try:
        if ranges is None:
            stored = {} if from_start else projection.offsets()
            consumer = Consumer({**base_config(bootstrap), "group.id": f"replay-{uuid.uuid4().hex[:8]}"})
            try:
                md = consumer.list_topics(timeout=10)
            finally:
                consumer.close()
            ranges_: dict[tuple[str, int], tuple[int, int | None]] = {
                (t, p): (stored.get((t, p), 0), None) for t in projection.topics for p in md.topics[t].partitions}
        else:
            ranges_ = dict(ranges)
        for msgs in iter_range(ranges_, bootstrap, batch, stall_seconds):
            events: list[SourcedEvent] = []
            for m in msgs:
                stats.events += 1
                try:
                    etype, rec = codec.decode(m.value())
                    events.append(SourcedEvent(m.topic(), m.partition(), m.offset(), etype, rec))
                except DecodeError as exc:
                    stats.dead_letters += 1
                    events.append(dead_lettered(m.topic(), m.partition(), m.offset()))
                    if producer is not None:
                        send_dead_letter(producer, consumer=f"replay:{projection.name}", topic=m.topic(),
                                         partition=m.partition(), offset=m.offset(), key=m.key(), value=m.value(),
                                         error=str(exc))
            stats.applied += projection.apply(events)
        return stats
    finally:
        stats.seconds = time.perf_counter() - t0
