"""The forecasts processor: `stations` + `sessions` -> `forecasts`, with models that persist across restarts.

Why checkpoints and not per-batch state rows (streams/stateful.py): the models are online learners whose state is
large Python objects (river forests, per-station weekly profiles); writing them on every batch would cost more
than learning.  So the models live in memory and are checkpointed (streams/forecasting/checkpoint.py: the models
AND the log offsets they reflect, one Postgres row, one transaction) every `checkpoint_seconds`.

Resume: on start the last checkpoint is loaded; the consumer group resumes after it (the checkpoint is written
only every `checkpoint_seconds`), so the first batch of each partition starts after a gap, and that gap is read
from the log and learned first (`_fill_gaps`).  Each event is therefore learned exactly once whatever happened
between the checkpoint and the stop.  `offsets()` answers the offsets the in-memory models reflect.  Rebuilding
from the log is `cv replay forecasts_processor`: reset (drop the checkpoint) and replay from offset 0.

Outputs are published (and acknowledged) before the offsets advance; a crash re-plays from the checkpoint and
re-publishes the same event ids, which every sink drops.  One forecasts worker at a time: two workers would each
learn from half the partitions (scaling out needs per-partition model sets; see the report).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Sequence

from chargeverse.kafka import EventProducer
from chargeverse.topics import FORECASTS, SESSIONS, STATIONS
from projections.base import SourcedEvent, real, unseen
from projections.postgres.migrate import connect, migrate
from streams.forecasting.checkpoint import Checkpoint
from streams.forecasts_service.decide import Models, step

NAME = "forecasts"
TOPICS = (STATIONS.name, SESSIONS.name)
RELEVANT = frozenset({"ConnectorStatusChanged", "StationTariffSet", "StationConnectionChanged", "SessionStarted",
                      "SessionStopped"})
log = logging.getLogger(__name__)


def _part(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class ForecastsProcessor:
    """A processor that is also a Projection (of its models), so the projection agents can run it."""

    name = NAME
    topics = TOPICS

    def __init__(self, dsn: str, schema: str = "public", producer: EventProducer | None = None,
                 checkpoint_seconds: float = 30.0, default_time_zone: str = "Europe/Amsterdam",
                 bootstrap: str | None = None) -> None:
        """`bootstrap`: the broker the catch-up replay reads and outputs go to (default: settings)."""
        self.dsn, self.schema = dsn, schema
        self.bootstrap = bootstrap
        self._producer = producer
        self._owns_producer = producer is None
        self.checkpoint_seconds = checkpoint_seconds
        self.default_time_zone = default_time_zone
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)
        self.cp = self._load()
        self.resumed_from = dict(self.cp.offsets)
        self._last_save = time.monotonic()
        self._dirty = False

    # ---- checkpoint ------------------------------------------------------------------------------------------
    def _load(self) -> Checkpoint:
        with self.conn.transaction():
            row = self.conn.execute("SELECT data FROM forecast_checkpoints WHERE processor = %s",
                                    (self.name,)).fetchone()
        if row is None:
            return Checkpoint({"models": Models(default_tz=self.default_time_zone)}, {})
        cp = Checkpoint.from_bytes(bytes(row[0]))
        log.info("forecasts: resuming from checkpoint at %s", cp.offsets)
        return cp

    @property
    def models(self) -> Models:
        return self.cp.models["models"]

    def save(self) -> None:
        """Write the checkpoint (models + the offsets they reflect) and the offsets row `cv lag` reads."""
        data = self.cp.to_bytes()
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO forecast_checkpoints (processor, data, offsets, saved_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (processor) DO UPDATE SET data = EXCLUDED.data, offsets = EXCLUDED.offsets, "
                "saved_at = EXCLUDED.saved_at", (self.name, data, _json(self.cp.offsets)))
            self.conn.cursor().executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, *k, o) for k, o in self.offsets().items()])
        self._last_save = time.monotonic()
        self._dirty = False

    # ---- the Projection protocol ----------------------------------------------------------------------------
    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            self._producer = EventProducer(self.bootstrap)
        return self._producer

    def close(self) -> None:
        if self._dirty and not self.conn.closed:
            self.save()
        self.conn.close()
        if self._owns_producer and self._producer is not None:
            self._producer.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        out = {}
        for k, o in self.cp.offsets.items():
            topic, _, p = k.rpartition("/")
            out[(topic, int(p))] = o
        return out

    def _fill_gaps(self, events: Sequence[SourcedEvent]) -> None:
        """Learn what lies between the models' offsets and the first event of a batch, per partition, first.

        After a restart the consumer group resumes past the checkpoint (which is written only every
        `checkpoint_seconds`), so the first live batch starts after a gap; the gap is read from the log.  A replay
        (`cv replay`, the restart test) starts exactly at the models' offsets: no gap, nothing nested."""
        stored = self.offsets()
        first: dict[tuple[str, int], int] = {}
        for e in events:
            first.setdefault((e.topic, e.partition), e.offset)
        gaps = {tp: (stored.get(tp, 0), off) for tp, off in first.items() if off > stored.get(tp, 0)}
        if not gaps:
            return
        from projections.replay import replay

        t0 = time.perf_counter()
        stats = replay(self, ranges=gaps, bootstrap=self.bootstrap)
        log.info("forecasts: learned %d events between the checkpoint and the live stream in %.2fs",
                 stats.applied, time.perf_counter() - t0)

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        if not events:
            return 0
        self._fill_gaps(events)
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)
        new = unseen(events, self.offsets())
        if not new:
            return 0
        outputs = []
        m = self.models
        for e in real(new):
            if e.type in RELEVANT:
                outputs += step(m, e.type, e.record, FORECASTS.name)
        self.producer.publish_many_sync(outputs)
        for e in new:
            self.cp.advance(_part(e.topic, e.partition), e.offset)
        self._dirty = True
        if time.monotonic() - self._last_save >= self.checkpoint_seconds:
            self.save()
        return len(new)

    def checksum(self) -> str:
        """A digest of what the models say (forecasts per station, learned counts), for replay comparisons."""
        m = self.models
        h = hashlib.sha256()
        for station in sorted(m.occupancy):
            f = m.occupancy[station]
            h.update(station.encode())
            for t, v in f.next_24h():
                h.update(f"{t.isoformat()}={v:.6f};".encode())
        h.update(repr(sorted(m.user_sessions.items())).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM forecast_checkpoints WHERE processor = %s", (self.name,))
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
        self.cp = Checkpoint({"models": Models(default_tz=self.default_time_zone)}, {})


def _json(offsets: dict[str, int]) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(dict(sorted(offsets.items())))


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None,
          settings: Any = None) -> ForecastsProcessor:
    from chargeverse.settings import get_settings

    s = settings or get_settings()
    return ForecastsProcessor(dsn, schema, producer, bootstrap=s.kafka_bootstrap,
                              checkpoint_seconds=float(getattr(s, "forecasts_checkpoint_seconds", 30.0)),
                              default_time_zone=str(getattr(s, "forecasts_time_zone", "Europe/Amsterdam")))
