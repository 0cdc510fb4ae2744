"""The smartcharging processor: `sites` + `sessions` + `stations` + `forecasts` -> `smartcharging` (schedules) and
`ocpp.commands` (SetChargingProfile), its state in Postgres.

Why not streams/stateful.py as is: that runs one fold per event key, but this processor's unit is the SITE and none
of its inputs but `sites` is keyed by site (sessions by session id, stations by station id).  Which site an event
concerns is itself state (the site definitions), so each batch loads every site's state (sites are few: one row
each) and routes events with decide.Index.  Otherwise the guarantees are stateful.py's, in one transaction:
advisory lock; skip events below the stored offsets; fold in log order; publish the outputs and wait for the
broker; write the states and the next offsets; commit.  A crash before the commit re-processes the batch and
re-publishes outputs with the same ids (the OCPP edge sends a command id once; sinks drop copied events).

Re-planning builds the planning instance from the state at each decision (decide.plan_site): the plan depends only
on the events, so a re-processed batch decides the same.  Solver failures never crash it: the optimiser returns
a flagged best-effort plan (see streams/smartcharging/optimiser.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import threading
from typing import Any, Iterator, Sequence

from psycopg.types.json import Jsonb

from chargeverse.kafka import EventProducer
from chargeverse.topics import FORECASTS, OCPP_COMMANDS, SESSIONS, SITES, SMARTCHARGING, STATIONS
from projections.base import SourcedEvent, advanced, real, unseen
from projections.postgres.migrate import connect, migrate
from streams.smartcharging_service import decide

NAME = "smartcharging"
TOPICS = (SITES.name, SESSIONS.name, STATIONS.name, FORECASTS.name)
RELEVANT = frozenset({"SiteDefined", "ChargingNeedsSet", "ChargingPriceSignalSet", "SessionStarted",
                      "SessionMeterSample", "SessionStopped", "ConnectorStatusChanged", "SessionForecast"})
log = logging.getLogger(__name__)


_stdio_lock = threading.Lock()


class _Forward(logging.Handler):
    """Hands the solver interface's log records to our own logger.  Not a StreamHandler on purpose: pyomo's output
    capture asks every StreamHandler up the logger chain for its file descriptor, and the Faust worker's handlers
    write to proxies that have none (NotImplementedError from `fileno()`)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(f"{__name__}.solver").handle(record)


_solver_log = logging.getLogger("pyomo.contrib.appsi.solvers.highs")
if not any(isinstance(h, _Forward) for h in _solver_log.handlers):
    _solver_log.addHandler(_Forward())
    _solver_log.propagate = False


@contextlib.contextmanager
def _real_stdio() -> Iterator[None]:
    """Run the solver with the process's real stdout/stderr: the Faust worker replaces them with logging proxies
    that have no file descriptor, and pyomo's solver interface captures output by descriptor (`sys.stdout.fileno()`
    raised a bare NotImplementedError in the worker)."""
    with _stdio_lock:
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = sys.__stdout__ or saved[0], sys.__stderr__ or saved[1]
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


def decide_batch(states: dict[str, dict[str, Any]], events: Sequence[tuple[str, dict[str, Any]]]
                 ) -> tuple[set[str], list[decide.Output]]:
    """Fold (type, record) events in order into the site states (mutated); returns the changed sites and the
    outputs.  Pure apart from the optimiser's computation."""
    index = decide.Index.of(states)
    touched: set[str] = set()
    outs: list[decide.Output] = []
    for etype, rec in events:
        if etype not in RELEVANT:
            continue
        for site_id in index.route(etype, rec):
            step = decide.fold(states.get(site_id), etype, rec)
            if step.state is None:
                continue
            states[site_id] = step.state
            touched.add(site_id)
            if step.replan:
                with _real_stdio():
                    plan = decide.plan_site(step.state, decide.parse(step.state["clock"]))
                outs += decide.outputs(step.state, plan, step.trigger, rec, OCPP_COMMANDS.name, SMARTCHARGING.name)
            index.add(site_id, step.state)
    return touched, outs


class SmartChargingProcessor:
    """A processor that is also a Projection (of its own state), so the projection agents can run it."""

    name = NAME
    topics = TOPICS

    def __init__(self, dsn: str, schema: str = "public", producer: EventProducer | None = None) -> None:
        self.dsn, self.schema = dsn, schema
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
            data = [e for e in real(new) if e.type in RELEVANT]
            if data:
                states = {k: st for k, st in self.conn.execute(
                    "SELECT key, state FROM processor_state WHERE processor = %s", (self.name,))}
                try:
                    touched, outs = decide_batch(states, [(e.type, e.record) for e in data])
                except Exception:
                    log.exception("smartcharging: deciding a batch failed")  # the agent retries, then dead-letters
                    raise
                self.producer.publish_many_sync(outs)
                if touched:
                    self.conn.cursor().executemany(
                        "INSERT INTO processor_state (processor, key, state) VALUES (%s, %s, %s) "
                        "ON CONFLICT (processor, key) DO UPDATE SET state = EXCLUDED.state",
                        [(self.name, k, Jsonb(states[k])) for k in sorted(touched)])
            self.conn.cursor().executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.name, t, p, o) for (t, p), o in advanced(new).items()])
        return len(new)

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


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None) -> SmartChargingProcessor:
    return SmartChargingProcessor(dsn, schema, producer)
