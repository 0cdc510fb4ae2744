"""The sessions processor's logic: OCPP 1.6 transactions and 2.0.1 TransactionEvents -> `sessions` events.

Pure: no I/O.  The Faust wiring (not here) consumes `ocpp.frames`, keeps one state per charge point in a table
keyed like `ocpp.frames` (charge point id, so co-partitioned), calls `apply` per record in log order and publishes
each output to `sessions` keyed by its `session_id`.  Events: SessionStarted, SessionMeterSample, SessionStopped
(schemas/avro/).  `charging_periods` turns a session's samples into OCPI-style charging periods for pricing.

Invariants (each named by a test in tests/unit/sessions/test_session_invariants.py):
- ORDER: one charge point's frames are folded in log order; every event of a session is produced from that one
  charge point's state, so on `sessions` (key = session id) a session's events come out in order: started, its
  samples, stopped - never a sample before its start or after its stop.
- IDEMPOTENT: applying a frame that is already folded changes nothing and emits nothing.  Idempotence keys:
  1.6 start = transactionId (and the start request itself, when a re-sent start got a second transactionId);
  a meter sample = the fingerprint of its meterValue element within the session; 2.0.1 = (transactionId, seqNo);
  a stop = the session, which is final once stopped.  So at-least-once delivery and charger retries never double
  count.
- DETERMINISTIC: the session id is derived from (charge point id, transaction id) and every event id from the
  frame's event id and a tag (chargeverse.events.derive), so a replay re-emits identical events.
- TRACEABLE: every event carries `raw`, the text of the frame that caused it, and causation_id = that frame's
  event_id (DESIGN.md section 2).
- ENERGY: energy comes from register readings, never from deltas; it is never negative; a 0 or missing start
  reading (offline start) never turns a lifetime register into a bill, a register going backwards or jumping is
  never billed, and a sample without an energy register never changes a total (energy.py states the rules).
- PURE STATE: `apply` never modifies the state it is given; the state is plain JSON (it round-trips through
  json.dumps/json.loads), so it can live in a Faust table.
- NEVER: it never emits for an invalid frame or a CALLERROR, never reopens a stopped session (later frames for it
  stay on `ocpp.frames`), and never invents energy: a session without readings has energy 0.

Public API: `apply`, `new_state`, `session_id_for`, `charging_periods`, `Rules`, `SessionFrameError`, `SOURCE`,
`EVENT_TYPES`.
"""

from streams.sessions.energy import DEFAULT_RULES, Rules
from streams.sessions.fold import EVENT_TYPES, SOURCE, SessionFrameError, apply, new_state, session_id_for
from streams.sessions.periods import charging_periods

__all__ = ["DEFAULT_RULES", "EVENT_TYPES", "SOURCE", "Rules", "SessionFrameError", "apply", "charging_periods",
           "new_state", "session_id_for"]
