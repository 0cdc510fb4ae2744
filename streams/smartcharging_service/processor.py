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
on the events, so a re-processed batch decides the same.  That includes the peak floor: each site's state carries
the uncontrolled peaks of its closed days (decide.close_days), folded from the same events and saved with the rest
of the state, so a restart resumes it and `cv replay smartcharging_processor` rebuilds it.  Solver failures never
crash it: the optimiser returns a flagged best-effort plan (see streams/smartcharging/optimiser.py).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Any, Iterator, Sequence

from chargeverse.kafka import EventProducer
from chargeverse.topics import FORECASTS, OCPP_COMMANDS, SESSIONS, SITES, SMARTCHARGING, STATIONS
from projections.base import SourcedEvent, real
from streams.smartcharging_service import decide
from streams.stateful import StatefulProcessor

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


class SmartChargingProcessor(StatefulProcessor):
    """streams/stateful.py's transaction, with a batch step that routes events to sites (see the module docstring)."""

    def __init__(self, dsn: str, schema: str = "public", producer: EventProducer | None = None) -> None:
        super().__init__(NAME, TOPICS, dsn, None, None, producer=producer, schema=schema)

    def process(self, new: Sequence[SourcedEvent]) -> None:
        data = [e for e in real(new) if e.type in RELEVANT]
        if not data:
            return
        states = {k: st for k, st in self.conn.execute(
            "SELECT key, state FROM processor_state WHERE processor = %s", (self.name,))}
        try:
            touched, outs = decide_batch(states, [(e.type, e.record) for e in data])
        except Exception:
            log.exception("smartcharging: deciding a batch failed")  # the agent retries, then dead-letters
            raise
        self.producer.publish_many_sync(outs)
        self.save_states({k: states[k] for k in sorted(touched)})


def build(dsn: str, schema: str = "public", producer: EventProducer | None = None) -> SmartChargingProcessor:
    return SmartChargingProcessor(dsn, schema, producer)
