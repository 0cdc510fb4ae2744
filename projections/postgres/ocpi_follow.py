"""Keep projections caught up with the log from a thread: one long-lived consumer, no consumer group.

In production the Faust worker runs the OCPI projections (streams/registry.py).  This follower is for running
an OCPI platform without a worker - tests, benches, `cv run ocpi --follow` during development: it assigns every
partition of the projections' topics from the lowest stored offset, decodes each message once and hands the
batch to every projection (each skips what it has applied, so their offsets may differ).  Same `apply()` as the
live agents, so it cannot drift from them.  Undecodable messages are passed over as dead-letter placeholders.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Sequence

from confluent_kafka import Consumer, TopicPartition

from chargeverse.avro import Codec, DecodeError, default_codec
from chargeverse.kafka import base_config
from projections.base import Projection, SourcedEvent, dead_lettered

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, projections: Sequence[Projection], bootstrap: str | None = None,
                 codec: Codec | None = None, batch: int = 2000) -> None:
        self.projections = list(projections)
        self.topics = sorted({t for p in self.projections for t in p.topics})
        self.bootstrap = bootstrap
        self.codec = codec or default_codec()
        self.batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection-follower", daemon=True)
        self.errors: list[BaseException] = []
        self.applied = 0

    def start(self) -> "Follower":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        cfg = base_config(self.bootstrap)
        cfg.update({"group.id": f"follow-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                    "fetch.wait.max.ms": 20})
        consumer = Consumer(cfg)
        try:
            md = consumer.list_topics(timeout=10)
            stored = [p.offsets() for p in self.projections]
            assign = []
            for t in self.topics:
                for part in md.topics[t].partitions:
                    start = min((s.get((t, part), 0) for p, s in zip(self.projections, stored) if t in p.topics),
                                default=0)
                    assign.append(TopicPartition(t, part, start))
            consumer.assign(assign)
            while not self._stop.is_set():
                msgs = consumer.consume(self.batch, timeout=0.05)
                events: list[SourcedEvent] = []
                for m in msgs:
                    if m.error():
                        continue
                    try:
                        etype, rec = self.codec.decode(m.value())
                        events.append(SourcedEvent(m.topic(), m.partition(), m.offset(), etype, rec))
                    except DecodeError:
                        events.append(dead_lettered(m.topic(), m.partition(), m.offset()))
                if not events:
                    continue
                for p in self.projections:
                    mine = [e for e in events if e.topic in p.topics]
                    try:
                        self.applied += p.apply(mine)
                    except Exception as exc:  # noqa: BLE001 - keep following; the error is kept for the owner
                        log.exception("follower: %s failed to apply a batch", p.name)
                        self.errors.append(exc)
        finally:
            consumer.close()
