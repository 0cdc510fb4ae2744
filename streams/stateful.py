"""Stateful processors: a pure fold per key, its state and input offsets in Postgres, its outputs on the log.

Why not a Faust table: faust-streaming 0.15.3 can skip records when a worker restarts with a backlog (see
streams/app.py), and a table's changelog is written independently of the consumer's offsets.  Keeping the state
beside the offsets in one Postgres transaction gives the processor the same guarantees as every projection, and
it runs on the same agent machinery (gap fill, poison messages to the dead-letter topic, `cv replay`, `cv lag`).

For each batch, in ONE database transaction:
1. take the processor's advisory lock (a second worker holding the same partition after a rebalance waits,
   then skips what the first applied);
2. drop the events below the stored offsets (already processed);
3. load the state of every key in the batch, fold the events in log order;
4. publish every output and wait for the broker's acknowledgements;
5. write the new states and the next offsets, commit.
A crash after 4 and before 5 re-processes the batch: the fold is deterministic and outputs carry ids derived
from their input events, so the re-published copies are identical and every sink drops them (projections by
their content keys, the ledger by source event id).  Outputs are never lost: nothing is committed before they
are on the log.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from psycopg.types.json import Jsonb

from chargeverse.kafka import EventProducer
from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate

#: (topic, key, event type, record)
Output = tuple[str, str, str, dict[str, Any]]
#: state, event -> new state (None deletes it), outputs
Fold = Callable[[dict[str, Any] | None, SourcedEvent], tuple[dict[str, Any] | None, list[Output]]]


class StatefulProcessor:
    """A processor that is also a Projection (of its own state), so the projection agents can run it."""

    def __init__(self, name: str, topics: tuple[str, ...], dsn: str, fold: Fold | None,
                 key_of: Callable[[SourcedEvent], str] | None, producer: EventProducer | None = None,
                 schema: str = "public") -> None:
        self.name, self.topics = name, topics
        self.dsn, self.schema = dsn, schema
        self.fold, self.key_of = fold, key_of
        self._producer = producer
        self._owns_producer = producer is None
        self.conn = connect(dsn, schema)
        migrate(self.conn, schema)

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            self._producer = EventProducer()
        return self._producer

    def close(self) -> None:
        self.conn.close()
        if self._owns_producer and self._producer is not None:
            self._producer.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
        return {(t, p): o for t, p, o in rows}

    def apply(self, events: Sequence[SourcedEvent]) -> int:
        """Steps 1-5 of the module docstring for one batch; returns how many events were new."""
        if not events:
            return 0
        if self.conn.closed or self.conn.broken:
            self.conn = connect(self.dsn, self.schema)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.name,))
            rows = self.conn.execute("SELECT topic, partition, next_offset FROM projection_offsets "
                                     "WHERE projection = %s", (self.name,)).fetchall()
            new = unseen(events, {(t, p): o for t, p, o in rows})
            if not new:
                return 0
            self.process(new)
            self.conn.cursor().executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

    def process(self, new: Sequence[SourcedEvent]) -> None:
        """Steps 3-4 and the state half of 5, inside apply's transaction: fold the new events per key, publish
        the outputs (acknowledged) and store the states.  A processor whose unit is not the event key (e.g. a
        site fed by events keyed otherwise) overrides this and keeps the rest of the guarantees."""
        if self.fold is None or self.key_of is None:
            raise TypeError(f"{self.name}: a StatefulProcessor needs a fold and key_of, or its own process()")
        data = real(new)
        keys = sorted({self.key_of(e) for e in data})
        states: dict[str, dict[str, Any] | None] = {k: None for k in keys}
        for k, st in self.conn.execute("SELECT key, state FROM processor_state WHERE processor = %s "
                                       "AND key = ANY(%s)", (self.name, keys)):
            states[k] = st
        outputs: list[Output] = []
        for e in data:
            k = self.key_of(e)
            states[k], outs = self.fold(states[k], e)
            outputs.extend(outs)
        self.producer.publish_many_sync(outputs)
        self.save_states(states)

    def save_states(self, states: dict[str, dict[str, Any] | None]) -> None:
        """Upsert the given keys' states; a None state deletes its key."""
        cur = self.conn.cursor()
        keep = [(self.name, k, Jsonb(v)) for k, v in states.items() if v is not None]
        drop = [k for k, v in states.items() if v is None]
        if keep:
            cur.executemany("INSERT INTO processor_state (processor, key, state) VALUES (%s, %s, %s) "
                            "ON CONFLICT (processor, key) DO UPDATE SET state = EXCLUDED.state", keep)
        if drop:
            cur.execute("DELETE FROM processor_state WHERE processor = %s AND key = ANY(%s)", (self.name, drop))

    def checksum(self) -> str:
        h = hashlib.sha256()
        with self.conn.transaction():
            for k, st in self.conn.execute("SELECT key, state FROM processor_state WHERE processor = %s "
                                           "ORDER BY key", (self.name,)):
                h.update(k.encode() + b"\0" + json.dumps(st, sort_keys=True).encode())
        return h.hexdigest()

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("DELETE FROM processor_state WHERE processor = %s", (self.name,))
            self.conn.execute("DELETE FROM projection_offsets WHERE projection = %s", (self.name,))
